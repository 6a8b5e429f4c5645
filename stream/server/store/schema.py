"""The store's schema: the one definition SQLite and PostgreSQL are both created from.

Kept apart from the queries so the tables can be read in one place. Beside the 24 AU values a
keyframe row keeps what the estimator measured besides AUs, where it does: eye closure (AU43) and
direction-free region movement per side, which the findings' eye and region verdicts rest on. Those
columns are nullable (an estimator that does not measure them stores NULL) and were added after the
first databases were written, so opening a database adds them when missing (``MIGRATIONS``).
"""

from __future__ import annotations

from stream.types import AU_COLUMNS, CLOSURE_COLUMNS, MOVE_COLUMNS

KEYFRAME_AU_COLUMNS = list(AU_COLUMNS)
# Eye closure (left, right), then region movement in the (2, 3) order of ``AUEstimate.movement``: left
# brows, eyes, mouth, then right. Nullable, added by ``MIGRATIONS`` to older databases.
MEASURE_COLUMNS = [*CLOSURE_COLUMNS, *MOVE_COLUMNS]

SCHEMA = f"""
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
    {", ".join(f"{c} REAL NOT NULL" for c in KEYFRAME_AU_COLUMNS)},
    {", ".join(f"{c} REAL" for c in MEASURE_COLUMNS)},
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
MIGRATIONS = [("keyframes", column, "REAL") for column in MEASURE_COLUMNS]

# One keyframe row: session, order, source frame, times, exercise, helpers, then every value column.
KEYFRAME_INSERT = (
    "INSERT INTO keyframes (session_id, seq, frame_index, time_s, received_at, segment_id, n_helpers, "
    f"{', '.join(KEYFRAME_AU_COLUMNS + MEASURE_COLUMNS)}) "
    f"VALUES (?, ?, ?, ?, ?, ?, ?, {', '.join('?' * (len(KEYFRAME_AU_COLUMNS) + len(MEASURE_COLUMNS)))})"
)
