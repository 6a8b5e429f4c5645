"""The two databases the session store runs on: SQLite (embedded, the default) and PostgreSQL.

``Store`` (the ``store`` package) holds every query, written once in portable SQL with ``?`` placeholders;
a backend runs them: ``execute`` (one statement, committed at once), ``transaction`` (several, all
or nothing), ``columns`` (what a table has, for migrations). The schema is one text (``store/schema.py``)
rendered for each dialect (``render_schema``: PostgreSQL's ``REAL`` is 4 bytes, so ``REAL`` columns
become ``DOUBLE PRECISION`` there); migrations add the nullable columns a database written by an
older version lacks, the same way on both.

* **SQLite**: one connection shared by the event loop and the model threads behind a lock, WAL
  journal, ``synchronous=NORMAL`` (a crash of the process loses nothing committed).
* **PostgreSQL** (``postgresql://user:password@host:port/database``): a psycopg 3 connection pool
  (``psycopg_pool``), each statement committed when it returns, so several serve nodes share one
  database with the same guarantee: each keyframe row is committed when computed. Schema creation
  and migrations run under an advisory lock, so nodes starting together do not race.

Every database failure leaves as the backend's ``errors`` types, which ``Store`` turns into
``StorageError`` naming the database (for PostgreSQL without its password).
"""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_SCHEMA_LOCK_ID = 0x5354524D  # "STRM": pg_advisory_xact_lock key held while the schema is created or migrated


def is_postgres(target: str) -> bool:
    return str(target).startswith(POSTGRES_SCHEMES)


def display_name(target: str) -> str:
    """The database as it may be shown and logged: a PostgreSQL URL without user and password."""
    if not is_postgres(target):
        return str(target)
    parts = urlsplit(target)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{host}{port}{parts.path}"


def render_schema(schema: str, dialect: str) -> str:
    """The one schema text for ``sqlite`` or ``postgresql``."""
    if dialect == "postgresql":
        return re.sub(r"\bREAL\b", "DOUBLE PRECISION", schema)
    return schema


@dataclass(frozen=True)
class Result:
    rows: list[tuple[Any, ...]]
    rowcount: int

    def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.rows


class Transaction(Protocol):
    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...


class Backend(Protocol):
    dialect: str
    name: str  # for messages: never a password
    errors: tuple[type[BaseException], ...]

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result: ...

    def transaction(self) -> contextlib.AbstractContextManager[Transaction]: ...

    def create_schema(self, schema: str, migrations: Sequence[tuple[str, str, str]]) -> None: ...

    def close(self) -> None: ...


class SqliteBackend:
    dialect = "sqlite"
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def __init__(self, path: str) -> None:
        self.name = str(path)
        self._lock = threading.Lock()
        if self.name != ":memory:":
            Path(self.name).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.name, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        with self._lock:
            cur = self._db.execute(sql, tuple(args))
            return Result(cur.fetchall(), cur.rowcount)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield _SqliteTransaction(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def create_schema(self, schema: str, migrations: Sequence[tuple[str, str, str]]) -> None:
        with self._lock:
            self._db.executescript(render_schema(schema, self.dialect))
            for table, column, kind in migrations:
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            # Take the write lock once: a read-only file or folder fails here, at start, not at the
            # first keyframe of the first patient.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _SqliteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        cur = self._db.execute(sql, tuple(args))
        return Result(cur.fetchall(), cur.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, [tuple(r) for r in rows])


@functools.lru_cache(maxsize=512)
def to_pyformat(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled). Our SQL has no ``?`` in strings."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresBackend:
    dialect = "postgresql"

    def __init__(self, url: str, max_connections: int = 8, connect_timeout_s: float = 10.0) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.name = display_name(url)
        self.errors: tuple[type[BaseException], ...] = (psycopg.Error,)
        # One plain connection first: an unreachable server or a wrong database fails at once with
        # the server's own reason, instead of the pool's timeout after retrying.
        psycopg.connect(url, connect_timeout=max(1, int(connect_timeout_s))).close()
        # autocommit: a statement is committed when it returns (the keyframe-row guarantee);
        # transactions are explicit (``transaction``).
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            kwargs={"autocommit": True},
            timeout=connect_timeout_s,
            open=False,
            name="stream-store",
        )
        self._pool.open(wait=True, timeout=connect_timeout_s)

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        with self._pool.connection() as conn:
            cur = conn.execute(to_pyformat(sql), tuple(args))
            return Result(cur.fetchall() if cur.description else [], cur.rowcount)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresTransaction(conn)

    def create_schema(self, schema: str, migrations: Sequence[tuple[str, str, str]]) -> None:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_ID,))
            conn.execute(render_schema(schema, self.dialect))
            for table, column, kind in migrations:
                conn.execute(
                    f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} {render_schema(kind, self.dialect)}"
                )

    def close(self) -> None:
        self._pool.close()


class _PostgresTransaction:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Result:
        cur = self._conn.execute(to_pyformat(sql), tuple(args))
        return Result(cur.fetchall() if cur.description else [], cur.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(to_pyformat(sql), [tuple(r) for r in rows])


def open_backend(target: str) -> Backend:
    """SQLite for a file path (or ``:memory:``), PostgreSQL for a ``postgresql://`` URL."""
    if is_postgres(target):
        return PostgresBackend(target)
    return SqliteBackend(target)
