"""Fault run (issue 9): the live server's database on a real, small tmpfs that fills up mid-stream.

    sudo python benchmarks/fault_disk_full.py                   # 1 MiB tmpfs, grown to 64 MiB
    sudo python benchmarks/fault_disk_full.py --refill          # full again (ballast file) at hang-up

Needs root (it mounts a tmpfs); skips with a message otherwise or when ``mount`` fails. ``serve``
runs in its own process exactly as ``python -m stream -v serve --db <tmpfs>/live.db --admin-key …``
(ICE forced onto 127.0.0.1, like every test process: no traffic leaves loopback); a Python aiortc
patient streams ../shared/data/d9.mp4 at 640x480, 30 fps, looped; a clinician WebSocket watches.

1. stream until the tmpfs is full: the dashboard (and ``GET /api/s/<id>/state``) must show the alert
   ``storage`` while the session stays live; frames dropped meanwhile are counted;
2. grow the tmpfs (``mount -o remount,size=…``): the alert must clear and keyframes go on;
3. (``--refill``: fill the tmpfs again with a ballast file and wait for the alert;) hang up and stop
   the server with SIGTERM, each timed; reopen the database: keyframes stored = keyframes analysed
   (the server's last figure), none stored twice; the ``serve`` log must hold no token or key, no
   traceback, and no ERROR line other than the storage outage's own.

Prints a result table; exit 0 when every check held, 1 otherwise, 0 with a message when skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

# tests/ is not a package: its helpers can be imported only after the sys.path lines above.
from test_server_support import (  # noqa: E402
    ADMIN_KEY,
    ProcessServer,
    allow_loopback_ice,
    connect_patient,
    create_session,
    load_face_frames,
    next_snapshot,
    ws_url,
)

DATA = Path(os.environ.get("STREAM_SHARED_DATA", REPO.parent / "shared" / "data"))

# ``python -m stream -v serve …`` (the CLI's own logging set-up, INFO lines included), with ICE host
# candidates forced onto 127.0.0.1 first, as in every process of the tests.
_CLI_LAUNCHER = """
import sys, aioice.ice
aioice.ice.get_host_addresses = lambda use_ipv4=True, use_ipv6=False: ["127.0.0.1"]  # loopback only
from stream.cli import main
sys.exit(main(["-v", "serve", *sys.argv[1:]]))
"""

# ERROR lines the outage itself is expected to log (one when a session's write fails, one per request
# refused with 503): each quotes the StorageError, "could not write to <db>: …"
_EXPECTED_ERRORS = ("could not write to",)


class CliServer(ProcessServer):
    launcher = _CLI_LAUNCHER


def mount_tmpfs(where: Path, size: str) -> str | None:
    """None when mounted, else why not."""
    if os.geteuid() != 0:
        return "not root (mounting a tmpfs needs root)"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if done.returncode == 0 else f"mount failed: {done.stderr.strip() or done.returncode}"


def remount(where: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True, capture_output=True, text=True)


def used_kib(where: Path) -> tuple[int, int]:
    st = os.statvfs(where)
    return (st.f_blocks - st.f_bfree) * st.f_frsize // 1024, st.f_blocks * st.f_frsize // 1024


def fill(path: Path) -> int:
    """Write a ballast file until the file system refuses; returns the bytes written."""
    written = 0
    chunk = b"\0" * 4096
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                written += f.write(chunk)
        except OSError:
            pass
    return written


def storage_alert(m: dict[str, Any]) -> bool:
    return (m.get("alert") or {}).get("code") == "storage"


def ended(m: dict[str, Any]) -> bool:
    return m["status"] == "ended"


async def run(mnt: Path, tmp: Path, args: argparse.Namespace, r: dict[str, Any]) -> CliServer:
    import httpx
    import websockets

    allow_loopback_ice()
    frames = load_face_frames(DATA / "d9.mp4", size=(640, 480))
    server = CliServer(mnt / "live.db", tmp / "serve.log")
    r["server"] = server
    server.start()
    r["db_kib_at_start"] = used_kib(mnt)[0]
    session = create_session(server.url, "disk-full")
    r["session"] = session
    sid = session["session_id"]
    patient = {"Authorization": f"Bearer {session['patient_token']}"}
    clinician = {"Authorization": f"Bearer {session['clinician_token']}"}
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=30) as http,
        websockets.connect(ws_url(server.url, session), max_size=None) as ws,
    ):
        pc = await connect_patient(server.url, session, frames)
        assert (
            await http.post(f"/api/s/{sid}/exercise", json={"action": "start", "exercise": "smile"}, headers=patient)
        ).status_code == 200
        first = await next_snapshot(ws, lambda m: m["health"]["keyframes"] >= 1, timeout=args.timeout, fail=ended)
        t_stream = time.monotonic()
        # 1. the tmpfs fills
        paused = await next_snapshot(ws, storage_alert, timeout=args.timeout, fail=ended)
        r["full_after_s"] = time.monotonic() - t_stream
        r["used_kib_when_full"], r["tmpfs_kib"] = used_kib(mnt)
        r["alert_message"] = paused["alert"]["message"]
        r["paused_live"] = paused["status"] == "live" and paused["live"]
        r["keyframes_at_pause"] = paused["health"]["keyframes"]
        r["keyframes_before_full"] = paused["health"]["keyframes"] - first["health"]["keyframes"]
        state = (await http.get(f"/api/s/{sid}/state", headers=clinician)).json()
        r["api_state_alert"] = (state.get("alert") or {}).get("code")
        dropping = await next_snapshot(
            ws, lambda m: m["health"]["frames_dropped_storage"] >= args.drop_frames, timeout=args.timeout, fail=ended
        )
        r["dropping_live"] = dropping["status"] == "live" and dropping["live"] and storage_alert(dropping)
        r["keyframes_while_full"] = dropping["health"]["keyframes"] - paused["health"]["keyframes"]
        r["frames_dropped_storage"] = dropping["health"]["frames_dropped_storage"]
        # 2. space returns
        remount(mnt, args.grow_to)
        t_grow = time.monotonic()
        r["grown_at"] = time.time()  # wall clock, as the stored receipt times
        resumed = await next_snapshot(ws, lambda m: m["alert"] is None, timeout=args.timeout, fail=ended)
        r["resume_after_s"] = time.monotonic() - t_grow
        r["frames_dropped_storage"] = resumed["health"]["frames_dropped_storage"]

        # Keyframes queued before the outage are analysed first; then those filmed after the grow.
        def not_full(m: dict[str, Any]) -> bool:
            return ended(m) or storage_alert(m)

        fresh = await next_snapshot(
            ws,
            lambda m: m["latest"] is not None and m["latest"]["received_at"] > r["grown_at"],
            timeout=args.timeout,
            fail=not_full,
        )
        more = await next_snapshot(
            ws,
            lambda m: m["health"]["keyframes"] >= fresh["health"]["keyframes"] + args.more - 1,
            timeout=args.timeout,
            fail=not_full,
        )
        r["keyframes_after_resume"] = more["health"]["keyframes"] - resumed["health"]["keyframes"]
        if args.refill:  # 3a. full again: the end of the stream meets a full disk
            r["ballast_bytes"] = fill(mnt / "ballast")
            await next_snapshot(ws, storage_alert, timeout=args.timeout, fail=ended)
        # 3. hang-up, then SIGTERM
        t0 = time.monotonic()
        hang = await http.post(f"/api/s/{sid}/hangup", headers=patient)
        r["hangup_s"] = time.monotonic() - t0
        r["hangup_status"] = hang.status_code
        final = await next_snapshot(ws, ended, timeout=args.timeout)
        if args.refill:  # requests that must write: 503 once the last free bytes of the pages are used
            for _ in range(200):
                created = await http.post("/api/sessions", json={}, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
                if created.status_code != 201:
                    break
            r["create_when_full"] = f"{created.status_code} {created.json().get('error')}"
        r["keyframes_analysed"] = final["health"]["keyframes"]
        r["final_health"] = final["health"]
        await pc.close()
    assert server.proc is not None
    t0 = time.monotonic()
    server.proc.terminate()  # SIGTERM
    r["sigterm_rc"] = server.proc.wait(timeout=60)
    r["sigterm_s"] = time.monotonic() - t0
    server.proc = None
    return server


def check_store(mnt: Path, r: dict[str, Any]) -> None:
    from stream.server.store import Store

    (mnt / "ballast").unlink(missing_ok=True)
    store = Store(mnt / "live.db")
    try:
        sid = r["session"]["session_id"]
        stored = store.series(sid)
        record = store.session(sid)
        r["keyframes_stored"] = len(stored.series)
        r["keyframes_unique"] = len(set(stored.series.frames.tolist()))
        r["stored_after_resume"] = int((stored.received_at > r["grown_at"]).sum())  # filmed after space returned
        r["stored_status"] = record.status if record else None
        r["stored_frames_dropped_storage"] = (record.counts if record else {}).get("frames_dropped_storage")
    finally:
        store.close()


def scan_log(log: Path, r: dict[str, Any]) -> None:
    text = log.read_text(errors="replace")
    session = r.get("session") or {}
    secrets = [s for s in (session.get("patient_token"), session.get("clinician_token"), ADMIN_KEY) if s]
    r["log_secrets"] = sum(text.count(s) for s in secrets)
    r["log_tracebacks"] = text.count("Traceback")
    r["log_clean_shutdown"] = "Application shutdown complete" in text
    errors = [line for line in text.splitlines() if "ERROR" in line]
    r["log_error_lines"] = len(errors)
    r["log_unexpected_errors"] = [line for line in errors if not any(e in line for e in _EXPECTED_ERRORS)]
    r["log_storage_lines"] = [
        line for line in text.splitlines() if "database" in line and ("paused" in line or "resumes" in line)
    ]


def report(r: dict[str, Any], args: argparse.Namespace) -> bool:
    def fmt(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    checks = [
        ("tmpfs at start / size (KiB)", f"{r.get('db_kib_at_start')} / {args.size}", True),
        ("full after (s of streaming)", r.get("full_after_s"), r.get("full_after_s") is not None),
        ("used when full (KiB of)", f"{r.get('used_kib_when_full')} of {r.get('tmpfs_kib')}", True),
        ("keyframes stored before full", r.get("keyframes_at_pause"), (r.get("keyframes_at_pause") or 0) >= 1),
        ("alert", r.get("alert_message"), "database cannot be written" in (r.get("alert_message") or "")),
        (
            "session live, patient connected while full",
            r.get("paused_live") and r.get("dropping_live"),
            bool(r.get("paused_live") and r.get("dropping_live")),
        ),
        ("GET /state alert", r.get("api_state_alert"), r.get("api_state_alert") == "storage"),
        ("keyframes analysed while full", r.get("keyframes_while_full"), (r.get("keyframes_while_full") or 0) <= 1),
        (
            "frames dropped (storage)",
            r.get("frames_dropped_storage"),
            (r.get("frames_dropped_storage") or 0) >= args.drop_frames,
        ),
        (
            f"alert cleared after growing to {args.grow_to} (s)",
            r.get("resume_after_s"),
            r.get("resume_after_s") is not None,
        ),
        (
            "keyframes analysed after resume (queued ones first)",
            r.get("keyframes_after_resume"),
            (r.get("keyframes_after_resume") or 0) >= args.more,
        ),
    ]
    if args.refill:
        checks.append(("ballast written to refill (KiB)", (r.get("ballast_bytes") or 0) // 1024, True))
        checks.append(
            (
                "POST /api/sessions, disk full",
                r.get("create_when_full"),
                r.get("create_when_full") == "503 storage unavailable",
            )
        )
    checks += [
        (
            "hang-up (s)" + (", disk full" if args.refill else ""),
            r.get("hangup_s"),
            r.get("hangup_status") == 200 and (r.get("hangup_s") or 99) < 5,
        ),
        # uvicorn re-raises the signal once its shutdown is complete: exit status -15 is the clean one
        (
            "SIGTERM to exit (s), exit status, shutdown complete",
            f"{fmt(r.get('sigterm_s'))}, {r.get('sigterm_rc')}, {r.get('log_clean_shutdown')}",
            r.get("sigterm_s") is not None and r["sigterm_s"] < 15 and bool(r.get("log_clean_shutdown")),
        ),
        (
            "keyframes analysed / stored / unique",
            f"{r.get('keyframes_analysed')} / {r.get('keyframes_stored')} / {r.get('keyframes_unique')}",
            r.get("keyframes_analysed") is not None
            and r.get("keyframes_analysed") == r.get("keyframes_stored") == r.get("keyframes_unique"),
        ),
        (
            "keyframes stored, filmed after space returned",
            r.get("stored_after_resume"),
            (r.get("stored_after_resume") or 0) >= args.more,
        ),
        (
            "stored status, frames dropped (storage)",
            f"{r.get('stored_status')}, {r.get('stored_frames_dropped_storage')}",
            args.refill or r.get("stored_status") == "ended",
        ),
        (
            "log: tokens/key, tracebacks",
            f"{r.get('log_secrets')}, {r.get('log_tracebacks')}",
            r.get("log_secrets") == 0 and r.get("log_tracebacks") == 0,
        ),
        (
            "log: ERROR lines (unexpected)",
            f"{r.get('log_error_lines')} ({len(r.get('log_unexpected_errors') or [])})",
            r.get("log_error_lines") is not None and not r.get("log_unexpected_errors"),
        ),
    ]
    width = max(len(name) for name, _, _ in checks)
    print(f"\n{'check':<{width}}  ok  value")
    for name, value, ok in checks:
        print(f"{name:<{width}}  {'yes' if ok else 'NO '} {fmt(value)}")
    for line in r.get("log_storage_lines") or []:
        print("log:", line[:200])
    for line in r.get("log_unexpected_errors") or []:
        print("unexpected:", line[:300])
    return all(ok for _, _, ok in checks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1m", help="tmpfs size at start (default 1m: full after seconds)")
    parser.add_argument("--grow-to", default="64m", help="tmpfs size once space returns (default 64m)")
    parser.add_argument("--drop-frames", type=int, default=60, help="frames dropped before space returns (default 60)")
    parser.add_argument("--more", type=int, default=3, help="keyframes that must follow the resume (default 3)")
    parser.add_argument("--refill", action="store_true", help="fill the tmpfs again before the hang-up")
    parser.add_argument("--timeout", type=float, default=180, help="seconds each stage may take (default 180)")
    args = parser.parse_args()
    if not (DATA / "d9.mp4").exists():
        print(f"skipped: {DATA / 'd9.mp4'} not found")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="fault-disk-full-"))
    mnt = tmp / "disk"
    mnt.mkdir()
    why = mount_tmpfs(mnt, args.size)
    if why is not None:
        print(f"skipped: {why}")
        shutil.rmtree(tmp, ignore_errors=True)
        return 0
    r: dict[str, Any] = {}
    failure = None
    try:
        try:
            asyncio.run(run(mnt, tmp, args, r))
            check_store(mnt, r)
        except Exception as exc:  # noqa: BLE001  reported with the table: what was measured up to here stays useful
            failure = f"{type(exc).__name__}: {exc}"
        finally:
            server = r.get("server")
            if server is not None and server.proc is not None:
                server.stop()
        scan_log(tmp / "serve.log", r)
        ok = report(r, args) and failure is None
        if failure:
            print(f"\nfailed: {failure}\nserve log tail:\n{(tmp / 'serve.log').read_text(errors='replace')[-3000:]}")
        print(f"\nserve log: {tmp / 'serve.log'}")
        return 0 if ok else 1
    finally:
        done = subprocess.run(["umount", str(mnt)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"umount {mnt}: {done.stderr.strip()}; lazy unmount", file=sys.stderr)
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)
        else:
            mnt.rmdir()


if __name__ == "__main__":
    raise SystemExit(main())
