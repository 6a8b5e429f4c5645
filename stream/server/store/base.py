"""The store's connection: opening the database, failures as ``StorageError``, plain reads and writes.

Shared by the session and patient storage (``sessions.py``, ``patients.py``), which only write SQL.
Every database or file-system failure leaves as ``StorageError`` naming the database (a PostgreSQL
URL without user and password), so callers can tell "the disk is full or read-only" or "the database
server is unreachable" from a bug and say so instead of dying with a traceback. ``errors`` counts
them (metrics).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from stream.server.db import display_name, open_backend
from stream.server.store.schema import MIGRATIONS, SCHEMA


def _database_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    try:
        import psycopg

        errors += (psycopg.Error,)
    except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite works without it
        pass
    return errors


_DATABASE_ERRORS = _database_errors()


class StorageError(Exception):
    """The session database cannot be opened, read or written (disk full, read-only, not a file)."""


class StoreBase:
    """``path``: an SQLite file (or ``:memory:``), or a ``postgresql://`` URL."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.name = display_name(self.path)  # as shown in messages: no password
        self.errors = 0  # database calls that failed (metrics)
        try:
            self._db = open_backend(self.path)
            # A read-only file or folder, or an unreachable server, fails here, at start, not at the
            # first keyframe of the first patient.
            self._db.create_schema(SCHEMA, MIGRATIONS)
        except _DATABASE_ERRORS as exc:
            raise StorageError(f"cannot use {self.name} as the session database: {exc}") from exc

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _failing(self, verb: str) -> Iterator[None]:
        """Database failures inside leave as ``StorageError`` ("could not <verb> <database>")."""
        try:
            yield
        except _DATABASE_ERRORS as exc:
            self.errors += 1
            raise StorageError(f"could not {verb} {self.name}: {exc}") from exc

    def _write(self, sql: str, args: Iterable[Any] = ()) -> None:
        with self._failing("write to"):
            self._db.execute(sql, tuple(args))

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
        with self._failing("read"):
            return self._db.execute(sql, tuple(args)).rows

    def ping(self) -> None:
        """One trivial query (``/readyz``); raises ``StorageError`` when the database does not answer."""
        self._read("SELECT 1")
