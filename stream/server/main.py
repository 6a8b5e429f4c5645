"""``python -m stream serve``: flags onto ``ServerSettings``, then uvicorn."""

from __future__ import annotations

import argparse
import os
import sys

from stream.config import AnalysisConfig
from stream.errors import ConfigError
from stream.server.settings import PROCESSES_PER_CORE, IceServer, ServerSettings, default_analysis_processes


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    d = ServerSettings()
    parser.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host}; 0.0.0.0 for the LAN)")
    parser.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port})")
    parser.add_argument(
        "--db",
        default=None,
        help=f"SQLite file for sessions and results, or a PostgreSQL URL postgresql://user:password@host:port/db "
        f"shared by several nodes (default $STREAM_DB or {d.db_path})",
    )
    parser.add_argument(
        "--redis",
        default=None,
        metavar="URL",
        help="Redis (redis://host:port/0) for several nodes: session placement and dashboards on any node "
        "(default $STREAM_REDIS; none: one node). See docs/scale.md",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="node processes on this machine, on ports --port .. --port+N-1 (needs --redis and a PostgreSQL --db)",
    )
    parser.add_argument(
        "--node-url", default=None, help="where the other nodes reach this one (default http://host:port)"
    )
    parser.add_argument("--node-id", default=None, help="this node's name in logs and metrics (default random)")
    parser.add_argument(
        "--lease",
        type=float,
        default=d.lease_s,
        metavar="SECONDS",
        help=f"a dead node's sessions are taken over after at most this long (default {d.lease_s:g})",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per log line, with node and session ids (never tokens)",
    )
    parser.add_argument(
        "--admin-key",
        default=None,
        help="clinic key needed to create and list sessions (default $STREAM_ADMIN_KEY, else a new one is printed)",
    )
    parser.add_argument(
        "--link-ttl",
        type=float,
        default=None,
        metavar="SECONDS",
        help="clinician links stop working this many seconds after they were issued (default: never); "
        "the clinic key issues new ones (POST /api/sessions/<id>/clinician-link). Patient links "
        "stop when their session ends",
    )
    parser.add_argument(
        "--public-url", default=None, help="base of the links handed out, e.g. https://clinic.example.org"
    )
    parser.add_argument(
        "--certfile", default=None, help="TLS certificate (PEM): browsers need HTTPS for the camera off localhost"
    )
    parser.add_argument("--keyfile", default=None, help="TLS private key (PEM)")
    parser.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for both peers, repeatable (default none: host candidates on a LAN)",
    )
    parser.add_argument("--turn-username", default=None, help="username for the TURN servers")
    parser.add_argument("--turn-credential", default=None, help="credential for the TURN servers")
    parser.add_argument(
        "--mirrored-source",
        action="store_true",
        help="the patient's client sends selfie-mirrored frames (browsers do not)",
    )
    parser.add_argument(
        "--model-workers",
        type=int,
        default=d.model_workers,
        help=f"model threads shared by all sessions (default {d.model_workers})",
    )
    parser.add_argument(
        "--analysis-processes",
        type=int,
        default=None,
        metavar="N",
        help="worker processes the sessions' analysis runs in, each session in the least-loaded one "
        f"(started as sessions need them, up to N; default {PROCESSES_PER_CORE} per core, here "
        f"{default_analysis_processes()}); 0: in this process's model threads",
    )
    parser.add_argument(
        "--ws-compression",
        action="store_true",
        help="compress dashboard WebSocket messages (permessage-deflate): ~2.6x less traffic per viewer, "
        "~0.8 ms of CPU per viewer and message (default off)",
    )
    parser.add_argument(
        "--dashboard-hz",
        type=float,
        default=d.dashboard_hz,
        help=f"most dashboard updates per second per session (default {d.dashboard_hz:g}); a keyframe "
        "waits up to 1/rate for the next one, every viewer gets each one",
    )
    parser.add_argument("--estimator", default=None, help="AU estimator (default flow)")
    parser.add_argument("--checkpoint", default=None, help="DEM checkpoint (with --estimator dem)")
    parser.add_argument("--detector", default=None, help="face detector (default mtcnn)")
    parser.add_argument("--weights", default=None, help="RetinaFace weights (with --detector retinaface)")


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    analysis = {
        k: getattr(args, k) for k in ("estimator", "checkpoint", "detector", "weights") if getattr(args, k, None)
    }
    ice = tuple(
        IceServer(
            url,
            args.turn_username if url.startswith("turn") else None,
            args.turn_credential if url.startswith("turn") else None,
        )
        for url in args.ice_server
    )
    return ServerSettings(
        host=args.host,
        port=args.port,
        db_path=args.db or os.environ.get("STREAM_DB") or ServerSettings.db_path,
        admin_key=args.admin_key or os.environ.get("STREAM_ADMIN_KEY") or None,  # None: generated at start
        public_url=args.public_url or os.environ.get("STREAM_PUBLIC_URL"),
        certfile=args.certfile,
        keyfile=args.keyfile,
        ice_servers=ice,
        mirrored=args.mirrored_source,
        model_workers=args.model_workers,
        analysis_processes=getattr(args, "analysis_processes", None),
        dashboard_hz=args.dashboard_hz,
        link_ttl_s=args.link_ttl,
        ws_compression=getattr(args, "ws_compression", False),
        redis_url=getattr(args, "redis", None) or os.environ.get("STREAM_REDIS") or None,
        node_url=getattr(args, "node_url", None),
        node_id=getattr(args, "node_id", None),
        lease_s=getattr(args, "lease", ServerSettings.lease_s),
        analysis=AnalysisConfig(**analysis),
    ).validate()


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from stream.server.app import create_app
    from stream.server.heap import limit_heap_growth
    from stream.server.store import StorageError

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"stream serve: {exc}", file=sys.stderr)
        return 2
    workers = getattr(args, "workers", 1)
    if workers != 1:
        from stream.server.workers import check_workers, run_workers

        try:
            check_workers(workers, settings.db_path, settings.redis_url)
        except ValueError as exc:
            print(f"stream serve: {exc}", file=sys.stderr)
            return 2
        argv = sys.argv[sys.argv.index("serve") + 1 :] if "serve" in sys.argv else []
        return run_workers(workers, settings.port, settings.host, settings.node_id or "node", argv, settings.admin_key)
    log_config: dict[str, object] = LOGGING_CONFIG  # uvicorn's own default
    if getattr(args, "log_format", "text") == "json":
        from stream.server.logformat import uvicorn_log_config

        log_config = uvicorn_log_config(settings.node_id)
    if settings.analysis_process_count == 0:  # else no model runs here (and torch need not be loaded)
        _limit_model_threads(settings.model_workers)
    limit_heap_growth()  # stream/server/heap.py: the process's RSS stays flat
    try:
        app = create_app(settings)
    except StorageError as exc:  # a read-only file or folder, a folder named like the file, a full disk
        print(f"stream serve: {exc}; choose a writable file (or a reachable PostgreSQL URL) with --db", file=sys.stderr)
        return 2
    base = settings.public_url or f"{settings.scheme}://{settings.host}:{settings.port}"
    from stream.server.db import display_name

    # A PostgreSQL URL is shown without its user and password.
    print(
        f"stream: serving on {base}  (database {display_name(settings.db_path)}"
        + (f", node {app.state.node.id} in a cluster" if settings.redis_url else "")
        + ")"
    )
    if settings.admin_key is None:  # generated: the only time it is ever shown
        print(f"stream: clinic admin key (new, keep it): {app.state.admin_key}")
        key = app.state.admin_key
    else:
        print("stream: clinic admin key: the one given (--admin-key or $STREAM_ADMIN_KEY)")
        key = "$STREAM_ADMIN_KEY"
    print(f"stream: create a session at {base}/ with that key, or:")
    print(f'        curl -X POST -H "Authorization: Bearer {key}" {base}/api/sessions')
    if settings.scheme == "http" and settings.host not in ("127.0.0.1", "localhost"):
        print("stream: warning: browsers allow the camera only over HTTPS off localhost (use --certfile/--keyfile)")
    sys.stdout.flush()
    # access_log off: the links carry tokens in their query strings.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=settings.certfile,
        ws_per_message_deflate=settings.ws_compression,
        ssl_keyfile=settings.keyfile,
        access_log=False,
        log_level="info",
        log_config=log_config,
    )
    return 0


def _limit_model_threads(workers: int) -> None:
    """Each model thread uses its share of the cores, so concurrent sessions do not oversubscribe them."""
    try:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    except ImportError:  # pragma: no cover
        pass
    try:
        import cv2

        cv2.setNumThreads(max(1, (os.cpu_count() or 1) // workers))
    except ImportError:  # pragma: no cover
        pass
