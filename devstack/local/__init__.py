"""The local stack: Azurite and the Partner Center simulator, for development, tests and benchmarks."""
