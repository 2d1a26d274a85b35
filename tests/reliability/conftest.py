from tests.sync.conftest import make_sync, pc, stores  # noqa: F401  (the same wiring as the sync tests)
