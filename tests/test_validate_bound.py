"""The scorer's bound: the unmodified clip's own series with one side scaled exactly.

Plain arrays, no video: a face whose mouth moves in separate smiles, scored as the harness scores it.
The bound names a damped side where the face moved evenly, and not where the damped side was the
face's stronger one by as much as healthy faces differ (the rules cannot tell that from health).
"""

from __future__ import annotations

import numpy as np
import pytest

from stream.aus import AU_INDEX, N_AUS
from stream.symptoms.normal import load_normal_cooccurrence
from stream.validate.run import CaseResult
from stream.validate.score import scaled_side, score

N = 60


def _smiles(left_gain: float, right_gain: float) -> CaseResult:
    """Six smiles of five keyframes, mouth movement 3 times the gain on each side; brows and eyes still."""
    t = np.arange(N) / 5.0
    level = np.zeros(N)
    for start in range(4, N, 10):
        level[start : start + 5] = 3.0
    movement = np.zeros((N, 2, 3))
    movement[:, 0, 2] = left_gain * level
    movement[:, 1, 2] = right_gain * level
    left, right = np.zeros((N, N_AUS)), np.zeros((N, N_AUS))
    left[:, AU_INDEX["AU12"]] = np.minimum(left_gain * level, 5.0)
    right[:, AU_INDEX["AU12"]] = np.minimum(right_gain * level, 5.0)
    return CaseResult("clip", "control", left, right, np.zeros((N, 2)), movement, t, {"keyframes": N})


def test_scaled_side_changes_only_that_side_and_region():
    control = _smiles(1.0, 1.0)
    control.closure[:] = 2.0
    mouth = scaled_side(control, "left", "mouth", 0.35)
    np.testing.assert_allclose(mouth.movement[:, 0, 2], 0.35 * control.movement[:, 0, 2])
    np.testing.assert_array_equal(mouth.movement[:, 1], control.movement[:, 1])
    np.testing.assert_allclose(mouth.left[:, AU_INDEX["AU12"]], 0.35 * control.left[:, AU_INDEX["AU12"]])
    np.testing.assert_array_equal(mouth.right, control.right)
    np.testing.assert_array_equal(mouth.closure, control.closure)  # the eyes are another region
    face = scaled_side(control, "right", "face", 0.0)
    assert not face.movement[:, 1].any() and not face.right.any() and not face.closure[:, 1].any()
    np.testing.assert_array_equal(face.closure[:, 0], control.closure[:, 0])
    assert control.movement[:, 1, 2].max() == 3.0 and control.right.any()  # the input is left as it was


@pytest.mark.parametrize(("left_gain", "named"), [(1.0, 1), (2.0, 0)])
def test_bound_follows_the_faces_own_asymmetry(left_gain, named):
    """Damping the left mouth to 35 %: an even face reads 35 % (named); a face whose left mouth moved
    twice as much as its right reads 70 %, within what healthy faces show (not named)."""
    control = _smiles(left_gain, 1.0)
    damped = _smiles(0.35 * left_gain, 1.0)
    results = {"clip": {"control": control, "damp35_left_mouth": damped}}
    s = score(results, load_normal_cooccurrence(None))
    bound = s.tallies["bound_damp35_region"]
    assert (bound.hits, bound.total) == (named, 1)
    # the "product" here read exactly the scaled series, so it meets the bound
    assert s.tallies["damp35_region"].hits == named


def test_failures_say_whether_the_bound_names_the_side():
    """A miss the bound does not share is the construction's or the estimator's, and says so."""
    control = _smiles(1.0, 1.0)
    results = {"clip": {"control": control, "damp35_left_mouth": _smiles(1.0, 1.0), "damp35_right": control}}
    s = score(results, load_normal_cooccurrence(None))
    misses = [f for f in s.failures if f.startswith("clip/damp35")]
    assert len(misses) == 2 and all(f.endswith("[the bound names it]") for f in misses), misses
    asymmetric = {"clip": {"control": _smiles(2.0, 1.0), "damp35_left_mouth": _smiles(0.7, 1.0)}}
    s = score(asymmetric, load_normal_cooccurrence(None))
    assert [f for f in s.failures if f.startswith("clip/damp35")][0].endswith("[the bound misses it too]")
