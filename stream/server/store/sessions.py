"""Session storage: sessions and their tokens, the per-side AU series, exercise segments, statistics
snapshots and synkinesis findings. Numbers only: no frame or image ever reaches it.

Every keyframe row is committed as soon as it is computed (SQLite: WAL journal,
``synchronous=NORMAL``, a crash of the server process loses nothing committed; PostgreSQL: each
statement committed when it returns), so a restart, a dropped patient or a killed node loses nothing
already computed, and any other node reopens the results. Each call is a few small statements;
several statements that belong together run in one transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.aus import AU_NAMES
from stream.server.store.base import StoreBase
from stream.server.store.schema import KEYFRAME_AU_COLUMNS, KEYFRAME_INSERT, MEASURE_COLUMNS
from stream.session.exercises import Segment
from stream.types import AUSeries


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
class StoredSeries:
    series: AUSeries
    segment_ids: np.ndarray  # (n,) int, -1 outside any exercise
    received_at: np.ndarray  # (n,) wall-clock seconds the source frame reached the server


SESSION_SELECT = (
    "SELECT s.id, s.label, s.created_at, s.status, s.ended_at, s.mirrored, s.config_json, s.estimator_json,"
    " s.counts_json, (SELECT COUNT(*) FROM keyframes k WHERE k.session_id = s.id) FROM sessions s"
)


def session_from_row(row: tuple[Any, ...]) -> SessionRecord:
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


class SessionStorage(StoreBase):
    """Sessions, tokens, keyframes, segments, statistics and findings (``Store`` is built from it)."""

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

    def session(self, session_id: str) -> SessionRecord | None:
        rows = self._read(SESSION_SELECT + " WHERE s.id = ?", (session_id,))
        return session_from_row(rows[0]) if rows else None

    def sessions(self) -> list[SessionRecord]:
        return [session_from_row(r) for r in self._read(SESSION_SELECT + " ORDER BY s.created_at DESC")]

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
        self._write(
            KEYFRAME_INSERT, (session_id, seq, frame_index, time_s, received_at, segment_id, n_helpers, *values)
        )

    def series(self, session_id: str) -> StoredSeries:
        """The stored series; eye closure and region movement only when every keyframe has them."""
        rows = self._read(
            f"SELECT frame_index, time_s, received_at, segment_id, {', '.join(KEYFRAME_AU_COLUMNS + MEASURE_COLUMNS)}"
            " FROM keyframes WHERE session_id = ? ORDER BY seq",
            (session_id,),
        )
        n, n_au = len(rows), len(KEYFRAME_AU_COLUMNS)
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
