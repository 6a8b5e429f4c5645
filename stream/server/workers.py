"""``serve --workers N``: N node processes on one machine, sharing PostgreSQL and Redis.

One Python process uses about one core for its event loop and the interpreter lock it holds;
N processes use N. Each node is a full ``serve`` (its own WebRTC peers, model threads, dashboards)
on its own port, ``--port`` + i for i = 0..N-1, with node id ``<prefix>-<i>``; a reverse proxy
spreads clients over them (docs/scale.md) and the nodes forward session requests to the node that
holds the session. The supervisor restarts a node that exits unexpectedly (its sessions are taken
over by the others meanwhile) and stops all of them on SIGTERM or SIGINT.

Without ``--redis`` and a PostgreSQL ``--db`` the nodes could not share anything: ``--workers``
above 1 is refused, and one process serves everything (the single-process fallback, SQLite and
the in-process hub).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

RESTART_DELAY_S = 2.0
_DROPPED_FLAGS = {"--workers": 1, "--port": 1, "--node-id": 1, "--node-url": 1}


def check_workers(workers: int, db: str, redis_url: str | None) -> None:
    from stream.server.db import is_postgres

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if workers > 1 and (not redis_url or not is_postgres(db)):
        raise ValueError(
            "--workers above 1 needs --redis redis://... and a PostgreSQL --db postgresql://...: "
            "the nodes share sessions through them. Without them run one process (no --workers): "
            "SQLite and the in-process hub"
        )


def node_arguments(argv: Sequence[str]) -> list[str]:
    """The ``serve`` command line without the flags the supervisor sets per node."""
    out: list[str] = []
    skip = 0
    for arg in argv:
        if skip:
            skip -= 1
            continue
        name = arg.split("=", 1)[0]
        if name in _DROPPED_FLAGS:
            skip = 0 if "=" in arg else _DROPPED_FLAGS[name]
            continue
        out.append(arg)
    return out


def _is_admin_key(args: Sequence[str], i: int) -> bool:
    """``--admin-key VALUE`` / ``--admin-key=VALUE`` (passed to the nodes in their environment instead)."""
    return args[i].split("=", 1)[0] == "--admin-key" or (i > 0 and args[i - 1] == "--admin-key")


def run_workers(
    workers: int, port: int, host: str, node_prefix: str, argv: Sequence[str], admin_key: str | None = None
) -> int:
    """Start the nodes, keep them running, stop them together. ``argv``: the ``serve`` flags given.

    Every node needs the same clinic key: without one given, the supervisor generates it, prints it
    once, and hands it to the nodes in their environment (never on a command line others can read).
    """
    base = node_arguments(argv)
    advertised = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    env = dict(os.environ)
    if admin_key is None:
        admin_key = secrets.token_urlsafe(24)
        print(f"stream: clinic admin key (new, keep it): {admin_key}", flush=True)
    env["STREAM_ADMIN_KEY"] = admin_key
    base = [arg for i, arg in enumerate(base) if not _is_admin_key(base, i)]
    if not any(arg.split("=", 1)[0] == "--analysis-processes" for arg in base):
        from stream.server.settings import default_analysis_processes

        # The nodes share the machine's cores: each gets its share of analysis processes, not the whole default.
        base += ["--analysis-processes", str(max(1, default_analysis_processes() // workers))]

    def start(i: int) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable,
            "-m",
            "stream",
            "serve",
            *base,
            "--port",
            str(port + i),
            "--node-id",
            f"{node_prefix}-{i}",
            "--node-url",
            f"http://{advertised}:{port + i}",
        ]
        return subprocess.Popen(cmd, env=env)

    procs = {i: start(i) for i in range(workers)}
    print(
        f"stream: {workers} nodes on ports {port}..{port + workers - 1} (ids {node_prefix}-0..{workers - 1})",
        flush=True,
    )
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        time.sleep(0.5)
        for i, proc in list(procs.items()):
            code = proc.poll()
            if code is not None and not stopping:
                print(
                    f"stream: node {node_prefix}-{i} exited with {code}; restarting in {RESTART_DELAY_S:g} s",
                    file=sys.stderr,
                    flush=True,
                )
                time.sleep(RESTART_DELAY_S)
                if not stopping:
                    procs[i] = start(i)
    codes = []
    for proc in procs.values():
        try:
            codes.append(proc.wait(timeout=30))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return 0 if all(c in (0, -signal.SIGTERM) for c in codes) else 1
