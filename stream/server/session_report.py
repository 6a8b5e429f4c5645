"""The report of a stored live session: report.json content and AU series, as ``analyze`` writes them.

Built from the store only (not from a live session in memory), so a report can be downloaded for any
session, live, ended or reopened after a restart, and it is exact up to the last stored keyframe.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stream.analyze import series_findings, series_symptoms
from stream.config import AnalysisConfig
from stream.errors import UnknownSessionError
from stream.report.model import ExerciseReport, Report, SessionInfo
from stream.server.store import Store
from stream.session.findings import LiveSeries, segment_counts
from stream.symptoms.evidence import Findings
from stream.symptoms.normal import load_normal_cooccurrence
from stream.symptoms.statistics import SymptomState
from stream.types import AUSeries


def session_report(store: Store, session_id: str) -> tuple[dict[str, Any], AUSeries]:
    """report.json content and AU series of a stored session (see :func:`build_session_report`)."""
    report, series = build_session_report(store, session_id)
    return report.to_json(), series


def build_session_report(store: Store, session_id: str) -> tuple[Report, AUSeries]:
    """The report and AU series of a stored session, as ``analyze`` makes them for a video.

    Statistics and findings are recomputed from the whole stored series, so the report is exact up
    to the last stored keyframe whatever happened to the live process (a reopened session included);
    each exercise segment gets its own statistics and findings (with the exercise as context),
    selected as the live dashboard selects them (``LiveSeries``), so both state the same verdicts.
    ``synkinesis_history``: the paper's synkinesis pairs as the live statistics reported them, with
    first and last time seen. Raises ``UnknownSessionError`` when the store has no session ``session_id``.
    """
    record = store.session(session_id)
    if record is None:
        raise UnknownSessionError(session_id)
    known = set(AnalysisConfig.__dataclass_fields__)
    config = AnalysisConfig(**{k: v for k, v in record.config.items() if k in known})
    normal = load_normal_cooccurrence(config.normal_cooccurrence)
    stored = store.series(session_id)

    def statistics(rows: np.ndarray | slice) -> SymptomState:
        return series_symptoms(stored.series.left[rows], stored.series.right[rows], config, normal)

    segments = store.segments(session_id)
    live = LiveSeries.from_series(stored.series, stored.segment_ids, {seg.segment_id: seg.exercise for seg in segments})

    def findings(segment_id: int | None, counts: dict[str, Any]) -> Findings:
        series, context = live.select(segment_id)
        return series_findings(series, counts, config, normal, context=context)

    counts = dict(record.counts)
    counts.setdefault("keyframes", len(stored.series))
    warnings = []
    if record.status == "live":
        warnings.append("the session was still live when this report was made: it covers the keyframes stored so far")
    report = Report.build(
        statistics(slice(None)),
        counts,
        config,
        source=f"live session {session_id}",
        estimator_is_proxy=bool(record.estimator.get("is_proxy", True)),
        warnings=warnings,
        findings=findings(None, counts),
        mirrored=record.mirrored,
        estimator=record.estimator.get("name", config.estimator),
        model=record.estimator.get("model") or None,
    )
    session = SessionInfo(record.id, record.label, record.created_at, record.ended_at, record.status)
    exercises = [
        ExerciseReport(
            seg.segment_id,
            seg.exercise,
            seg.start_s,
            seg.end_s,
            statistics(stored.segment_ids == seg.segment_id),
            findings(seg.segment_id, segment_counts(counts)),
        )
        for seg in segments
    ]
    return report.with_session(session, exercises, store.findings(session_id)), stored.series
