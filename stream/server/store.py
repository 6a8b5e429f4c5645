"""Session store: sessions, token hashes, the per-side AU series, statistics snapshots, exercise
segments, synkinesis findings, patients and their grades. Numbers only: no frame or image ever
reaches it.

Two databases behind this one class (``db.py``): an SQLite file (the embedded default, one node) or
PostgreSQL (``--db postgresql://...``, shared by several nodes, a connection pool). Every query is
written once here in portable SQL; the schema below is the one definition both are created from,
and the migration (nullable columns added to databases written by older versions) runs the same
way on both.

Beside the 24 AU values a keyframe row keeps what the estimator measured besides AUs, where it does:
eye closure (AU43) and direction-free region movement per side, which the findings' eye and region
verdicts rest on. Those columns are nullable (an estimator that does not measure them stores NULL)
and were added after the first databases were written, so opening a database adds them when missing.

Every keyframe row is committed as soon as it is computed (SQLite: WAL journal,
``synchronous=NORMAL``, a crash of the server process loses nothing committed; PostgreSQL: each
statement committed when it returns), so a restart, a dropped patient or a killed node loses nothing
already computed, and any other node reopens the results. Each call is a few small statements;
several statements that belong together run in one transaction.

Every database or file-system failure leaves as ``StorageError`` naming the database (a PostgreSQL
URL without user and password), so callers can tell "the disk is full or read-only" or "the database
server is unreachable" from a bug and say so instead of dying with a traceback. ``errors`` counts
them (metrics).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream.aus import AU_NAMES
from stream.server.db import display_name, open_backend
from stream.session.exercises import Segment
from stream.types import AU_COLUMNS, CLOSURE_COLUMNS, MOVE_COLUMNS, AUSeries

_AU_COLUMNS = list(AU_COLUMNS)
_CLOSURE_COLUMNS = list(CLOSURE_COLUMNS)
# (2, 3) order of ``AUEstimate.movement``: left brows, eyes, mouth, then right.
_MOVEMENT_COLUMNS = list(MOVE_COLUMNS)
_MEASURE_COLUMNS = _CLOSURE_COLUMNS + _MOVEMENT_COLUMNS  # nullable, added by ``_MIGRATIONS`` to older databases

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    status TEXT NOT NULL,              -- waiting | live | ended
    ended_at REAL,
    mirrored INTEGER NOT NULL DEFAULT 0,
    config_json TEXT NOT NULL DEFAULT '{{}}',
    estimator_json TEXT NOT NULL DEFAULT '{{}}',
    counts_json TEXT NOT NULL DEFAULT '{{}}'
);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id),
    role TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tokens_by_session ON tokens(session_id, role);
CREATE TABLE IF NOT EXISTS keyframes (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    frame_index INTEGER NOT NULL,
    time_s REAL NOT NULL,
    received_at REAL NOT NULL,
    segment_id INTEGER,
    n_helpers INTEGER NOT NULL,
    {", ".join(f"{c} REAL NOT NULL" for c in _AU_COLUMNS)},
    {", ".join(f"{c} REAL" for c in _MEASURE_COLUMNS)},
    PRIMARY KEY (session_id, seq)
);
CREATE TABLE IF NOT EXISTS segments (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    segment_id INTEGER NOT NULL,
    exercise TEXT NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL,
    PRIMARY KEY (session_id, segment_id)
);
CREATE TABLE IF NOT EXISTS statistics (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    scope TEXT NOT NULL,               -- "session" or "segment:<id>"
    n_keyframes INTEGER NOT NULL,
    time_s REAL NOT NULL,
    state_json TEXT NOT NULL,
    PRIMARY KEY (session_id, scope)
);
CREATE TABLE IF NOT EXISTS findings (
    session_id TEXT NOT NULL REFERENCES sessions(id),
    scope TEXT NOT NULL,
    matrix TEXT NOT NULL,
    row_au TEXT NOT NULL,
    col_au TEXT NOT NULL,
    value REAL NOT NULL,
    first_seen_s REAL NOT NULL,
    last_seen_s REAL NOT NULL,
    PRIMARY KEY (session_id, scope, matrix, row_au, col_au)
);
CREATE TABLE IF NOT EXISTS patients (
    code TEXT PRIMARY KEY,             -- pseudonymous, chosen by the clinic; no name
    label TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS patient_tokens (
    hash TEXT PRIMARY KEY,             -- SHA-256 of a patient-history clinician link
    patient_code TEXT NOT NULL REFERENCES patients(code),
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS patient_tokens_by_patient ON patient_tokens(patient_code);
CREATE TABLE IF NOT EXISTS patient_sessions (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id),
    patient_code TEXT NOT NULL REFERENCES patients(code),
    kind TEXT NOT NULL                 -- live | recorded (an offline analysis)
);
CREATE INDEX IF NOT EXISTS patient_sessions_by_patient ON patient_sessions(patient_code);
CREATE TABLE IF NOT EXISTS grades (
    session_id TEXT PRIMARY KEY REFERENCES sessions(id),
    n_keyframes INTEGER NOT NULL,      -- keyframes the grades were computed from
    status TEXT NOT NULL,              -- the session's status then
    computed_at REAL NOT NULL,
    grades_json TEXT NOT NULL
);
"""
# Columns added after the first databases were written: (table, column, type), added where missing.
_MIGRATIONS = [("keyframes", column, "REAL") for column in _MEASURE_COLUMNS]


