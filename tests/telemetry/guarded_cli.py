"""``python -m shared`` under the test session's loopback-only socket guard (for subprocess tests)."""

import socket
import sys

from tests import conftest

if __name__ == "__main__":
    socket.socket.connect = conftest._guarded_connect
    socket.socket.connect_ex = conftest._guarded_connect_ex
    socket.getaddrinfo = conftest._guarded_getaddrinfo
    from shared.cli import main

    sys.exit(main(sys.argv[1:]))
