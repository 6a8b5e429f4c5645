"""Offline analysis: a video file (or an AU series CSV) in, report files out. The edge around Pipeline."""

from __future__ import annotations

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
from stream.symptoms.normal import load_normal_cooccurrence
from stream.symptoms.evidence import EvidenceRules, Findings, assess, material_warnings, paper_findings
from stream.symptoms.statistics import SymptomAccumulator, SymptomState
from stream.types import AUSeries, Counts


@dataclass(frozen=True)
class AnalysisResult:
    report: dict[str, Any]
    series: AUSeries
    paths: dict[str, Path]


def assemble_report(
    symptoms: SymptomState,
    counts: dict[str, Any],
    config: AnalysisConfig,
    *,
    source: str,
    estimator_is_proxy: bool,
    warnings: list[str] | None = None,
    timings: dict[str, Any] | None = None,
    findings: Findings | None = None,
    mirrored: bool | None = None,
    model: dict[str, Any] | None = None,
    estimator: str | None = None,
) -> Report:
    """The report: the findings with their evidence, the paper's statistics, counts, configuration."""
    return Report.build(symptoms, counts, config, source=source, estimator_is_proxy=estimator_is_proxy,
                        findings=findings, warnings=warnings or [], timings=timings, model=model,
                        mirrored=mirrored, estimator=estimator)


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
    with VideoFile(video) as source:  # opens and checks the file before any model is loaded
        pipeline = pipeline or Pipeline(config, mirrored=mirrored)
        progress = progress or Progress(Path(video).name, source.info.n_frames, unit="frames")
        for frame in prefetched(source.frames()):
            pipeline.process(frame)
            progress.update(pipeline.counts.frames, f"{pipeline.counts.keyframes} keyframes")
        progress.close(f"{pipeline.counts.keyframes} keyframes", done=pipeline.counts.frames)
        info = source.info
    counts = pipeline.counts.as_dict()
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
    report = assemble_report(
        pipeline.symptoms(), counts, config, source=str(video),
        estimator_is_proxy=pipeline.estimator.is_proxy, warnings=warnings, timings=pipeline.timer.summary(),
        findings=series_findings(series, counts, config, pipeline.normal),
        mirrored=mirrored, model=pipeline.estimator.model_info(),
    )
    paths = write_report(out_dir, report, series)
    return AnalysisResult(report.to_json(), series, paths)


def series_symptoms(left: np.ndarray, right: np.ndarray, config: AnalysisConfig, normal: np.ndarray | None = None) -> SymptomState:
    """Statistics of a whole stored or imported (n, 12) per-side series under ``config``."""
    accumulator = SymptomAccumulator(active_threshold=config.active_threshold)
    if len(left):
        accumulator.update_many(left, right)
    if normal is None:
        normal = load_normal_cooccurrence(config.normal_cooccurrence)
    return accumulator.snapshot(normal, **config.symptom_thresholds())


def series_findings(series: AUSeries, counts: dict[str, Any], config: AnalysisConfig,
                    normal: np.ndarray | None = None, context: np.ndarray | None = None,
                    rules: EvidenceRules | None = None) -> Findings:
    """The verdicts under ``config.rules`` for a whole series, with the warnings about the material.

    ``rules``: evidence thresholds other than the config's (the validation harness scores variants).
    """
    if normal is None:
        normal = load_normal_cooccurrence(config.normal_cooccurrence)
    rules = rules or config.evidence_rules()
    if config.rules == "paper":
        findings = paper_findings(series_symptoms(series.left, series.right, config, normal))
    else:
        findings = assess(series.left, series.right, normal, closure=series.closure, movement=series.movement,
                          context=context, rules=rules)
    findings.warnings.extend(material_warnings(counts, len(series), rules))
    return findings


def analyze_series(csv_path: str | Path, out_dir: str | Path, config: AnalysisConfig | None = None) -> AnalysisResult:
    """Compute the same report from an existing per-side AU series (researchers' own tools)."""
    config = (config or AnalysisConfig()).validate()
    series = read_series_csv(csv_path)
    symptoms = series_symptoms(series.left, series.right, config)
    counts = Counts(frames=len(series), keyframes=len(series)).as_dict()
    duration = float(np.nanmax(series.time_s)) if len(series) and np.isfinite(series.time_s).any() else None
    counts["duration_s"] = duration
    report = assemble_report(symptoms, counts, config, source=str(csv_path), estimator_is_proxy=False,
                             findings=series_findings(series, counts, config), estimator="external AU series")
    paths = write_report(out_dir, report, series)
    return AnalysisResult(report.to_json(), series, paths)
