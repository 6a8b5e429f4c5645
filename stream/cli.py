"""Command line: ``python -m stream analyze|serve|bench|train|evaluate``.

Exit codes: 0 success; otherwise the table ``stream.errors.EXIT_CODES`` (2 bad input, option or weights,
3 no face found, 1 another named failure); 130 interrupted; an unexpected exception keeps its traceback (1).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from stream.config import AnalysisConfig
from stream.errors import InputError, StreamError, exit_code
from stream.symptoms.wording import pair_words, region_words

_DEFAULTS = AnalysisConfig()


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("face detection")
    g.add_argument(
        "--detector",
        choices=["mtcnn", "retinaface"],
        default=_DEFAULTS.detector,
        help="face detector (default: %(default)s, weights embedded)",
    )
    g.add_argument("--weights", help="RetinaFace weights: a file path or an http(s) URL (cached, checksummed)")
    g.add_argument("--device", help="torch device, e.g. cpu or cuda (default: cuda when available)")
    g.add_argument(
        "--detect-every",
        type=int,
        default=_DEFAULTS.detect_every,
        help="run the detector every k-th frame, track landmarks in between (default: %(default)s; 1 = every frame)",
    )
    g = p.add_argument_group("keyframes and AU estimation")
    g.add_argument(
        "--keyframe-threshold",
        type=float,
        default=_DEFAULTS.keyframe_threshold,
        help="mean grey-level difference of the 48x48 face crop that makes a keyframe (default: %(default)s)",
    )
    g.add_argument(
        "--estimator",
        default=_DEFAULTS.estimator,
        help="AU estimator: flow (training-free default) or dem (needs --checkpoint)",
    )
    g.add_argument("--checkpoint", help="DEM checkpoint (matched OVPM+DVPM pair) from `python -m stream train`")
    g.add_argument(
        "--helpers",
        type=int,
        default=_DEFAULTS.helpers,
        metavar="M",
        help="DEM helper keyframes per estimate (default: %(default)s; 0 = own value only)",
    )
    g.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seed of the helper draw (default: %(default)s)")
    g = p.add_argument_group("symptom statistics")
    g.add_argument(
        "--active-threshold",
        type=float,
        default=_DEFAULTS.active_threshold,
        help="an AU is active above this intensity (default: %(default)s)",
    )
    g.add_argument(
        "--asymmetry-threshold",
        type=float,
        default=_DEFAULTS.asymmetry_threshold,
        help="dead band on |region ΔAM| reported as no obvious difference (default: %(default)s)",
    )
    g.add_argument(
        "--cooccurrence-threshold",
        type=float,
        default=_DEFAULTS.cooccurrence_threshold,
        help="|co-occurrence difference| above this flags synkinesis (default: %(default)s)",
    )
    g.add_argument(
        "--rules",
        choices=["evidence", "paper"],
        default=_DEFAULTS.rules,
        help="decision rules: evidence (intervals, support, corrected tests; default) or paper (the paper's "
        "dead band and 0.3 rule, to reproduce its method); docs/validity.md",
    )
    g.add_argument(
        "--normal-cooccurrence",
        metavar="FILE",
        help="12x12 normal-subject co-occurrence matrix (JSON or CSV, AU order) replacing the shipped DISFA default",
    )


def config_from_args(args: argparse.Namespace) -> AnalysisConfig:
    return AnalysisConfig(
        detector=args.detector,
        weights=args.weights,
        device=args.device,
        detect_every=args.detect_every,
        keyframe_threshold=args.keyframe_threshold,
        estimator=args.estimator,
        checkpoint=args.checkpoint,
        helpers=args.helpers,
        seed=args.seed,
        active_threshold=args.active_threshold,
        asymmetry_threshold=args.asymmetry_threshold,
        cooccurrence_threshold=args.cooccurrence_threshold,
        normal_cooccurrence=args.normal_cooccurrence,
        rules=args.rules,
    )


def check_output_folder(out: str) -> None:
    """Fail before any frame is decoded when ``--out`` cannot take the report (exit 2).

    An existing file, a path under a file and a folder that cannot be written would otherwise
    surface only after the whole analysis, as a traceback.
    """
    import os
    import tempfile
    from pathlib import Path

    path = Path(out)
    for parent in [path, *path.parents]:
        if parent.exists() and not parent.is_dir():
            where = "is a file" if parent == path else f"is under {parent}, which is a file"
            raise InputError(f"--out {out} {where}: give a folder for report.json, au_series.csv, report.html")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise InputError(f"--out {out} cannot be written ({exc.strerror or exc}): choose a writable folder") from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"--out {out} cannot be written: choose a writable folder")


def _cmd_analyze(args: argparse.Namespace) -> int:
    from stream.analyze import analyze_series, analyze_video

    if (args.video is None) == (args.au_csv is None):
        raise InputError("give either a VIDEO or --au-csv SERIES.csv (not both, not neither)")
    if (args.patient is None) != (args.db is None):
        raise InputError(
            "--patient CODE and --db PATH go together: the analysis is stored for that patient in that database"
        )
    if args.patient is not None:
        from stream.server.patients import check_code
        from stream.server.store import StorageError, Store

        check_code(args.patient)  # a bad code or an unusable database fails before any frame is decoded
        try:
            Store(args.db).close()
        except StorageError as exc:
            raise InputError(f"--db: {exc}") from exc
    check_output_folder(args.out)
    config = config_from_args(args).validate()
    if args.au_csv:
        result = analyze_series(args.au_csv, args.out, config)
    else:
        result = analyze_video(args.video, args.out, config, mirrored=args.mirrored)
    counts = result.report["counts"]
    findings = result.report["findings"]
    print(
        f"{counts['keyframes']} keyframes from {counts['frames']} frames "
        f"({counts.get('frames_without_face', 0)} without a face); rules: {findings['rules']}"
    )
    for name, region in findings["regions"].items():
        print(f"  {name:9s} {region_words(region)}")
    syn = findings["synkinesis"]
    if syn["detected"]:
        print(f"  synkinesis: {len(syn['pairs'])} pair(s)")
        for pair in syn["pairs"]:
            print(f"    {pair_words(pair)}")
    else:
        print(f"  synkinesis: not detected ({syn['n_pairs_tested']} pairs tested)")
    if result.report.get("estimator_is_proxy"):
        print("  (AU values from the training-free flow proxy: indicative, see docs/au_flow.md)")
    for warning in result.report.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"report: {result.paths['html']}")
    if args.patient is not None:
        _store_for_patient(args, result)
    return 0


def _store_for_patient(args: argparse.Namespace, result: object) -> None:
    """``--patient/--db``: the analysis's numbers as a session of the patient (stream/server/patients.py)."""
    from stream.server.patients import store_analysis
    from stream.server.store import Store

    store = Store(args.db)
    try:
        sid, created = store_analysis(store, args.patient, result.report, result.series, args.label or "")  # type: ignore[attr-defined]
    finally:
        store.close()
    print(f"stored as session {sid} of patient {args.patient}{' (new patient)' if created else ''} in {args.db}")


