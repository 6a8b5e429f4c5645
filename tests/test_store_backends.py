"""The session store on both databases: an SQLite file and a real PostgreSQL server (tests/services.py).

Same calls, same answers, same guarantees: every keyframe row is committed when it is written (another
connection, i.e. another node, reads it at once; a writer killed with SIGKILL loses nothing it wrote),
databases of the old schema gain the new columns, and failures leave as ``StorageError`` naming the
database without its password.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
from test_server_support import REPO

from stream.aus import AU_NAMES, N_AUS
from stream.server.store import StorageError, Store
from stream.session.exercises import Segment
from stream.types import AUSeries

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def target(request, tmp_path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "sessions.sqlite3")
    return request.getfixturevalue("postgres_url")


def test_series_segments_statistics_findings_patients_and_grades_round_trip(target):
    store = Store(target)
    store.create_session("S", "label", False, {"active_threshold": 0.5})
    issued = store.add_token("S", "clinician", "h" * 64)
    rng = np.random.default_rng(0)
    rows = [(rng.uniform(0, 5, N_AUS), rng.uniform(0, 5, N_AUS)) for _ in range(5)]
    store.start_segment("S", Segment(0, "smile", 1.0, None))
    movement = np.arange(6, dtype=float).reshape(2, 3) / 3
    for i, (left, right) in enumerate(rows):
        store.add_keyframe(
            "S",
            i,
            10 * i,
            0.5 * i,
            1000.0 + i,
            0 if i >= 2 else None,
            2,
            left,
            right,
            closure=np.array([0.1 * i, 0.2]),
            movement=movement + i,
        )
    store.end_segment("S", 0, 9.0)
    state = {
        "n_keyframes": 5,
        "synkinesis": {"pairs": [{"matrix": "right-left|left", "row": "AU5", "col": "AU20", "value": 0.4}]},
    }
    store.save_statistics("S", "session", 2.0, state)
    store.save_statistics("S", "session", 3.0, {**state, "n_keyframes": 6})
    store.set_counts("S", {"frames_received": 120})
    store.set_status("S", "live")
    assert store.create_patient("P-1", "first") and not store.create_patient("P-1", "again")
    store.attach_session("S", "P-1", "live")
    store.save_grades("S", 5, "live", {"composite": 70})
    series = AUSeries(np.arange(3), np.arange(3) * 0.5, np.ones((3, N_AUS)), np.full((3, N_AUS), 2.0))
    store.add_recorded_session("R", "clip", 500.0, {"mirrored": False}, {"name": "flow"}, {"frames": 9}, series, "P-1")
    store.close()

    again = Store(target)
    try:
        stored = again.series("S")
        assert len(stored.series) == 5
        np.testing.assert_array_equal(stored.series.left, np.stack([r[0] for r in rows]))  # doubles, not floats
        np.testing.assert_array_equal(stored.series.right, np.stack([r[1] for r in rows]))
        np.testing.assert_array_equal(stored.series.movement[4], movement + 4)
        np.testing.assert_array_equal(stored.series.closure[:, 0], 0.1 * np.arange(5))
        assert stored.segment_ids.tolist() == [-1, -1, 0, 0, 0]
        assert stored.received_at.tolist() == [1000.0 + i for i in range(5)]
        assert again.segments("S") == [Segment(0, "smile", 1.0, 9.0)]
        assert again.statistics("S")["session"]["n_keyframes"] == 6
        [finding] = again.findings("S")
        assert (finding["row"], finding["col"], finding["first_seen_s"], finding["last_seen_s"]) == (
            "AU5",
            "AU20",
            2.0,
            3.0,
        )
        record = again.session("S")
        assert (record.n_keyframes, record.status, record.counts, record.label) == (
            5,
            "live",
            {"frames_received": 120},
            "label",
        )
        assert again.tokens("S", "clinician") == [("h" * 64, issued)]
        assert again.end_interrupted() == 1 and again.session_status("S") == "ended"
        [patient] = again.patients()
        assert (patient.code, patient.n_sessions) == ("P-1", 2)
        assert [(r.id, kind) for r, kind in again.patient_sessions("P-1")] == [("R", "recorded"), ("S", "live")]
        assert again.grades("S") == (5, "live", {"composite": 70})
        assert len(again.series("R").series) == 3 and again.session("R").status == "ended"
        assert [r.id for r in again.sessions()] == ["S", "R"]  # newest first
    finally:
        again.close()


def test_each_keyframe_is_readable_by_another_node_as_soon_as_it_is_written(target):
    writer, reader = Store(target), Store(target)  # two connections, as two nodes would hold
    try:
        writer.create_session("S", "", False, {})
        for i in range(4):
            writer.add_keyframe("S", i, i, 0.1 * i, 100.0 + i, None, 0, np.full(N_AUS, i), np.zeros(N_AUS))
            assert len(reader.series("S").series) == i + 1
        with pytest.raises(StorageError):  # the same seq twice: refused, and the row stays as it was
            writer.add_keyframe("S", 3, 99, 9.9, 199.0, None, 0, np.zeros(N_AUS), np.zeros(N_AUS))
        assert reader.series("S").series.frames.tolist() == [0, 1, 2, 3]
        assert writer.errors == 1
    finally:
        writer.close()
        reader.close()


_WRITER = """
import sys
import numpy as np
from stream.server.store import Store
store = Store(sys.argv[1])
store.create_session("K", "", False, {})
for i in range(10_000):
    store.add_keyframe("K", i, i, 0.1 * i, 100.0 + i, None, 0, np.full(12, i % 5), np.zeros(12))
    print(i, flush=True)
