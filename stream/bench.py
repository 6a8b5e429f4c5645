"""``python -m stream bench``: per-stage milliseconds, frames/s, real-time factor and peak memory.

Frames are resized to the benchmark size (640x480 by default) outside the timed work, so the
figures are those of a 640x480 camera. Decoding runs ahead in a thread as in ``analyze``; the
"decode" stage is the time the pipeline waited for a frame.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from pathlib import Path

import cv2
import numpy as np

from stream.config import AnalysisConfig
from stream.decode import VideoFile, prefetched
from stream.errors import InputError
from stream.pipeline import Pipeline
from stream.types import Frame

DEFAULT_VIDEO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "d9.mp4"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"OpenCV {cv2.__version__}, Python {platform.python_version()}")


def bench_pipeline(video: Path, config: AnalysisConfig, size: tuple[int, int] | None, max_frames: int = 0) -> dict:
    t_load = time.perf_counter()
    pipeline = Pipeline(config)
    load_s = time.perf_counter() - t_load
    decode_ms: list[float] = []
    n = 0
    media_s = 0.0
    t_start = time.perf_counter()
    resize_s = 0.0
    with VideoFile(video) as source:
        frames = prefetched(source.frames())
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
    media_s += 1.0 / fps_source
    stages = pipeline.timer.summary()
    stages = {"decode": {"n": len(decode_ms), "mean_ms": float(np.mean(decode_ms)), "p50_ms": float(np.median(decode_ms)),
                         "p95_ms": float(np.percentile(decode_ms, 95)), "total_ms": float(np.sum(decode_ms))}, **stages}
    return {
        "video": str(video), "frames": n, "keyframes": pipeline.counts.keyframes,
        "detector_runs": pipeline.tracker.detections, "size": size or "native",
        "model_load_s": load_s, "wall_s": wall_s, "frames_per_s": n / wall_s, "media_s": media_s,
        "real_time_factor": media_s / wall_s, "stages": stages, "peak_rss_mib": _peak_rss_mib(),
        "config": config.as_dict(),
    }


def format_pipeline(r: dict) -> str:
    lines = [
        f"video {r['video']} at {r['size'] if isinstance(r['size'], str) else '%dx%d' % tuple(r['size'])}: "
        f"{r['frames']} frames, {r['keyframes']} keyframes, {r['detector_runs']} detector runs "
        f"(detector {r['config']['detector']}, estimator {r['config']['estimator']}, m = {r['config']['helpers']})",
        "",
        "| stage | calls | ms per call (mean) | p95 | ms per frame |",
        "|---|---|---|---|---|",
    ]
    for name, s in r["stages"].items():
        lines.append(f"| {name} | {s['n']} | {s['mean_ms']:.2f} | {s['p95_ms']:.2f} | {s['total_ms'] / max(r['frames'], 1):.2f} |")
    lines += [
        "",
        f"overall: {r['frames_per_s']:.1f} frames/s, {1000 * r['wall_s'] / max(r['frames'], 1):.1f} ms per frame, "
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
    result = bench_pipeline(video, config, size, args.frames)
    print(format_pipeline(result))
    if args.dem:
        from stream.au.dem.bench import bench_dem, format_bench

        print(format_bench(bench_dem(light=True, ms=[0, 1, 2, 4, 8], repeats=10)))
        if args.dem_paper:
            print(format_bench(bench_dem(light=False, ms=[0, 2], repeats=2)))
    return 0
