"""Developers' command line: `python -m devstack <command>`.

    simulator [--port P] [--customers N] ...        a local Partner Center over HTTPS
    serve [--host H] [--port P] [--roles R,...]     the HTTP functions on a local socket, like `func start`,
                                                    behind a stand-in for App Service Authentication
    demo [--customers N] [--roles R,...]            the whole story on Azurite and the simulator
    topic [--port P] [--refuse 429|503 --for S]     a stand-in Event Grid topic that prints what it receives

Operators' commands (sync, status, webhook) are `python -m shared`.
"""

from __future__ import annotations

import argparse
import logging

from devstack.simulator.cli import add_arguments as add_simulator_arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description="local development stack")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    sim = commands.add_parser("simulator", help="run the Partner Center simulator over HTTPS")
    add_simulator_arguments(sim)
    # The port and CA path that local.settings.example.json expects.
    sim.set_defaults(port=8443, state_dir=".local/simulator")

    serve = commands.add_parser("serve", help="serve the HTTP functions locally, without Core Tools")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    add_sign_in_arguments(serve)

    topic = commands.add_parser("topic", help="a stand-in Event Grid topic (and managed identity) on loopback")
    from devstack.eventgrid.cli import add_arguments as add_topic_arguments

    add_topic_arguments(topic)

    demo = commands.add_parser("demo", help="the main job end to end on Azurite and the simulator")
    demo.add_argument("--customers", type=int, default=40)
    demo.add_argument("--seed", type=int, default=42)
    add_sign_in_arguments(demo)
    return parser


def add_sign_in_arguments(parser: argparse.ArgumentParser) -> None:
    """Who the local Easy Auth stand-in signs in (devstack/local/easyauth.py)."""
    parser.add_argument("--operator", default="local-operator@localhost", help="the signed-in operator's name")
    parser.add_argument("--roles", default="Sync.Operator",
                        help="comma-separated app roles (Sync.Reader, Sync.Operator); empty for none")


def local_operator(args: argparse.Namespace):
    from devstack.local.easyauth import LocalOperator

    roles = tuple(role.strip() for role in args.roles.split(",") if role.strip())
    return LocalOperator(name=args.operator, roles=roles)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "simulator":
        from devstack.simulator.cli import run

        run(args)
        return 0
    if args.command == "topic":
        from devstack.eventgrid.cli import run as run_topic

        run_topic(args)
        return 0
    if args.command == "demo":
        from devstack.local.demo import run_demo

        return run_demo(customers=args.customers, seed=args.seed, operator=local_operator(args))
    from shared.cli import load_local_settings
    from devstack.local.server import serve

    load_local_settings()
    serve(args.host, args.port, local_operator(args))
    return 0