"""


def test_a_writer_killed_mid_session_loses_no_keyframe_it_wrote(target):
    """A node dies with SIGKILL while writing: every row it reported written is there for the next node."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, target], cwd=REPO, stdout=subprocess.PIPE, text=True)
    written = -1
    try:
        for line in proc.stdout:
            written = int(line)
            if written >= 20:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert written >= 20
    store = Store(target)
    try:
        frames = store.series("K").series.frames
        assert len(frames) >= written + 1  # each reported row, and perhaps the one in flight
        assert frames.tolist() == list(range(len(frames)))
    finally:
        store.close()


def _old_schema(target: str) -> None:
    """A keyframes table as the first versions wrote it: 24 AU columns, no eye closure, no movement."""
    au_columns = ", ".join(f"{side}_{au} DOUBLE PRECISION NOT NULL" for side in ("left", "right") for au in AU_NAMES)
    statements = [
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, label TEXT NOT NULL DEFAULT '',"
        " created_at DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, ended_at DOUBLE PRECISION,"
        " mirrored INTEGER NOT NULL DEFAULT 0, config_json TEXT NOT NULL DEFAULT '{}',"
        " estimator_json TEXT NOT NULL DEFAULT '{}', counts_json TEXT NOT NULL DEFAULT '{}')",
        "CREATE TABLE keyframes (session_id TEXT NOT NULL REFERENCES sessions(id), seq INTEGER NOT NULL,"
        " frame_index INTEGER NOT NULL, time_s DOUBLE PRECISION NOT NULL, received_at DOUBLE PRECISION NOT NULL,"
        f" segment_id INTEGER, n_helpers INTEGER NOT NULL, {au_columns}, PRIMARY KEY (session_id, seq))",
        "INSERT INTO sessions (id, created_at, status) VALUES ('OLD', 0, 'ended')",
        f"INSERT INTO keyframes VALUES ('OLD', 0, 3, 0.1, 100.0, NULL, 0, {', '.join(['1.5'] * (2 * N_AUS))})",
    ]
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as db:
            for sql in statements:
                db.execute(sql)
    else:
        import sqlite3

        with sqlite3.connect(target) as db:
            for sql in statements:
                db.execute(sql)


def test_a_database_of_the_old_schema_gains_the_new_columns_on_both_backends(target):
    _old_schema(target)
    for _ in range(2):  # the second open migrates nothing and loses nothing
        store = Store(target)
        try:
            old = store.series("OLD").series
            assert len(old) == 1 and old.left[0, 0] == 1.5 and old.closure is None and old.movement is None
            if not store.session("NEW"):
                store.create_session("NEW", "", False, {})
                store.add_keyframe(
                    "NEW",
                    0,
                    0,
                    0.0,
                    100.0,
                    None,
                    0,
                    np.ones(N_AUS),
                    np.ones(N_AUS),
                    closure=np.array([0.5, 4.0]),
                    movement=np.ones((2, 3)),
                )
            assert store.series("NEW").series.closure.tolist() == [[0.5, 4.0]]
        finally:
            store.close()


def test_nodes_starting_together_create_the_schema_once(postgres_url):
    """Several nodes open a fresh PostgreSQL database at the same moment: no duplicate-table race."""
    errors: list[BaseException] = []
    stores: list[Store] = []

    def open_one() -> None:
        try:
            stores.append(Store(postgres_url))
        except BaseException as exc:  # collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        stores[0].create_session("S", "", False, {})
        assert all(s.session_status("S") == "waiting" for s in stores)
    finally:
        for s in stores:
            s.close()


def test_an_unreachable_postgresql_fails_at_start_and_the_message_hides_the_password(tmp_path):
    from services import free_port

    url = f"postgresql://stream:s3cret-password@127.0.0.1:{free_port()}/nowhere"  # nothing listens there
    with pytest.raises(StorageError) as failed:
        Store(url)
    message = str(failed.value)
    assert "s3cret-password" not in message and "stream@" not in message
    assert f"postgresql://127.0.0.1:{url.split(':')[3].split('/')[0]}/nowhere" in message
    # what serve prints on the same failure
    proc = subprocess.run(
        [sys.executable, "-m", "stream", "serve", "--db", url, "--port", str(free_port()), "--admin-key", "k" * 32],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "s3cret-password" not in proc.stdout + proc.stderr
    assert "cannot use postgresql://127.0.0.1" in proc.stderr, proc.stderr
    json.dumps(message)  # a plain one-line string


def test_an_orphaned_live_session_ends_at_its_last_stored_keyframe(target):
    store = Store(target)
    try:
        store.create_session("S", "", False, {})
        store.set_status("S", "live")
        store.start_segment("S", Segment(0, "smile", 1.0, None))
        for i, t in enumerate((0.5, 1.5, 2.5)):
            store.add_keyframe("S", i, i, t, 100.0 + t, None, 0, np.ones(N_AUS), np.ones(N_AUS))
        store.end_segment("S", 0, 2.0)
        store.start_segment("S", Segment(1, "snarl", 2.2, None))  # open: ends at the last keyframe
        store.start_segment("S", Segment(2, "pucker", 9.0, None))  # began after it: ends where it began
        assert store.live_sessions() == ["S"]
        assert store.end_orphaned("S") and not store.end_orphaned("S")
        assert [s.end_s for s in store.segments("S")] == [2.0, 2.5, 9.0]
        assert store.session_status("S") == "ended" and store.live_sessions() == []
        assert len(store.series("S").series) == 3  # the stored series as it was
    finally:
        store.close()
