"""What every observation source that reads a live server shares: one autocommit
connection to its target, which it replaces after a restart, restore or crash, and which
follows a `DbSession` across epochs (`on_epoch`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import psycopg

import dbgym.redact as redact
from dbgym.errors import ConnectError, ServerCrashedError
from dbgym.types import SupportsConnect

T = TypeVar("T")
S = TypeVar("S", bound="ServerSource")


class ServerSource:
    """Owns one autocommit connection to `target` (a DSN or anything with `.connect()`);
    errors never show a password (a bad DSN is an InvalidArgumentError, an unreachable
    server a ConnectError, a lost one on reconnect a ServerCrashedError)."""

    #: How errors name the source ("the metrics observer").
    what: ClassVar[str] = "the observation source"

    def __init__(self, target: SupportsConnect | str) -> None:
        self._source = target
        self._conn: psycopg.Connection[Any] = self._connect("connect")
        #: How often the source reconnected (a restart, restore or crash ended its connection).
        self.reconnects = 0

    def _connect(self, verb: str) -> psycopg.Connection[Any]:
        return redact.connect_target(self._source, f"{self.what} cannot {verb}", autocommit=True)

    def reconnect(self) -> None:
        """Replace the connection with a new one; ServerCrashedError if the server cannot
        be reached."""
        with contextlib.suppress(Exception):
            self._conn.close()
        try:
            self._conn = self._connect("reconnect")
        except ServerCrashedError:
            raise
        except (ConnectError, psycopg.OperationalError) as exc:
            raise ServerCrashedError(
                f"{self.what} cannot reconnect to the server: " + redact.redact(str(exc).strip())
            ) from exc
        self.reconnects += 1

    def _read(self, query: Callable[[psycopg.Connection[Any]], T]) -> T:
        """`query` on the connection, reconnecting first if it was lost (a restart,
        restore or crash since the last read) and once more if it breaks under the query."""
        if self._conn.closed or self._conn.broken:
            self.reconnect()
        try:
            return query(self._conn)
        except psycopg.OperationalError:
            if not self._conn.broken:
                raise
            self.reconnect()
            return query(self._conn)

    def on_epoch(self, session: SupportsConnect) -> None:
        """A `DbSession` restarted or restored its server: connect through `session`."""
        self._source = session
        self.reconnect()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