def _cmd_bench(args: argparse.Namespace) -> int:
    from stream.bench import run_bench

    return run_bench(args, config_from_args(args).validate())


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """All subcommands; ``command`` (the one about to run) limits the heavy imports to what it needs:
    the options of serve (aiortc, Starlette) and train/evaluate (torch) are added only when that
    command runs or when no command is known (``--help``), so ``analyze`` starts without them."""
    parser = argparse.ArgumentParser(prog="python -m stream", description="Facial-paralysis symptom monitor")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("analyze", help="analyse a video file (or an AU series CSV) and write a report")
    p.add_argument("video", nargs="?", help="video file (mp4, mov, webm, ...)")
    p.add_argument("--au-csv", metavar="SERIES.csv", help="compute the report from an existing per-side AU series")
    p.add_argument("--out", required=True, help="output folder for report.json, au_series.csv, report.html")
    p.add_argument(
        "--patient",
        metavar="CODE",
        help="also store the analysis (numbers only) as a session of this "
        "patient (a clinic code, never a name; created when new), with --db",
    )
    p.add_argument("--db", metavar="PATH", help="the session database of `serve` (SQLite) for --patient")
    p.add_argument("--label", help="with --patient: a label for the stored session (no names)")
    p.add_argument(
        "--mirrored",
        action="store_true",
        help="the video is mirrored (selfie view): swap which image side is the patient's left",
    )
    _add_analysis_options(p)
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("bench", help="per-stage timings and throughput on a video")
    p.add_argument("video", nargs="?", help="video to time (default: ../shared/data/d9.mp4 when present)")
    p.add_argument("--frames", type=int, default=0, help="stop after this many frames (0 = all)")
    p.add_argument(
        "--size", default="640x480", help="resize frames to WxH before timing, or 'native' (default: %(default)s)"
    )
    p.add_argument(
        "--dem", action="store_true", help="also time the DEM estimator (OVPM/DVPM, light configuration) for m = 0..8"
    )
    p.add_argument(
        "--dem-paper", action="store_true", help="with --dem: also at the paper's 512x256 resolution (slow on CPU)"
    )
    p.add_argument(
        "--whole",
        action="store_true",
        help="time the whole `analyze` command in a fresh process (start-up included): wall and CPU seconds, "
        "frames per CPU-second, real-time factor, start-up to the first frame, stages",
    )
    p.add_argument("--repeat", type=int, default=1, help="with --whole: runs (medians reported; default: %(default)s)")
    _add_analysis_options(p)
    p.set_defaults(func=_cmd_bench)

    from stream.validate.command import add_validate_arguments, run_validate

    p = sub.add_parser("validate", help="score the findings on constructed cases from healthy clips (docs/validity.md)")
    add_validate_arguments(p)
    p.set_defaults(func=run_validate)

    p = sub.add_parser("serve", help="start the live monitor (WebRTC ingest, dashboards)")
    if command in (None, "serve"):
        from stream.server.main import add_serve_arguments, run_serve

        add_serve_arguments(p)
        p.set_defaults(func=run_serve)

    p_train = sub.add_parser("train", help="train the DEM pair (OVPM then DVPM) on DISFA+ or a dataset in that layout")
    p_eval = sub.add_parser("evaluate", help="evaluate a DEM checkpoint: accuracy, MAE, ICC, PCC, accuracy vs m")
    if command in (None, "train", "evaluate"):
        from stream.au.dem.commands import add_evaluate_arguments, add_train_arguments, run_evaluate, run_train

        add_train_arguments(p_train)
        p_train.set_defaults(func=run_train)
        add_evaluate_arguments(p_eval)
        p_eval.set_defaults(func=run_evaluate)
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args) or 0)
    except StreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
