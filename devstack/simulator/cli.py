"""Run the Partner Center simulator from a shell: `python -m devstack simulator --port 8443`.

`serve` prints the settings a local run needs (in the names the app's settings use) and blocks
until Ctrl+C or SIGTERM. Scenarios are then scripted over `/_simulator/...` (docs/simulator.md).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Sequence

from devstack.simulator.simulator import PartnerCenterSimulator
from devstack.simulator.state import CLOUDS, NEXT_LINK_FORMS


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the simulator's options to a parser (the main CLI's `simulator` command uses this)."""
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    parser.add_argument("--customers", type=int, default=25, help="size of the default partner's estate")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated estate")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API response")
    parser.add_argument(
        "--requests-per-minute", type=int, default=None, help="per-partner API limit (default: unlimited)"
    )
    parser.add_argument("--next-link-form", choices=NEXT_LINK_FORMS, default="v1", help="uri form of next links")
    parser.add_argument("--other-relationships", type=int, default=0,
                        help="customers with other relationship kinds (advisor, microsoft_support, ...) mixed in")
    parser.add_argument("--cloud", choices=CLOUDS, default="public", help="which cloud's token audience the API accepts")
    parser.add_argument("--state-dir", default=None, help="folder for the CA and server certificate (kept across runs)")
    return parser


def run(args: argparse.Namespace | Sequence[str] | None = None) -> None:
    """Serve with options from an argparse namespace, or parsed from a list of arguments."""
    if not isinstance(args, argparse.Namespace):
        parser = add_arguments(argparse.ArgumentParser(prog="simulator", description=__doc__.splitlines()[0]))
        args = parser.parse_args(args)
    serve(
        port=args.port,
        customers=args.customers,
        seed=args.seed,
        latency=args.latency,
        requests_per_minute=args.requests_per_minute,
        next_link_form=args.next_link_form,
        state_dir=args.state_dir,
        other_relationships=args.other_relationships,
        cloud=args.cloud,
    )


def serve(
    port: int,
    customers: int,
    seed: int,
    latency: float,
    requests_per_minute: int | None,
    next_link_form: str,
    state_dir: str | None,
    other_relationships: int = 0,
    cloud: str = "public",
) -> None:
    """Start the simulator, print how to reach and trust it, and block until Ctrl+C or SIGTERM."""
    stopping = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    simulator = PartnerCenterSimulator(
        customers=customers,
        seed=seed,
        latency=latency,
        requests_per_minute=requests_per_minute,
        next_link_form=next_link_form,
        other_relationships=other_relationships,
        cloud=cloud,
        port=port,
        state_dir=Path(state_dir) if state_dir else None,
    )
    with simulator:
        print(f"Partner Center simulator with {customers} customers at {simulator.url}")
        print(f"PARTNER_CENTER_API_URL={simulator.url}")
        print(f"PARTNER_CENTER_AUTHORITY_URL={simulator.url}")
        print(f"REQUESTS_CA_BUNDLE={simulator.ca_path}")
        print(f"PARTNER_CENTER_TENANT_ID={simulator.partner_tenant_id}")
        print(f"PARTNER_CENTER_CLIENT_ID={simulator.client_id}")
        print(f"PARTNER_CENTER_CLIENT_SECRET={simulator.client_secret}")
        print(f"Scenario controls: {simulator.url}/_simulator (Ctrl+C to stop)", flush=True)
        try:
            while not stopping.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    signal.signal(signal.SIGTERM, previous)
    print("Partner Center simulator stopped", flush=True)


if __name__ == "__main__":
    run(sys.argv[1:])
