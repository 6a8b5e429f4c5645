"""Session store: sessions, token hashes, the per-side AU series, statistics snapshots, exercise
segments, synkinesis findings, patients and their grades. Numbers only: no frame or image ever
reaches it.

Two databases behind this one class (``stream/server/db.py``): an SQLite file (the embedded default,
one node) or PostgreSQL (``--db postgresql://...``, shared by several nodes, a connection pool).
Every query is written once, in portable SQL, in the module of its concept:

    schema.py     the tables and the migration of older databases, one definition for both databases
    base.py       opening the database, ``StorageError``, plain reads and writes
    sessions.py   sessions, tokens, keyframes, segments, statistics, findings
    patients.py   patients, their links and sessions, grades, offline analyses stored for a patient
"""

from __future__ import annotations

from stream.server.store.base import StorageError
from stream.server.store.patients import PatientRecord, PatientStorage
from stream.server.store.sessions import SessionRecord, SessionStorage, StoredSeries

__all__ = ["PatientRecord", "SessionRecord", "StorageError", "Store", "StoredSeries"]


class Store(SessionStorage, PatientStorage):
    """The session database: ``Store(path)`` with ``path`` an SQLite file (or ``:memory:``), or a
    ``postgresql://`` URL; every method of the session and patient storage on one connection."""
