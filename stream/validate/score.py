"""Score findings against the constructed ground truth: sensitivity, specificity, consistency.

Pure: case results (AU series and counts) in, a ``Score`` out. The decision rules are applied here,
from the saved series, so a change of rules is scored in seconds without re-running the analysis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from stream.analyze import series_findings
from stream.aus import AU_INDEX, REGIONS
from stream.config import AnalysisConfig
from stream.symptoms.evidence import EVIDENCE_REGION_NAMES, EYE_SIGNALS, MOUTH_SIGNALS, EvidenceRules, Findings
from stream.types import AUSeries
from stream.validate.cases import REGION_NAMES, Case, case_by_name
from stream.validate.run import CaseResult

_SWAP = {"left": "right", "right": "left", None: None}


def findings_for(
    result: CaseResult,
    normal: np.ndarray,
    rules: str = "evidence",
    evidence: EvidenceRules | None = None,
    config: AnalysisConfig | None = None,
) -> Findings:
    """The findings ``analyze`` would report for this case's series (the same code path)."""
    series = AUSeries(
        np.arange(len(result.left)),
        result.time_s,
        result.left,
        result.right,
        closure=result.closure,
        movement=result.movement,
    )
    config = replace(config or AnalysisConfig(), rules=rules)
    return series_findings(series, dict(result.counts), config, normal, rules=evidence)


def scaled_side(result: CaseResult, side: str, region: str, factor: float) -> CaseResult:
    """The case's series with ``side``'s ``region`` (or every region, ``"face"``) scaled by ``factor``:
    what a construction and an estimator without error would make of a freeze (0) or a damp.

    Scored on the unmodified clip, it gives the bound the decision rules set on this clip (its own
    healthy asymmetry and how often each region moved), apart from anything the construction or the
    estimator adds; the harness prints it beside the product's figure (docs/validity.md, item 12).
    """
    s = 0 if side == "left" else 1
    names = REGION_NAMES if region == "face" else (region,)
    values = (result.left.copy(), result.right.copy())
    movement = None if result.movement is None else result.movement.copy()
    closure = None if result.closure is None else result.closure.copy()
    for name in names:
        values[s][:, [AU_INDEX[au] for au in REGIONS[name]]] *= factor
        if movement is not None:
            movement[:, s, EVIDENCE_REGION_NAMES.index(name)] *= factor
        if name == "eyes" and closure is not None:
            closure[:, s] *= factor
    return replace(result, left=values[0], right=values[1], movement=movement, closure=closure)


@dataclass
class Tally:
    hits: int = 0
    total: int = 0

    def add(self, ok: bool) -> None:
        self.hits += int(ok)
        self.total += 1

    @property
    def rate(self) -> float | None:
        return self.hits / self.total if self.total else None

    def text(self) -> str:
        return "—" if not self.total else f"{100 * self.hits / self.total:.0f} % ({self.hits}/{self.total})"


@dataclass
class Score:
    rules: str
    clips: list[str]
    tallies: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))
    pairs: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))  # family -> pairs per case
    failures: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "clips": self.clips,
            "rates": {k: {"hits": t.hits, "total": t.total, "rate": t.rate} for k, t in sorted(self.tallies.items())},
            "synkinesis_pairs_per_case": {k: (float(np.mean(v)) if v else None) for k, v in sorted(self.pairs.items())},
            "failures": self.failures,
        }

    def lines(self) -> list[str]:
        t = self.tallies

        def mean_pairs(family: str) -> str:
            v = self.pairs.get(family, [])
            return "—" if not v else f"{np.mean(v):.2f} (max {max(v)}, {len(v)} cases)"

        rows = [
            ("healthy controls: weaker side named (target <= 5 %)", t["control_false_weaker"].text()),
            ("healthy controls: synkinesis pairs per clip (target <= 0.2)", mean_pairs("control")),
            ("frozen side named, moving regions (target >= 95 %)", t["freeze"].text()),
            ("  bound: the unmodified clip's series, that side scaled exactly", t["bound_freeze"].text()),
            ("damped to 35 %, whole face (target >= 90 %)", t["damp35"].text()),
            ("  bound: the unmodified clip's series, that side scaled exactly", t["bound_damp35"].text()),
            ("damped to 60 %, whole face", t["damp60"].text()),
            ("one region damped to 35 %, in that region (target >= 80 %)", t["damp35_region"].text()),
            ("  bound: the unmodified clip's series, that region scaled exactly", t["bound_damp35_region"].text()),
            ("one region damped to 60 %, in that region", t["damp60_region"].text()),
            ("one region damped: other regions flagged (target 0 %)", t["region_other_flagged"].text()),
            ("injected synkinesis found with its eye-mouth pair (target >= 90 %)", t["synkinesis"].text()),
            ("  of those, in clips long enough for any verdict", t["synkinesis_assessable"].text()),
            ("injected synkinesis: other pairs per case", mean_pairs("synkinesis_extra")),
            ("frozen or damped: synkinesis pairs per case", mean_pairs("palsy")),
            ("mirror: verdict swapped (target 100 %)", t["mirror"].text()),
            ("mirror with --mirrored: verdict unchanged (target 100 %)", t["mirrored_flag"].text()),
            ("re-encodes: verdict unchanged (target 100 %)", t["reencode"].text()),
        ]
        width = max(len(r[0]) for r in rows)
        return [f"{label:<{width}}  {value}" for label, value in rows]


