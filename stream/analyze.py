"""Offline analysis: a video file (or an AU series CSV) in, report files out. The edge around Pipeline."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import AnalysisConfig
from stream.decode import VideoFile, prefetched
from stream.errors import NoFaceError
from stream.pipeline import Pipeline
from stream.progress import Progress
from stream.report import Report, read_series_csv, write_report
from stream.symptoms.evidence import EvidenceRules, Findings, assess, material_warnings, paper_findings
from stream.symptoms.normal import load_normal_cooccurrence
from stream.symptoms.statistics import SymptomAccumulator, SymptomState
from stream.types import AUSeries, Counts


@dataclass(frozen=True)
class AnalysisResult:
    report: dict[str, Any]
    series: AUSeries
    paths: dict[str, Path]


def analyze_video(
    video: str | Path,
    out_dir: str | Path,
    config: AnalysisConfig | None = None,
    *,
    pipeline: Pipeline | None = None,
    progress: Progress | None = None,
    mirrored: bool = False,
) -> AnalysisResult:
    """Run the whole pipeline over a video file and write report.json, au_series.csv, report.html."""
    config = (config or AnalysisConfig()).validate()
    # opens and checks the file before any model is loaded; 4K frames come out scaled to max_frame_side
    with VideoFile(video, max_side=config.max_frame_side) as source:
        pipeline = pipeline or Pipeline(config, mirrored=mirrored)
        progress = progress or Progress(Path(video).name, source.info.n_frames, unit="frames")
        startup: dict[str, Any] | None = None
        # Three threads on the cores: decoding (prefetched), per-frame ingest here, and the keyframes'
        # AU estimation in order in a worker (the live server splits the same two calls the same
        # way). Most of the work is in FFmpeg, OpenCV and NumPy, which release the GIL.
        # closing(): the decoding thread stops before the container closes, also when analysis raises
        with _InOrderWorker(pipeline.analyze) as analysis, closing(prefetched(source.frames())) as frames:
            for frame in frames:
                result = pipeline.ingest(frame)
                if result.keyframe is not None:
                    analysis.put(result.keyframe)
                if startup is None:
                    startup = _startup_timing()
                progress.update(pipeline.counts.frames, f"{pipeline.counts.keyframes} keyframes")
        progress.close(f"{pipeline.counts.keyframes} keyframes", done=pipeline.counts.frames)
        info = source.info
    counts: dict[str, Any] = pipeline.counts.as_dict()  # durations and detector runs join the counts
    if pipeline.counts.frames and pipeline.counts.frames_without_face == pipeline.counts.frames:
        raise NoFaceError(
            f"no face found in {counts['frames']} of {counts['frames']} frames of {video}: "
            "is the face visible, frontal and lit? (try --detector retinaface if it is small)"
        )
    counts["duration_s"] = info.duration_s
    counts["detector_runs"] = pipeline.tracker.detections
    warnings = list(info.warnings)
    if info.rotation:
        warnings.append(f"video rotated by {info.rotation} degrees in its metadata; frames were turned upright")
    series = pipeline.series()
    if len(series) and not pipeline.estimator.is_proxy:
        from stream.au.dem.provenance import constant_output_warning

        flat = constant_output_warning(np.stack([series.left, series.right], axis=1))
        if flat:
            warnings.append(flat)
    report = Report.build(
        pipeline.symptoms(),
        counts,
        config,
        source=str(video),
        estimator_is_proxy=pipeline.estimator.is_proxy,
        warnings=warnings,
        timings={**({"startup": startup} if startup else {}), **pipeline.timer.summary()},
        findings=series_findings(series, counts, config, pipeline.normal),
        mirrored=mirrored,
        model=pipeline.estimator.model_info(),
    )
    paths = write_report(out_dir, report, series)
    return AnalysisResult(report.to_json(), series, paths)


class _InOrderWorker:
    """Calls ``work`` on each item put, in order, in one background thread (at most ``depth`` waiting).

    Leaving the ``with`` block waits for every item to be done and re-raises the first error the
    work raised; an error also stops ``put`` at once. On an error inside the block the worker is
    told to stop and is not waited for beyond the item it is on.
    """

    _END = object()

    def __init__(self, work: Callable[[Any], Any], depth: int = 8) -> None:
        self._work = work
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keyframe-analysis", daemon=True)

    def __enter__(self) -> _InOrderWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._END or self._stop.is_set():
                return
            try:
                self._work(item)
            except BaseException as exc:  # handed to the caller
                self._error = exc
                self._stop.set()
                return

    def put(self, item: Any) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        if self._error is not None:
            raise self._error

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is not None:
            self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.put(self._END, timeout=0.1)
                break
            except queue.Full:  # the worker is still busy with earlier items
                continue
        self._thread.join()
        if self._error is not None and exc_type is None:
            raise self._error


def _startup_timing() -> dict[str, Any] | None:
    """Start-up to the first analysed frame: milliseconds since this process started (interpreter,
    imports, models, opening the file, decoding and analysing one frame) and the process's CPU
    milliseconds until then. None where /proc is not there to say when the process started."""
    import os
    import resource

    try:
        with open("/proc/self/stat") as f:
            started_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    age_ms = (uptime_s - started_ticks / os.sysconf("SC_CLK_TCK")) * 1000.0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"n": 1, "total_ms": age_ms, "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000.0}


def series_symptoms(
    left: np.ndarray, right: np.ndarray, config: AnalysisConfig, normal: np.ndarray | None = None
) -> SymptomState:
    """Statistics of a whole stored or imported (n, 12) per-side series under ``config``."""
    accumulator = SymptomAccumulator(active_threshold=config.active_threshold)
    if len(left):
        accumulator.update_many(left, right)
    if normal is None:
        normal = load_normal_cooccurrence(config.normal_cooccurrence)
    return accumulator.snapshot(normal, **config.symptom_thresholds())


def series_findings(
    series: AUSeries,
    counts: dict[str, Any],
    config: AnalysisConfig,
    normal: np.ndarray | None = None,
    context: np.ndarray | None = None,
    rules: EvidenceRules | None = None,
) -> Findings:
    """The verdicts under ``config.rules`` for a whole series, with the warnings about the material.

    ``rules``: evidence thresholds other than the config's (the validation harness scores variants).
    """
    if normal is None:
        normal = load_normal_cooccurrence(config.normal_cooccurrence)
    rules = rules or config.evidence_rules()
    if config.rules == "paper":
        findings = paper_findings(series_symptoms(series.left, series.right, config, normal))
    else:
        findings = assess(
            series.left,
            series.right,
            normal,
            closure=series.closure,
            movement=series.movement,
            context=context,
            rules=rules,
        )
    findings.warnings.extend(material_warnings(counts, len(series), rules))
    return findings


def analyze_series(csv_path: str | Path, out_dir: str | Path, config: AnalysisConfig | None = None) -> AnalysisResult:
    """Compute the same report from an existing per-side AU series (researchers' own tools)."""
    config = (config or AnalysisConfig()).validate()
    series = read_series_csv(csv_path)
    normal = load_normal_cooccurrence(config.normal_cooccurrence)  # read once, for statistics and findings
    symptoms = series_symptoms(series.left, series.right, config, normal)
    counts: dict[str, Any] = Counts(frames=len(series), keyframes=len(series)).as_dict()
    duration = float(np.nanmax(series.time_s)) if len(series) and np.isfinite(series.time_s).any() else None
    counts["duration_s"] = duration
    report = Report.build(
        symptoms,
        counts,
        config,
        source=str(csv_path),
        estimator_is_proxy=False,
        findings=series_findings(series, counts, config, normal),
        estimator="external AU series",
    )
    paths = write_report(out_dir, report, series)
    return AnalysisResult(report.to_json(), series, paths)
