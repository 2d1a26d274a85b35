# The same wiring as the sync and HTTP tests: fixtures re-exported for this folder.
from tests.functions.conftest import account_id, configured, with_partner_center  # noqa: F401
from tests.sync.conftest import make_sync, pc, stores  # noqa: F401
