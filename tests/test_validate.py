"""The validation harness end to end on one real healthy clip: the fast subset of docs/validity.md.

An unmodified healthy clip must name no weaker side and no synkinesis pair; the same clip with the
patient's right half frozen must name the right side wherever the face moved. Then the scorer and
the command line on those results.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream.config import AnalysisConfig
from stream.symptoms.normal import load_normal_cooccurrence
from stream.validate.cases import case_by_name, standard_cases
from stream.validate.run import CaseResult, clip_landmarks, run_case
from stream.validate.score import findings_for, score

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CLIP = DATA / "healthy" / "lp_d12.mp4"  # 7 s, a man with glasses laughing and talking, head moving

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CLIP.exists(), reason="needs ../shared/data/healthy/lp_d12.mp4")]


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, CaseResult]:
    config = AnalysisConfig()
    landmarks, fps = clip_landmarks(CLIP, config)
    out = {}
    for name in ("control", "freeze_right"):
        out[name] = run_case(CLIP, case_by_name(name), landmarks, fps, config)
    folder = tmp_path_factory.mktemp("validation") / CLIP.stem
    for result in out.values():
        result.save(folder / f"{result.case}.npz")
    return out


def test_unmodified_healthy_clip_names_no_weaker_side_and_no_pair(results):
    found = findings_for(results["control"], load_normal_cooccurrence(None))
    assert [r.weaker_side for r in found.regions.values()] == [None, None, None], found.to_json()["regions"]
    assert found.synkinesis == []
    assert any(r.status == "no_clear_difference" for r in found.regions.values())  # it did move


def test_frozen_right_half_is_named_where_the_face_moved(results):
    """The frozen right side is named, and never the left. A region whose movement in the frozen case falls
    short of what a verdict needs may abstain, saying why: this clip's brows move near the move threshold,
    and a 0.003 px change of the detector's points moved their count of moving keyframes from 18 to 7."""
    normal = load_normal_cooccurrence(None)
    control = findings_for(results["control"], normal)
    frozen = findings_for(results["freeze_right"], normal)
    moved = [n for n, r in control.regions.items() if r.status == "no_clear_difference"]
    assert moved
    named = [n for n in moved if frozen.regions[n].weaker_side == "right"]
    assert named, {n: frozen.regions[n].reason for n in moved}
    for name in moved:
        region = frozen.regions[name]
        if region.weaker_side is None:
            assert region.status in ("did_not_move", "not_enough_keyframes"), (name, region.reason)
            continue
        assert region.weaker_side == "right", (name, region.reason)
        assert region.weaker_percent < 50
        lo, hi = region.weaker_percent_interval
        assert lo <= region.weaker_percent <= hi


def _frozen_hits(results) -> tuple[int, int]:
    """(regions naming the right side, regions the control moved), from the findings themselves."""
    normal = load_normal_cooccurrence(None)
    control = findings_for(results["control"], normal)
    frozen = findings_for(results["freeze_right"], normal)
    moved = [n for n, r in control.regions.items() if r.status == "no_clear_difference"]
    return sum(frozen.regions[n].weaker_side == "right" for n in moved), len(moved)


def test_scorer_counts_the_cases(results):
    s = score({CLIP.stem: results}, load_normal_cooccurrence(None))
    assert s.tallies["control_false_weaker"].hits == 0 and s.tallies["control_false_weaker"].total == 3
    hits, total = _frozen_hits(results)
    assert (s.tallies["freeze"].hits, s.tallies["freeze"].total) == (hits, total) and hits >= 1
    assert s.pairs["control"] == [0]


def test_saved_results_read_back_and_rescore_from_the_command_line(results, tmp_path, capsys):
    from stream.cli import main

    for result in results.values():
        result.save(tmp_path / CLIP.stem / f"{result.case}.npz")
    back = CaseResult.load(tmp_path / CLIP.stem / "control.npz")
    np.testing.assert_array_equal(back.movement, results["control"].movement)
    assert main(["validate", "--rescore", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    hits, total = _frozen_hits(results)
    assert "frozen side named" in printed and f"% ({hits}/{total})" in printed
    summary = json.loads((tmp_path / "scores_evidence.json").read_text())
    assert summary["rates"]["freeze"]["rate"] == hits / total


def test_case_list_covers_the_issue():
    names = {c.name for c in standard_cases()}
    for side in ("left", "right"):
        assert f"freeze_{side}" in names
        for pct in (35, 60):
            assert f"damp{pct}_{side}" in names
            assert {f"damp{pct}_{side}_{r}" for r in ("eyebrows", "eyes", "mouth")} <= names
        assert {f"synk_eye_on_smile_{side}", f"synk_mouth_on_eye_closure_{side}"} <= names
    assert {"control", "mirror", "mirror_flagged", "crf18", "crf28", "scale075"} <= names