# After a palsy miss in ``--failures``: whether the bound (``scaled_side``) names the side, that is,
# whether the miss is the construction's or the estimator's, or one the rules make on these series.
_BOUND_NOTE = {True: " [the bound names it]", False: " [the bound misses it too]"}


def _verdict(f: Findings) -> dict[str, str | None]:
    return {name: f.regions[name].weaker_side for name in REGION_NAMES}


def _bound_names_side(
    control: CaseResult,
    case: Case,
    normal: np.ndarray,
    rules: str,
    evidence: EvidenceRules | None,
    config: AnalysisConfig | None,
) -> dict[str, bool]:
    """Per region: does the bound (``scaled_side`` of the unmodified clip) name ``case``'s side?"""
    assert case.side is not None  # freeze and damp cases always change a side
    bound = _verdict(
        findings_for(scaled_side(control, case.side, case.region, case.factor), normal, rules, evidence, config)
    )
    return {name: side == case.side for name, side in bound.items()}


def _pairs(f: Findings) -> set[tuple[str, str, str]]:
    return {(s.side, s.au, s.trigger) for s in f.synkinesis}


def score(
    results: Mapping[str, Mapping[str, CaseResult]],
    normal: np.ndarray,
    rules: str = "evidence",
    evidence: EvidenceRules | None = None,
    config: AnalysisConfig | None = None,
) -> Score:
    """``results``: clip -> case name -> result. Cases missing from a clip are skipped."""
    out = Score(rules, sorted(results))
    t = out.tallies
    for clip in sorted(results):
        by_case = results[clip]
        if "control" not in by_case:
            continue
        found = {name: findings_for(r, normal, rules, evidence, config) for name, r in by_case.items()}
        control = found["control"]
        moved = [r for r in REGION_NAMES if control.regions[r].status in ("weaker_side", "no_clear_difference")]
        base = _verdict(control)
        for name, f in found.items():
            try:
                case: Case = case_by_name(name)
            except KeyError:
                continue
            verdict, pairs = _verdict(f), _pairs(f)
            where = f"{clip}/{name}"
            if case.family in ("control", "mirror", "mirrored_flag", "reencode"):
                for region in REGION_NAMES:
                    flagged = verdict[region] is not None
                    t["control_false_weaker"].add(flagged)
                    if flagged:
                        out.failures.append(
                            f"{where}: {region} names the {verdict[region]} side weaker ({f.regions[region].reason})"
                        )
                out.pairs["control"].append(len(pairs))
                if pairs:
                    out.failures.append(f"{where}: synkinesis pairs {sorted(pairs)}")
            if case.family == "mirror":
                for region in REGION_NAMES:
                    t["mirror"].add(verdict[region] == _SWAP[base[region]])
            elif case.family == "mirrored_flag":
                for region in REGION_NAMES:
                    t["mirrored_flag"].add(verdict[region] == base[region])
            elif case.family == "reencode":
                for region in REGION_NAMES:
                    ok = verdict[region] == base[region]
                    t["reencode"].add(ok)
                    if not ok:
                        out.failures.append(f"{where}: {region} {base[region]} -> {verdict[region]}")
            elif case.family in ("freeze", "damp"):
                key = "freeze" if case.family == "freeze" else f"damp{int(round(case.factor * 100))}"
                bound = _bound_names_side(by_case["control"], case, normal, rules, evidence, config)
                for region in moved:
                    ok = verdict[region] == case.side
                    t[key].add(ok)
                    t[f"bound_{key}"].add(bound[region])
                    if not ok:
                        out.failures.append(
                            f"{where}: {region} {verdict[region]} ({f.regions[region].reason})"
                            + _BOUND_NOTE[bound[region]]
                        )
                out.pairs["palsy"].append(len(pairs))
            elif case.family == "damp_region":
                key = f"damp{int(round(case.factor * 100))}_region"
                if case.region in moved:
                    bound_ok = _bound_names_side(by_case["control"], case, normal, rules, evidence, config)[case.region]
                    ok = verdict[case.region] == case.side
                    t[key].add(ok)
                    t[f"bound_{key}"].add(bound_ok)
                    if not ok:
                        out.failures.append(
                            f"{where}: {case.region} {verdict[case.region]} ({f.regions[case.region].reason})"
                            + _BOUND_NOTE[bound_ok]
                        )
                for region in REGION_NAMES:
                    if region != case.region:
                        flagged = verdict[region] is not None and verdict[region] != base[region]
                        t["region_other_flagged"].add(flagged)
                out.pairs["palsy"].append(len(pairs))
            elif case.family == "synkinesis":
                if case.kind == "synkinesis_eye_on_smile":
                    wanted = {p for p in pairs if p[0] == case.side and p[1] in EYE_SIGNALS and p[2] in MOUTH_SIGNALS}
                else:
                    wanted = {p for p in pairs if p[0] == case.side and p[1] in MOUTH_SIGNALS and p[2] in EYE_SIGNALS}
                t["synkinesis"].add(bool(wanted))
                # below the rules' minimum of keyframes the product states nothing at all ("not enough
                # keyframes"): counted above as a miss, and here left out
                n_keyframes = next(iter(f.regions.values())).n_keyframes
                if n_keyframes >= (evidence or EvidenceRules()).min_keyframes:
                    t["synkinesis_assessable"].add(bool(wanted))
                if not wanted:
                    out.failures.append(f"{where}: injected synkinesis not found (pairs: {sorted(pairs)})")
                out.pairs["synkinesis_extra"].append(len(pairs - wanted) - len(pairs & _pairs(control)))
    return out
