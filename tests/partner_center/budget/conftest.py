"""Budgets on Azurite: a fresh table per test, and a loopback relay that can take storage away."""

from __future__ import annotations

import socket
import threading

import pytest

from shared.store import TableNames, Tables
from shared.partner_center.budget import SharedRequestBudget


@pytest.fixture
def tables(storage_connection, table_prefix):
    with Tables(storage_connection, TableNames().with_prefix(table_prefix)) as opened:
        yield opened
        opened.service.delete_table(opened.names.request_budget)


@pytest.fixture
def make_budget(tables):
    """A budget as one instance of the account would hold it (each call: another instance)."""

    def make(per_minute: int = 60, table=None, account_id: str = "acct", **options) -> SharedRequestBudget:
        client = table or tables.client(tables.names.request_budget)
        return SharedRequestBudget(client, account_id, per_minute, **options)

    return make


class StorageRelay:
    """A TCP relay on loopback to Azurite's table port that can be switched off (connections refused)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Like storage going away: the port refuses connections and open ones are cut."""
        if self._listener:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, frees the port
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for conn in self._open:
            try:
                conn.close()
            except OSError:
                pass
        self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (source, sink):
                try:
                    conn.close()
                except OSError:
                    pass


@pytest.fixture
def relay(azurite):
    running = StorageRelay(azurite.table_port)
    running.up()
    yield running
    running.down()


@pytest.fixture
def relayed_connection(azurite, relay) -> str:
    """A connection string whose table endpoint goes through the relay."""
    return azurite.connection_string.replace(f":{azurite.table_port}/", f":{relay.port}/")
