"""Patient storage: pseudonymous patients (a clinic code, never a name), their history-link token
hashes, which sessions belong to whom, the grades last computed for a session, and offline analyses
stored as ended sessions of a patient. Kept apart from the session storage because a session needs
none of it; ``Store`` joins both.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from stream.server.store.base import StoreBase
from stream.server.store.schema import KEYFRAME_INSERT
from stream.server.store.sessions import SESSION_SELECT, SessionRecord, session_from_row
from stream.types import AUSeries


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


class PatientStorage(StoreBase):
    """Patients, their links, sessions and grades (``Store`` is built from it)."""

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
            SESSION_SELECT.replace(" FROM sessions s", ", ps.kind FROM sessions s")
            + " JOIN patient_sessions ps ON ps.session_id = s.id WHERE ps.patient_code = ? ORDER BY s.created_at, s.id",
            (code,),
        )
        return [(session_from_row(r[:-1]), r[-1]) for r in rows]

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
            tx.executemany(KEYFRAME_INSERT, rows)
            tx.execute(
                "INSERT INTO patient_sessions (session_id, patient_code, kind) VALUES (?, ?, 'recorded')",
                (session_id, patient_code),
            )
