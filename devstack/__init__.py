"""The development stack, beside the product and never deployed: the Partner Center simulator,
the Azurite launcher, a stand-in for the Functions host (timers, HTTP, queue triggers) and the demo.
"""
