"""A node's operational surface (/healthz, /readyz, /metrics), structured logs, and serve --workers,
on real servers: uvicorn on 127.0.0.1, SQLite, and (where named) real PostgreSQL and Redis."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_server_support import ADMIN_KEY, REPO, ThreadServer, create_session, free_port

from stream.server import ServerSettings, create_app
from stream.server.logformat import JsonFormatter
from stream.server.workers import node_arguments

SERVE_TWO_WORKERS = [sys.executable, "-m", "stream", "serve", "--workers", "2"]  # the supervisor and two nodes


def metric_values(text: str) -> dict[str, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return out


def test_one_node_is_alive_ready_and_exports_prometheus_metrics(tmp_path):
    app = create_app(ServerSettings(db_path=str(tmp_path / "s.sqlite3"), admin_key=ADMIN_KEY))
    with ThreadServer(app) as server:
        assert httpx.get(server.url + "/healthz").json()["ok"] is True
        ready = httpx.get(server.url + "/readyz")
        assert (
            ready.status_code == 200 and ready.json()["ready"] and ready.json()["store"] and "redis" not in ready.json()
        )
        session = create_session(server.url)
        state = httpx.get(
            f"{server.url}/api/s/{session['session_id']}/state",
            headers={"Authorization": f"Bearer {session['clinician_token']}"},
        )
        assert state.status_code == 200
        answer = httpx.get(server.url + "/metrics")
        assert answer.headers["content-type"].startswith("text/plain")
        values = metric_values(answer.text)
        assert values["stream_frames_received_total"] == 0 and values["stream_keyframes_total"] == 0
        assert values["stream_store_errors_total"] == 0 and values["stream_viewers"] == 0
        assert values["stream_frame_to_dashboard_seconds_count"] == 0
        assert "stream_sessions{state=idle}" in values and "stream_redis_up" not in values
        # a failing database shows in readiness and in the error counter
        app.state.store.close()
        assert httpx.get(server.url + "/readyz").status_code == 503
        assert metric_values(httpx.get(server.url + "/metrics").text)["stream_store_errors_total"] >= 1


def test_readiness_follows_redis(tmp_path):
    from services import RedisServer, redis_bin

    binary = redis_bin()
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    redis = RedisServer(binary).start()
    try:
        app = create_app(
            ServerSettings(db_path=str(tmp_path / "s.sqlite3"), admin_key=ADMIN_KEY, redis_url=redis.url, node_id="n1")
        )
        with ThreadServer(app) as server:
            assert httpx.get(server.url + "/readyz").json() == {
                "ready": True,
                "node": "n1",
                "store": True,
                "redis": True,
            }
            assert metric_values(httpx.get(server.url + "/metrics").text)["stream_redis_up"] == 1
            session = create_session(server.url)
            redis.stop()
            answer = httpx.get(server.url + "/readyz")
            assert answer.status_code == 503 and answer.json()["redis"] is False and answer.json()["store"] is True
            assert httpx.get(server.url + "/healthz").status_code == 200  # alive, not ready
            # a session request cannot be placed: 503 with Retry-After (the pages retry), not a 500
            state = httpx.get(
                f"{server.url}/api/s/{session['session_id']}/state",
                headers={"Authorization": f"Bearer {session['clinician_token']}"},
            )
            assert state.status_code == 503 and state.headers["retry-after"] == "1"
    finally:
        redis.stop()


def test_json_log_lines_carry_node_and_session_and_never_a_token():
    formatter = JsonFormatter(node="n1")
    record = logging.LogRecord(
        "stream.server.live",
        logging.WARNING,
        __file__,
        1,
        "session %s: GET /ws/s/x?token=%s failed, Bearer %s",
        ("abc_DEF-1", "SECRET1", "SECRET2"),
        None,
    )
    line = json.loads(formatter.format(record))
    assert (line["node"], line["session"], line["level"], line["logger"]) == (
        "n1",
        "abc_DEF-1",
        "warning",
        "stream.server.live",
    )
    assert "SECRET" not in json.dumps(line) and "token=<redacted>" in line["message"]
    try:
        raise RuntimeError("token=SECRET3 in an exception")
    except RuntimeError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "plain line", (), sys.exc_info())
    line = json.loads(formatter.format(record))
    assert "session" not in line and line["error"].startswith("RuntimeError") and "SECRET3" not in json.dumps(line)
    # session ids are URL-safe base64: one may start or end with "-" or "_" (an id ending in "-" was cut
    # back to its last letter by the old pattern's word boundary)
    for sid in ("_JO8abMb1G6aTer-", "-abc", "a_", "--"):
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "session %s: ended", (sid,), None)
        assert json.loads(formatter.format(record))["session"] == sid
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "session %s pipeline stages (ms): {}", ("ab-",), None)
    assert json.loads(formatter.format(record))["session"] == "ab-"


def test_workers_flags_are_set_per_node_and_workers_need_postgresql_and_redis(tmp_path):
    assert node_arguments(["--workers", "3", "--port=9000", "--db", "postgresql://x", "--node-id", "a", "-v"]) == [
        "--db",
        "postgresql://x",
        "-v",
    ]
    proc = subprocess.run(
        [
            *SERVE_TWO_WORKERS,
            "--db",
            str(tmp_path / "s.sqlite3"),
            "--admin-key",
            ADMIN_KEY,
            "--port",
            str(free_port()),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--workers above 1 needs --redis" in proc.stderr


@pytest.mark.slow
def test_serve_workers_runs_nodes_that_share_the_sessions(postgres_url, redis_url):
    port = free_port()
    while any(not _free(p) for p in (port, port + 1)):
        port = free_port()
    # no --admin-key: the supervisor generates one clinic key for all its nodes and prints it once
    proc = subprocess.Popen(
        [
            *SERVE_TWO_WORKERS,
            "--port",
            str(port),
            "--db",
            postgres_url,
            "--redis",
            redis_url,
            "--model-workers",
            "1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    urls = [f"http://127.0.0.1:{port + i}" for i in range(2)]
    try:
        first = proc.stdout.readline().decode()
        assert first.startswith("stream: clinic admin key (new, keep it): "), first
        key = first.split(": ", 2)[-1].strip()
        admin = {"Authorization": f"Bearer {key}"}
        deadline = time.monotonic() + 180
        for url in urls:
            while True:
                try:
                    if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None and time.monotonic() < deadline, "nodes did not become ready"
                time.sleep(0.3)
        nodes = {httpx.get(url + "/healthz").json()["node"] for url in urls}
        assert nodes == {"node-0", "node-1"}
        made = httpx.post(urls[0] + "/api/sessions", json={"label": "made on node 0"}, headers=admin)
        assert made.status_code == 201
        session = made.json()
        listed = httpx.get(urls[1] + "/api/sessions", headers=admin).json()["sessions"]
        assert [s["label"] for s in listed if s["id"] == session["session_id"]] == ["made on node 0"]
        # a clinician's state request on node 1 is answered for the session (opened there, or forwarded)
        state = httpx.get(
            f"{urls[1]}/api/s/{session['session_id']}/state",
            headers={"Authorization": f"Bearer {session['clinician_token']}"},
        )
        assert state.status_code == 200 and state.json()["session"] == session["session_id"]
    finally:
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    assert proc.returncode == 0, output[-3000:]
    assert output.count(key) == 0  # printed once (read above), by the supervisor only: no node printed it again


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_a_node_that_lost_its_lease_to_another_node_stops_holding_the_session(tmp_path, redis_url):
    """A node paused past its lease: another node took the session; at its next heartbeat the first
    node closes its copy, so two nodes never both analyse one patient."""
    import asyncio

    from stream.server.cluster import Cluster

    app = create_app(
        ServerSettings(
            db_path=str(tmp_path / "s.sqlite3"), admin_key=ADMIN_KEY, redis_url=redis_url, node_id="n1", lease_s=30
        )
    )
    with ThreadServer(app) as server:
        session = create_session(server.url)
        sid = session["session_id"]
        sessions, cluster = app.state.sessions, app.state.node.cluster
        server.call(sessions.open, sid)  # held here (as by a dashboard or a patient)
        assert sid in sessions and cluster.owns(sid)

        async def steal() -> str:
            # n2 holds it for longer than this test can take (n1's own lease is 30 s)
            other = Cluster(redis_url, "http://127.0.0.1:9", node_id="n2", lease_s=600)
            await other.start()
            try:
                await other._redis.delete(other._owner_key(sid))  # n1's lease ran out while it was paused
                return (await other.claim(sid)).node_id
            finally:
                for task in other._tasks:  # n2 keeps its lease (it "lives on" after this test's loop)
                    task.cancel()
                await other._redis.aclose(close_connection_pool=True)

        assert asyncio.run(steal()) == "n2"
        server.call(cluster.beat)  # n1's next heartbeat

        async def gone() -> bool:
            for _ in range(200):
                if sid not in sessions:
                    return True
                await asyncio.sleep(0.05)
            return False

        assert server.call(gone) and not cluster.owns(sid)
        # requests for the session now go to n2's address (forwarded; n2 does not answer here: 503)
        state = httpx.get(
            f"{server.url}/api/s/{sid}/state", headers={"Authorization": f"Bearer {session['clinician_token']}"}
        )
        assert state.status_code == 503 and state.headers["retry-after"] == "1"


def test_a_live_session_whose_node_died_is_ended_when_no_patient_comes_back(tmp_path, redis_url):
    """Several nodes: a dead node's session stays live for a takeover; if nobody reconnects within
    orphan_end_s after its lease ran out, a node ends it as a stream ends (segment closed at the last
    stored keyframe, patient link refused). A session another live node holds is left alone."""
    import asyncio

    import numpy as np

    from stream.aus import N_AUS
    from stream.server.cluster import Cluster
    from stream.server.sessions import Role, new_token, token_hash
    from stream.session.exercises import Segment

    settings = ServerSettings(
        db_path=str(tmp_path / "s.sqlite3"),
        admin_key=ADMIN_KEY,
        redis_url=redis_url,
        node_id="n1",
        lease_s=1.0,
        orphan_end_s=0.5,
    )
    app = create_app(settings)
    store = app.state.store
    patient = new_token()
    for sid in ("ORPHAN", "HELD"):
        store.create_session(sid, "", False, {})
        store.set_status(sid, "live")
    store.add_token("ORPHAN", Role.PATIENT.value, token_hash(patient))
    store.start_segment("ORPHAN", Segment(0, "smile", 1.0, None))
    for i, t in enumerate((0.5, 1.5, 2.5)):
        store.add_keyframe("ORPHAN", i, i, t, 100.0 + t, 0 if t > 1 else None, 0, np.ones(N_AUS), np.ones(N_AUS))

    async def hold() -> None:  # another live node holds HELD, for longer than this test can take
        other = Cluster(redis_url, "http://127.0.0.1:9", node_id="n2", lease_s=600)
        await other._redis.set(other._node_key(), other.node_url, px=600_000)
        assert (await other.claim("HELD")).is_self
        await other._redis.aclose(close_connection_pool=True)

    asyncio.run(hold())
    with ThreadServer(app) as server:
        deadline = time.monotonic() + 30
        while store.session_status("ORPHAN") != "ended":  # the node's sweeper, every lease/2
            assert time.monotonic() < deadline, "the orphaned session was not ended"
            time.sleep(0.1)
        assert store.segments("ORPHAN") == [Segment(0, "smile", 1.0, 2.5)]
        assert store.session_status("HELD") == "live"
        offer = httpx.post(
            f"{server.url}/api/s/ORPHAN/offer",
            json={"sdp": "v=0", "type": "offer"},
            headers={"Authorization": f"Bearer {patient}"},
        )
        assert offer.status_code == 403  # the patient link ended with the session
        assert not app.state.node.cluster.owns("ORPHAN")  # the lease taken to end it was given back
