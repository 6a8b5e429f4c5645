"""Real PostgreSQL and Redis servers for the tests, each in its own temporary folder on 127.0.0.1.

Debian's binaries (``.ci/run`` installs ``postgresql`` and ``redis-server``): PostgreSQL from
``/usr/lib/postgresql/<version>/bin`` (``$STREAM_PG_BIN`` to choose another folder), ``redis-server``
from the PATH. Each server listens on 127.0.0.1 only, on a free port, keeps its data and socket in
its own temporary folder, and is stopped (and the folder removed) at the end. PostgreSQL refuses to
run as root: as root the cluster is created and run as the unprivileged user ``nobody``.

Nothing here is a mock: the store and the Redis hub under test talk to these servers over TCP.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

START_TIMEOUT_S = 60.0
UNPRIVILEGED_USER = "nobody"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    """The folder with initdb and postgres, or None when PostgreSQL is not installed."""
    given = os.environ.get("STREAM_PG_BIN")
    candidates = [Path(given)] if given else sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def redis_bin() -> str | None:
    return shutil.which("redis-server")


def _as_unprivileged(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without runuser: PostgreSQL cannot be started as root")
    return [runuser, "-u", UNPRIVILEGED_USER, "--", *cmd]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"server did not listen on {port} within {START_TIMEOUT_S:g} s:\n"
                f"{log.read_text(errors='replace')[-3000:]}"
            )
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    if proc is not None and proc.poll() is None:
        # The servers run in their own process group: runuser does not pass SIGINT on to postgres, which
        # then waited out the 30 s below and was left running after runuser was killed.
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


class PostgresServer:
    """``initdb`` into a temporary folder, then ``postgres`` on 127.0.0.1:<free port> (trust auth, user ``stream``)."""

    user = "stream"

    def __init__(self, bin_dir: Path, fsync: bool = False) -> None:
        self.bin = bin_dir
        self.fsync = fsync  # off for tests (they kill serve nodes, never the database); on for benchmarks
        # As root the server runs as ``nobody``, who must reach the folder: /tmp, whatever $TMPDIR says.
        self.root = Path(tempfile.mkdtemp(prefix="stream-pg-", dir="/tmp" if os.geteuid() == 0 else None))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._databases = 0

    def start(self) -> PostgresServer:
        self.sockets.mkdir()
        if os.geteuid() == 0:
            import pwd

            entry = pwd.getpwnam(UNPRIVILEGED_USER)
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(self.root, 0o700)
        subprocess.run(
            _as_unprivileged(
                [
                    str(self.bin / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        with open(self.log, "ab") as log:
            # fsync off for the tests: they kill serve nodes, never the database server.
            self.proc = subprocess.Popen(
                _as_unprivileged(
                    [
                        str(self.bin / "postgres"),
                        "-D",
                        str(self.data),
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(self.port),
                        "-k",
                        str(self.sockets),
                        "-c",
                        f"fsync={'on' if self.fsync else 'off'}",
                        "-c",
                        "max_connections=200",
                    ]
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_port(self.port, self.proc, self.log)
        self._ready()
        return self

    def _ready(self) -> None:
        """The port opens before the server accepts queries: wait for a query to answer."""
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.url("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                    raise
                time.sleep(0.1)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        self._databases += 1
        name = f"test_{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # fast shutdown: open connections are cut
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """``redis-server`` on 127.0.0.1:<free port>, no persistence, its folder temporary."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.root = Path(tempfile.mkdtemp(prefix="stream-redis-"))
        self.log = self.root / "redis.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                    "--protected-mode",
                    "yes",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_port(self.port, self.proc, self.log)
        return self

    def flush(self) -> None:
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            client.flushall()
        finally:
            client.close()

    def stop(self) -> None:
        _stop(self.proc)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)
