"""``python -m stream bench``: per-stage milliseconds, frames/s, real-time factor and peak memory.

Two modes. ``--whole`` times the real command, ``python -m stream analyze VIDEO``, in a fresh
process: start-up (interpreter, imports, models) included, as a user meets it. It reports wall
seconds, the process's CPU seconds (all its threads: user + system, from ``wait4``), frames per
CPU-second (the figure that holds on a shared machine), wall frames/s and the real-time factor,
start-up to the first analysed frame, and per stage the wall and CPU milliseconds the command
recorded in its report.json; ``--repeat N`` runs it N times (medians).

Without ``--whole``, the pipeline runs in this process with frames resized to the benchmark size
(640x480 by default) outside the timed work, so the figures are those of a 640x480 camera. Decoding
runs ahead in a thread as in ``analyze``; the "decode" stage is the time the pipeline waited for a frame.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stream.config import AnalysisConfig
from stream.decode import VideoFile, prefetched
from stream.errors import InputError
from stream.pipeline import Pipeline
from stream.types import Frame

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "d9.mp4"


def _process_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def machine_line() -> str:
    """CPU, cores and library versions (torch's from its metadata: importing it costs seconds)."""
    from importlib import metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        torch = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch = "not installed"
    return (
        f"{cpu}, {os.cpu_count()} cores, numpy {np.__version__}, OpenCV {cv2.__version__} "
        f"({cv2.getNumThreads()} threads), torch {torch}, Python {platform.python_version()}"
    )


def _analysis_argv(config: AnalysisConfig) -> list[str]:
    """The ``analyze`` options that give ``config`` (those that differ from the defaults)."""
    argv: list[str] = []
    for name, value in config.as_dict().items():
        if value != getattr(AnalysisConfig(), name) and value is not None:
            argv += [f"--{name.replace('_', '-')}", str(value)]
    return argv


def bench_command(video: Path, config: AnalysisConfig, extra: Sequence[str] = ()) -> dict[str, Any]:
    """One run of ``python -m stream analyze VIDEO`` in a fresh process, timed from outside."""
    import json
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="stream-bench-") as out:
        argv = [sys.executable, "-m", "stream", "analyze", str(video), "--out", out, *_analysis_argv(config), *extra]
        load_before = os.getloadavg()[0]
        with open(Path(out) / "stderr.txt", "w+") as err:
            t0 = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
            _, status, usage = os.wait4(proc.pid, 0)
            wall_s = time.perf_counter() - t0
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
            err.seek(0)
            message = err.read().strip().splitlines()
        report_path = Path(out) / "report.json"
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
    counts = report.get("counts", {})
    timings = report.get("timings_ms", {})
    cpu_s = usage.ru_utime + usage.ru_stime
    frames = int(counts.get("frames", 0))
    media_s = float(counts.get("duration_s") or 0.0)
    startup = timings.get("startup")
    return {
        "video": str(video),
        "argv": argv[1:],
        "exit_code": proc.returncode,
        "last_message": message[-1] if message else "",
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "frames": frames,
        "keyframes": int(counts.get("keyframes", 0)),
        "detector_runs": counts.get("detector_runs"),
        "media_s": media_s,
        "frames_per_cpu_s": frames / cpu_s if cpu_s > 0 else 0.0,
        "frames_per_s": frames / wall_s,
        "real_time_factor": media_s / wall_s if media_s else 0.0,
        "startup_ms": startup["total_ms"] if startup else None,
        "startup_cpu_ms": startup["cpu_ms"] if startup else None,
        "stages": {k: v for k, v in timings.items() if k != "startup"},
        "peak_rss_mib": usage.ru_maxrss / 1024.0,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def format_command(runs: list[dict[str, Any]]) -> str:
    """Medians over the runs, then the stage table of the median run (by CPU seconds)."""
    r = sorted(runs, key=lambda x: x["cpu_s"])[len(runs) // 2]

    def med(key: str) -> float:
        values = [x[key] for x in runs if x[key] is not None]
        return float(np.median(values)) if values else float("nan")

    lines = [
        f"`python -m stream {' '.join(r['argv'][2:])}` (fresh process, {len(runs)} run(s); medians):",
        f"exit code {r['exit_code']}"
        + (f" ({r['last_message']})" if r["exit_code"] else "")
        + f"; {r['frames']} frames, {r['keyframes']} keyframes, {r['detector_runs']} detector runs, "
        f"{r['media_s']:.1f} s of video",
        "",
        "| wall s | CPU s | frames per CPU-second | wall frames/s | x real time "
        "| start-up to first frame (wall ms / CPU ms) "
        "| peak RSS MiB | load average before / after |",
        "|---|---|---|---|---|---|---|---|",
        f"| {med('wall_s'):.2f} | {med('cpu_s'):.2f} | **{med('frames_per_cpu_s'):.1f}** | {med('frames_per_s'):.1f} "
        f"| {med('real_time_factor'):.2f}x | {med('startup_ms'):.0f} / {med('startup_cpu_ms'):.0f} "
        f"| {med('peak_rss_mib'):.0f} | {med('load_before'):.1f} / {med('load_after'):.1f} |",
    ]
    if not r["frames"]:  # no report (e.g. exit 3, no face): only the wall and CPU seconds mean something
        lines[-1] = (
            f"| {med('wall_s'):.2f} | {med('cpu_s'):.2f} | - | - | - | - | {med('peak_rss_mib'):.0f} "
            f"| {med('load_before'):.1f} / {med('load_after'):.1f} |"
        )
    if r["stages"]:
        lines += [
            "",
            "Stages of the median run (analysis thread; CPU ms exclude the decoding thread):",
            "",
            "| stage | calls | wall ms | CPU ms | CPU ms per frame | share of process CPU |",
            "|---|---|---|---|---|---|",
        ]
        cpu_ms = 1000.0 * r["cpu_s"]
        accounted = 0.0
        for name, s in r["stages"].items():
            accounted += s.get("cpu_ms", 0.0)
            stage_cpu = s.get("cpu_ms", float("nan"))
            lines.append(
                f"| {name} | {s['n']} | {s['total_ms']:.0f} | {stage_cpu:.0f} "
                f"| {stage_cpu / max(r['frames'], 1):.2f} | {100 * s.get('cpu_ms', 0.0) / cpu_ms:.0f} % |"
            )
        if r["startup_cpu_ms"] is not None:
            accounted += r["startup_cpu_ms"]
            lines.append(
                f"| start-up to first frame | 1 | {r['startup_ms']:.0f} | {r['startup_cpu_ms']:.0f} | - "
                f"| {100 * r['startup_cpu_ms'] / cpu_ms:.0f} % |"
            )
        rest = cpu_ms - accounted
        lines.append(
            f"| rest (decoding thread, OpenCV workers, report writing) | - | - | {rest:.0f} | "
            f"{rest / max(r['frames'], 1):.2f} | {100 * rest / cpu_ms:.0f} % |"
        )
    return "\n".join(lines) + "\n"


def bench_pipeline(video: Path, config: AnalysisConfig, size: tuple[int, int] | None, max_frames: int = 0) -> dict:
    t_load = time.perf_counter()
    pipeline = Pipeline(config)
    load_s = time.perf_counter() - t_load
    decode_ms: list[float] = []
    n = 0
    media_s = 0.0
    t_start = time.perf_counter()
    cpu_start = _process_cpu_s()
    resize_s = 0.0
    # closing(): the decoding thread must stop before the container closes; after --frames it is still
    # decoding ahead, and FFmpeg crashes (SIGSEGV) on a container closed under it
    with VideoFile(video) as source, closing(prefetched(source.frames())) as frames:
        while True:
            t0 = time.perf_counter()
            frame = next(frames, None)
            decode_ms.append((time.perf_counter() - t0) * 1000.0)
            if frame is None:
                decode_ms.pop()
                break
            if size is not None and (frame.image.shape[1], frame.image.shape[0]) != size:
                t1 = time.perf_counter()
                frame = Frame(frame.index, frame.time_s, cv2.resize(frame.image, size, interpolation=cv2.INTER_LINEAR))
                resize_s += time.perf_counter() - t1
            pipeline.process(frame)
            n += 1
            media_s = frame.time_s
            if max_frames and n >= max_frames:
                break
        fps_source = source.info.fps or 30.0
    wall_s = time.perf_counter() - t_start - resize_s
    cpu_s = _process_cpu_s() - cpu_start  # all threads (decoding included); the resizing too, a little
    media_s += 1.0 / fps_source
    stages = pipeline.timer.summary()
    stages = {
        "decode": {
            "n": len(decode_ms),
            "mean_ms": float(np.mean(decode_ms)),
            "p50_ms": float(np.median(decode_ms)),
            "p95_ms": float(np.percentile(decode_ms, 95)),
            "total_ms": float(np.sum(decode_ms)),
        },
        **stages,
    }
    return {
        "video": str(video),
        "frames": n,
        "keyframes": pipeline.counts.keyframes,
        "detector_runs": pipeline.tracker.detections,
        "size": size or "native",
        "model_load_s": load_s,
        "wall_s": wall_s,
        "frames_per_s": n / wall_s,
        "media_s": media_s,
        "cpu_s": cpu_s,
        "frames_per_cpu_s": n / cpu_s if cpu_s > 0 else 0.0,
        "real_time_factor": media_s / wall_s,
        "stages": stages,
        "peak_rss_mib": _peak_rss_mib(),
        "config": config.as_dict(),
    }


def format_pipeline(r: dict) -> str:
    size = r["size"] if isinstance(r["size"], str) else "{:d}x{:d}".format(*r["size"])
    lines = [
        f"video {r['video']} at {size}: "
        f"{r['frames']} frames, {r['keyframes']} keyframes, {r['detector_runs']} detector runs "
        f"(detector {r['config']['detector']}, estimator {r['config']['estimator']}, m = {r['config']['helpers']})",
        "",
        "| stage | calls | ms per call (mean) | p95 | ms per frame |",
        "|---|---|---|---|---|",
    ]
    for name, s in r["stages"].items():
        per_frame_ms = s["total_ms"] / max(r["frames"], 1)
        lines.append(f"| {name} | {s['n']} | {s['mean_ms']:.2f} | {s['p95_ms']:.2f} | {per_frame_ms:.2f} |")
    lines += [
        "",
        f"overall: {r['frames_per_cpu_s']:.1f} frames per CPU-second ({r['cpu_s']:.1f} CPU-s, all threads), "
        f"{r['frames_per_s']:.1f} frames/s, {1000 * r['wall_s'] / max(r['frames'], 1):.1f} ms per frame, "
        f"real-time factor {r['real_time_factor']:.2f}x ({r['media_s']:.1f} s of video in {r['wall_s']:.1f} s), "
        f"model load {r['model_load_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB",
    ]
    return "\n".join(lines) + "\n"


def run_bench(args: argparse.Namespace, config: AnalysisConfig) -> int:
    """``python -m stream bench``: ``args`` from its parser, ``config`` the analysis options (cli.py builds both)."""
    video = Path(args.video) if args.video else DEFAULT_VIDEO
    if not video.exists():
        raise InputError(f"benchmark video {video} not found: pass a video path")
    size = None
    if args.size != "native":
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise InputError(f"--size must be WxH in pixels (e.g. 640x480) or native, got {args.size!r}") from None
        size = (w, h)
    print(f"machine: {machine_line()}\n")
    if getattr(args, "whole", False):
        runs = [bench_command(video, config) for _ in range(max(1, args.repeat))]
        print(format_command(runs))
        return 0
    result = bench_pipeline(video, config, size, args.frames)
    print(format_pipeline(result))
    if args.dem:
        from stream.au.dem.bench import bench_dem, format_bench

        print(format_bench(bench_dem(light=True, ms=[0, 1, 2, 4, 8], repeats=10)))
        if args.dem_paper:
            print(format_bench(bench_dem(light=False, ms=[0, 2], repeats=2)))
    return 0
