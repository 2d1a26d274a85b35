"""A faithful local Partner Center (and its Entra ID authority) over HTTPS, for tests and local runs.

See docs/simulator.md for what it serves, its scenario controls and fault kinds.
"""

from devstack.simulator.accounts import Partner, UnknownCustomer
from devstack.simulator.simulator import PartnerCenterSimulator
from devstack.simulator.state import UnknownPartner

__all__ = ["Partner", "PartnerCenterSimulator", "UnknownCustomer", "UnknownPartner"]
