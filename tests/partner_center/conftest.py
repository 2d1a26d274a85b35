from __future__ import annotations

import pytest

from shared.partner_center import AppTokenProvider, LocalRequestBudget, PartnerCenterClient, RetryPolicy


@pytest.fixture
def trust_simulator(simulator, monkeypatch):
    """Clients trust the simulator's CA the standard way, as users do."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    return simulator


@pytest.fixture
def make_client(trust_simulator):
    sim = trust_simulator

    def make(*, per_minute: int = 10_000, policy: RetryPolicy | None = None, deadline=None, secret=None):
        tokens = AppTokenProvider(sim.url, sim.partner_tenant_id, sim.client_id,
                                  client_secret=secret or sim.client_secret)
        fast = RetryPolicy(backoff_initial=0.01, backoff_max=0.05, retry_after_cap=5.0)
        return PartnerCenterClient(sim.url, tokens, LocalRequestBudget(per_minute), policy=policy or fast,
                                   deadline=deadline)

    return make
