"""``serve --analysis-processes``: a real patient stream analysed in a worker process that gets killed.

serve (own process) with one analysis worker process, a Python WebRTC patient streaming a real face
over loopback, a clinician WebSocket. The worker is SIGKILLed mid-stream: the dashboard says so, the
analysis goes on in a fresh worker, the dead one is reaped, and stopping the server leaves no
worker behind; a worker whose server is SIGKILLed exits by itself.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_server_support as support
import websockets
from test_server_support import (
    ProcessServer,
    allow_loopback_ice,
    connect_patient,
    create_session,
    load_face_frames,
    ws_url,
)

pytestmark = pytest.mark.slow  # a server, its worker processes and a real clip through the models

next_snapshot = partial(support.next_snapshot, timeout=90)


def analysis_workers(server_pid: int) -> list[int]:
    """Pids of the server's analysis worker processes: its children started by multiprocessing's spawn."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # exited meanwhile
        if ppid == server_pid and b"spawn_main" in command:
            pids.append(int(entry.name))
    return pids


def ended(m: dict[str, Any]) -> bool:
    return m["status"] == "ended"


def test_a_killed_analysis_worker_is_shown_replaced_and_reaped(tmp_path, shared_data):
    allow_loopback_ice()
    frames = load_face_frames(shared_data / "d9.mp4")
    server = ProcessServer(tmp_path / "s.sqlite3", tmp_path / "serve.log", ("--analysis-processes", "1")).start()
    try:
        assert server.proc is not None
        session = create_session(server.url, "killed worker")

        async def story() -> tuple[list[int], list[int], dict[str, Any]]:
            async with websockets.connect(ws_url(server.url, session)) as ws:
                pc = await connect_patient(server.url, session, frames)
                await next_snapshot(ws, lambda m: m["health"]["keyframes"] >= 3, fail=ended)
                [victim] = analysis_workers(server.proc.pid)
                os.kill(victim, signal.SIGKILL)
                alerted = await next_snapshot(
                    ws, lambda m: (m["alert"] or {}).get("code") == "analysis_restarted", fail=ended
                )
                assert "killed by SIGKILL" in alerted["alert"]["message"]
                assert "AU reference start afresh" in alerted["alert"]["message"]
                assert alerted["live"]
                # the analysis goes on: new keyframes, their AU values on the 0..5 scale
                later = await next_snapshot(
                    ws, lambda m: m["health"]["keyframes"] >= alerted["health"]["keyframes"] + 3, fail=ended
                )
                assert all(0 <= v <= 5 for side in ("left", "right") for v in later["latest"][side])
                replacements = analysis_workers(server.proc.pid)
                async with httpx.AsyncClient(timeout=30) as http:
                    r = await http.post(
                        f"{server.url}/api/s/{session['session_id']}/hangup",
                        headers={"Authorization": f"Bearer {session['patient_token']}"},
                    )
                    assert r.status_code == 200
                await pc.close()
                final = await next_snapshot(ws, ended)
                return [victim], replacements, final

        victims, replacements, final = asyncio.run(story())
        assert len(replacements) == 1 and replacements != victims
        assert not Path(f"/proc/{victims[0]}").exists()  # reaped by the server: no zombie
        assert final["health"]["keyframes"] >= 6
        report = httpx.get(
            f"{server.url}/api/s/{session['session_id']}/report.json",
            headers={"Authorization": f"Bearer {session['clinician_token']}"},
        ).json()
        assert report["n_keyframes"] == final["health"]["keyframes"]  # every analysed keyframe stored
    finally:
        server.stop()
    assert not any(Path(f"/proc/{pid}").exists() for pid in replacements)  # stopped with the server


def test_analysis_workers_do_not_outlive_a_killed_server(tmp_path, shared_data):
    allow_loopback_ice()
    frames = load_face_frames(shared_data / "d9.mp4", limit=60)
    server = ProcessServer(tmp_path / "s.sqlite3", tmp_path / "serve.log", ("--analysis-processes", "2")).start()
    assert server.proc is not None
    session = create_session(server.url, "killed server")

    async def story() -> list[int]:
        async with websockets.connect(ws_url(server.url, session)) as ws:
            pc = await connect_patient(server.url, session, frames)
            await next_snapshot(ws, lambda m: m["health"]["keyframes"] >= 2, fail=ended)
            workers = analysis_workers(server.proc.pid)
            os.kill(server.proc.pid, signal.SIGKILL)  # no shutdown at all
            server.proc.wait()
            await pc.close()
            return workers

    workers = asyncio.run(story())
    assert len(workers) == 1  # workers start as sessions need them: one session, one of the two
    for pid in workers:  # each sees its pipe close and exits
        assert exits(pid), f"analysis worker {pid} still runs a minute after its server was killed"


def exits(pid: int, within_s: float = 60.0) -> bool:
    """Whether process ``pid`` (not our child) exits: its pidfd becomes readable when it does."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], within_s)
        return bool(readable)
    finally:
        os.close(fd)
