"""`python -m devstack topic`: the stand-in Event Grid topic and the loopback managed-identity
endpoint, for a local host (`func start` or `python -m devstack serve`) to publish to."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from devstack.local.identity import IdentityEndpoint

from .topic import StandInTopic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8444)
    parser.add_argument("--state-dir", default=".local/topic", help="where its certificate and CA are kept")
    parser.add_argument("--refuse", type=int, choices=(429, 503), help="fault mode: answer this status ...")
    parser.add_argument("--for", dest="seconds", type=float, default=60.0, help="... for this many seconds")


def run(args: argparse.Namespace) -> None:
    with IdentityEndpoint() as identity, StandInTopic(Path(args.state_dir), echo=print, port=args.port) as topic:
        if args.refuse:
            topic.refuse(args.refuse, args.seconds)
        print("Set these for the app (and trust the CA, e.g. in REQUESTS_CA_BUNDLE with the simulator's):")
        for name, value in {"PLATFORM_EVENTS__topicEndpointUri": topic.endpoint,
                            "PLATFORM_EVENTS__credential": "managedidentity",
                            **identity.environment, "TOPIC_CA": topic.ca_path}.items():
            print(f"{name}={value}")
        print("Events received:")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