def _database_errors() -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    try:
        import psycopg

        errors += (psycopg.Error,)
    except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite works without it
        pass
    return errors


_DATABASE_ERRORS = _database_errors()


def _complete(parts: list[tuple[Any, ...]]) -> bool:
    """Every row measured (the series has it), and at least one row (an empty series measured nothing)."""
    return bool(parts) and all(None not in p for p in parts)


@dataclass(frozen=True)
class SessionRecord:
    id: str
    label: str
    created_at: float
    status: str
    ended_at: float | None
    mirrored: bool
    config: dict[str, Any]
    estimator: dict[str, Any]
    counts: dict[str, Any]
    n_keyframes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "created_at": self.created_at,
            "status": self.status,
            "ended_at": self.ended_at,
            "mirrored": self.mirrored,
            "n_keyframes": self.n_keyframes,
            "estimator": self.estimator,
            "counts": self.counts,
        }


@dataclass(frozen=True)
class PatientRecord:
    code: str
    label: str
    created_at: float
    n_sessions: int = 0
    last_session_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "label": self.label,
            "created_at": self.created_at,
            "n_sessions": self.n_sessions,
            "last_session_at": self.last_session_at,
        }


@dataclass(frozen=True)
class StoredSeries:
    series: AUSeries
    segment_ids: np.ndarray  # (n,) int, -1 outside any exercise
    received_at: np.ndarray  # (n,) wall-clock seconds the source frame reached the server


class StorageError(Exception):
    """The session database cannot be opened, read or written (disk full, read-only, not a file)."""


class Store:
    """``path``: an SQLite file (or ``:memory:``), or a ``postgresql://`` URL."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.name = display_name(self.path)  # as shown in messages: no password
        self.errors = 0  # database calls that failed (metrics)
        try:
            self._db = open_backend(self.path)
            # A read-only file or folder, or an unreachable server, fails here, at start, not at the
            # first keyframe of the first patient.
            self._db.create_schema(_SCHEMA, _MIGRATIONS)
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

    # -- sessions and tokens ------------------------------------------------------------------
    def create_session(self, session_id: str, label: str, mirrored: bool, config: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO sessions (id, label, created_at, status, mirrored, config_json) "
            "VALUES (?, ?, ?, 'waiting', ?, ?)",
            (session_id, label, time.time(), int(mirrored), json.dumps(config)),
        )

    def add_token(self, session_id: str, role: str, digest: str) -> float:
        """Store a token's hash; returns the time it was issued (wall clock, what ``--link-ttl`` counts from)."""
        issued = time.time()
        self._write(
            "INSERT INTO tokens (hash, session_id, role, created_at) VALUES (?, ?, ?, ?)",
            (digest, session_id, role, issued),
        )
        return issued

    def token_hashes(self, session_id: str, role: str) -> list[str]:
        return [digest for digest, _ in self.tokens(session_id, role)]

    def tokens(self, session_id: str, role: str) -> list[tuple[str, float]]:
        """(SHA-256, wall-clock time issued) of every token of a role in a session."""
        rows = self._read("SELECT hash, created_at FROM tokens WHERE session_id = ? AND role = ?", (session_id, role))
        return [(r[0], float(r[1])) for r in rows]

    def set_status(self, session_id: str, status: str) -> None:
        ended = time.time() if status == "ended" else None
        self._write("UPDATE sessions SET status = ?, ended_at = ? WHERE id = ?", (status, ended, session_id))

    def session_status(self, session_id: str) -> str | None:
        rows = self._read("SELECT status FROM sessions WHERE id = ?", (session_id,))
        return rows[0][0] if rows else None

    def set_estimator(self, session_id: str, estimator: dict[str, Any]) -> None:
        self._write("UPDATE sessions SET estimator_json = ? WHERE id = ?", (json.dumps(estimator), session_id))

    def set_counts(self, session_id: str, counts: dict[str, Any]) -> None:
        self._write("UPDATE sessions SET counts_json = ? WHERE id = ?", (json.dumps(counts), session_id))

    def end_interrupted(self) -> int:
        """Mark sessions left live by a previous server process as ended; returns how many."""
        with self._failing("write to"):
            return self._db.execute(
                "UPDATE sessions SET status = 'ended', ended_at = ? WHERE status = 'live'", (time.time(),)
            ).rowcount

    def live_sessions(self) -> list[str]:
        """Ids of the sessions stored as ``live`` (with several nodes: held by some node, or orphaned)."""
        return [r[0] for r in self._read("SELECT id FROM sessions WHERE status = 'live'")]

    def end_orphaned(self, session_id: str) -> bool:
        """End a ``live`` session whose node died and that no node took over (caller holds its lease).

        The open exercise segment ends at the last stored keyframe (or where it started), as a stream
        ends at its last frame; the stored series and statistics stay as they are. False if the
        session was not ``live`` any more.
        """
        with self._failing("write to"), self._db.transaction() as tx:
            if tx.execute("SELECT status FROM sessions WHERE id = ?", (session_id,)).fetchone() != ("live",):
                return False
            last = tx.execute("SELECT MAX(time_s) FROM keyframes WHERE session_id = ?", (session_id,)).fetchone()
            last_s = last[0] if last is not None else None
            open_segments = tx.execute(
                "SELECT segment_id, start_s FROM segments WHERE session_id = ? AND end_s IS NULL", (session_id,)
            ).rows
            for segment_id, start_s in open_segments:
                end_s = start_s if last_s is None or last_s < start_s else last_s
                tx.execute(
                    "UPDATE segments SET end_s = ? WHERE session_id = ? AND segment_id = ?",
                    (end_s, session_id, segment_id),
                )
            tx.execute("UPDATE sessions SET status = 'ended', ended_at = ? WHERE id = ?", (time.time(), session_id))
            return True

    _SESSION_SELECT = (
        "SELECT s.id, s.label, s.created_at, s.status, s.ended_at, s.mirrored, s.config_json, s.estimator_json,"
        " s.counts_json, (SELECT COUNT(*) FROM keyframes k WHERE k.session_id = s.id) FROM sessions s"
    )

    @staticmethod
    def _session(row: tuple[Any, ...]) -> SessionRecord:
        return SessionRecord(
            id=row[0],
            label=row[1],
            created_at=row[2],
            status=row[3],
            ended_at=row[4],
            mirrored=bool(row[5]),
            config=json.loads(row[6]),
            estimator=json.loads(row[7]),
            counts=json.loads(row[8]),
            n_keyframes=row[9],
        )

    def session(self, session_id: str) -> SessionRecord | None:
        rows = self._read(self._SESSION_SELECT + " WHERE s.id = ?", (session_id,))
        return self._session(rows[0]) if rows else None

    def sessions(self) -> list[SessionRecord]:
        return [self._session(r) for r in self._read(self._SESSION_SELECT + " ORDER BY s.created_at DESC")]

    # -- results -------------------------------------------------------------------------------
    def add_keyframe(
        self,
        session_id: str,
        seq: int,
        frame_index: int,
        time_s: float,
        received_at: float,
        segment_id: int | None,
        n_helpers: int,
        left: np.ndarray,
        right: np.ndarray,
        closure: np.ndarray | None = None,
        movement: np.ndarray | None = None,
    ) -> None:
        """One keyframe; ``closure`` (2,) left, right and ``movement`` (2, 3) are NULL when not measured."""
        values: list[float | None] = [*map(float, left), *map(float, right)]
        values += [None] * 2 if closure is None else [float(v) for v in np.asarray(closure).reshape(2)]
        values += [None] * 6 if movement is None else [float(v) for v in np.asarray(movement).reshape(6)]
        columns = ", ".join(_AU_COLUMNS + _MEASURE_COLUMNS)
        marks = ", ".join("?" * (len(_AU_COLUMNS) + len(_MEASURE_COLUMNS)))
        self._write(
            "INSERT INTO keyframes (session_id, seq, frame_index, time_s, received_at, segment_id, n_helpers, "
            f"{columns}) VALUES (?, ?, ?, ?, ?, ?, ?, {marks})",
            (session_id, seq, frame_index, time_s, received_at, segment_id, n_helpers, *values),
        )

    def series(self, session_id: str) -> StoredSeries:
        """The stored series; eye closure and region movement only when every keyframe has them."""
        rows = self._read(
            f"SELECT frame_index, time_s, received_at, segment_id, {', '.join(_AU_COLUMNS + _MEASURE_COLUMNS)}"
            " FROM keyframes WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        n, n_au = len(rows), len(_AU_COLUMNS)
        values = np.array([r[4 : 4 + n_au] for r in rows], dtype=float).reshape(n, n_au)
        closure = [r[4 + n_au : 6 + n_au] for r in rows]
        movement = [r[6 + n_au :] for r in rows]
        series = AUSeries(
            frames=np.array([r[0] for r in rows], dtype=int),
            time_s=np.array([r[1] for r in rows], dtype=float),
            left=values[:, : len(AU_NAMES)],
            right=values[:, len(AU_NAMES) :],
            closure=np.array(closure, dtype=float).reshape(n, 2) if _complete(closure) else None,
            movement=np.array(movement, dtype=float).reshape(n, 2, 3) if _complete(movement) else None,
        )
        segments = np.array([-1 if r[3] is None else r[3] for r in rows], dtype=int)
        return StoredSeries(series, segments, np.array([r[2] for r in rows], dtype=float))

    def start_segment(self, session_id: str, segment: Segment) -> None:
        self._write(
            "INSERT INTO segments (session_id, segment_id, exercise, start_s, end_s) VALUES (?, ?, ?, ?, ?)",
            (session_id, segment.segment_id, segment.exercise, segment.start_s, segment.end_s),
        )

    def end_segment(self, session_id: str, segment_id: int, end_s: float) -> None:
        self._write(
            "UPDATE segments SET end_s = ? WHERE session_id = ? AND segment_id = ?", (end_s, session_id, segment_id)
        )

    def segments(self, session_id: str) -> list[Segment]:
        rows = self._read(
            "SELECT segment_id, exercise, start_s, end_s FROM segments WHERE session_id = ? ORDER BY segment_id",
            (session_id,),
        )
        return [Segment(*r) for r in rows]

    def save_statistics(self, session_id: str, scope: str, time_s: float, state: dict[str, Any]) -> None:
        """Latest statistics of a scope, and the synkinesis pairs it reports (first and last seen)."""
        with self._failing("write to"):
            self._save_statistics(session_id, scope, time_s, state)

    def _save_statistics(self, session_id: str, scope: str, time_s: float, state: dict[str, Any]) -> None:
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO statistics (session_id, scope, n_keyframes, time_s, state_json) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (session_id, scope) DO UPDATE SET n_keyframes = excluded.n_keyframes,"
                " time_s = excluded.time_s, state_json = excluded.state_json",
                (session_id, scope, int(state.get("n_keyframes", 0)), time_s, json.dumps(state)),
            )
            for pair in state.get("synkinesis", {}).get("pairs", []):
                tx.execute(
                    "INSERT INTO findings (session_id, scope, matrix, row_au, col_au, value, first_seen_s, last_seen_s)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, scope, matrix, row_au, col_au)"
                    " DO UPDATE SET value = excluded.value, last_seen_s = excluded.last_seen_s",
                    (session_id, scope, pair["matrix"], pair["row"], pair["col"], float(pair["value"]), time_s, time_s),
                )

    def statistics(self, session_id: str) -> dict[str, dict[str, Any]]:
        rows = self._read("SELECT scope, state_json FROM statistics WHERE session_id = ?", (session_id,))
        return {scope: json.loads(text) for scope, text in rows}

    def findings(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT scope, matrix, row_au, col_au, value, first_seen_s, last_seen_s FROM findings"
            " WHERE session_id = ? ORDER BY first_seen_s",
            (session_id,),
        )
        keys = ("scope", "matrix", "row", "col", "value", "first_seen_s", "last_seen_s")
        return [dict(zip(keys, r)) for r in rows]

    # -- patients (pseudonymous: a clinic code, never a name) -----------------------------------
    def create_patient(self, code: str, label: str) -> bool:
        """A new patient record; False when the code is taken."""
        with self._failing("write to"), self._db.transaction() as tx:
            if tx.execute("SELECT 1 FROM patients WHERE code = ?", (code,)).fetchone():
                return False
            tx.execute("INSERT INTO patients (code, label, created_at) VALUES (?, ?, ?)", (code, label, time.time()))
            return True

    _PATIENT_SELECT = (
        "SELECT p.code, p.label, p.created_at, COUNT(ps.session_id), MAX(s.created_at) FROM patients p"
        " LEFT JOIN patient_sessions ps ON ps.patient_code = p.code LEFT JOIN sessions s ON s.id = ps.session_id"
    )

    def patient(self, code: str) -> PatientRecord | None:
        rows = self._read(self._PATIENT_SELECT + " WHERE p.code = ? GROUP BY p.code, p.label, p.created_at", (code,))
        return PatientRecord(*rows[0]) if rows else None

    def patients(self) -> list[PatientRecord]:
        rows = self._read(self._PATIENT_SELECT + " GROUP BY p.code, p.label, p.created_at ORDER BY p.created_at DESC")
        return [PatientRecord(*r) for r in rows]

    def add_patient_token(self, code: str, digest: str) -> float:
        """Store a patient-history link's hash; returns the time it was issued."""
        issued = time.time()
        self._write(
            "INSERT INTO patient_tokens (hash, patient_code, created_at) VALUES (?, ?, ?)", (digest, code, issued)
        )
        return issued

    def patient_tokens(self, code: str) -> list[tuple[str, float]]:
        rows = self._read("SELECT hash, created_at FROM patient_tokens WHERE patient_code = ?", (code,))
        return [(r[0], float(r[1])) for r in rows]

    def attach_session(self, session_id: str, code: str, kind: str) -> None:
        self._write(
            "INSERT INTO patient_sessions (session_id, patient_code, kind) VALUES (?, ?, ?)", (session_id, code, kind)
        )

    def session_patient(self, session_id: str) -> tuple[str, str] | None:
        """(patient code, kind) of a session attached to a patient, else None."""
        rows = self._read("SELECT patient_code, kind FROM patient_sessions WHERE session_id = ?", (session_id,))
        return (rows[0][0], rows[0][1]) if rows else None

    def patient_sessions(self, code: str) -> list[tuple[SessionRecord, str]]:
        """(session, kind) of a patient's sessions, oldest first."""
        rows = self._read(
            self._SESSION_SELECT.replace(" FROM sessions s", ", ps.kind FROM sessions s")
            + " JOIN patient_sessions ps ON ps.session_id = s.id WHERE ps.patient_code = ? ORDER BY s.created_at, s.id",
            (code,),
        )
        return [(self._session(r[:-1]), r[-1]) for r in rows]

    def save_grades(self, session_id: str, n_keyframes: int, status: str, grades: dict[str, Any]) -> None:
        self._write(
            "INSERT INTO grades (session_id, n_keyframes, status, computed_at, grades_json) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (session_id) DO UPDATE SET n_keyframes = excluded.n_keyframes, status = excluded.status,"
            " computed_at = excluded.computed_at, grades_json = excluded.grades_json",
            (session_id, n_keyframes, status, time.time(), json.dumps(grades)),
        )

    def grades(self, session_id: str) -> tuple[int, str, dict[str, Any]] | None:
        """(keyframes, session status, grades) as last computed, else None."""
        rows = self._read("SELECT n_keyframes, status, grades_json FROM grades WHERE session_id = ?", (session_id,))
        return (int(rows[0][0]), rows[0][1], json.loads(rows[0][2])) if rows else None

    def add_recorded_session(
        self,
        session_id: str,
        label: str,
        created_at: float,
        config: dict[str, Any],
        estimator: dict[str, Any],
        counts: dict[str, Any],
        series: AUSeries,
        patient_code: str,
    ) -> None:
        """An offline analysis (numbers only: its AU series) as an ended session of a patient, in one transaction."""
        n = len(series)
        columns = ", ".join(_AU_COLUMNS + _MEASURE_COLUMNS)
        marks = ", ".join("?" * (len(_AU_COLUMNS) + len(_MEASURE_COLUMNS)))
        rows = []
        for i in range(n):
            values: list[float | None] = [*map(float, series.left[i]), *map(float, series.right[i])]
            values += [None] * 2 if series.closure is None else [float(v) for v in series.closure[i]]
            values += (
                [None] * 6 if series.movement is None else [float(v) for v in np.asarray(series.movement[i]).reshape(6)]
            )
            t = float(series.time_s[i])
            rows.append((session_id, i, int(series.frames[i]), t, created_at + t, None, 0, *values))
        with self._failing("write to"), self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO sessions (id, label, created_at, status, ended_at, mirrored, config_json, estimator_json,"
                " counts_json) VALUES (?, ?, ?, 'ended', ?, ?, ?, ?, ?)",
                (
                    session_id,
                    label,
                    created_at,
                    time.time(),
                    int(bool(config.get("mirrored", False))),
                    json.dumps(config),
                    json.dumps(estimator),
                    json.dumps(counts),
                ),
            )
            tx.executemany(
                "INSERT INTO keyframes (session_id, seq, frame_index, time_s, received_at, segment_id, n_helpers, "
                f"{columns}) VALUES (?, ?, ?, ?, ?, ?, ?, {marks})",
                rows,
            )
            tx.execute(
                "INSERT INTO patient_sessions (session_id, patient_code, kind) VALUES (?, ?, 'recorded')",
                (session_id, patient_code),
            )
