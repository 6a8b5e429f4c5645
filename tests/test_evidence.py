"""The evidence rules on plain arrays: verdicts, their intervals, synkinesis support, warnings."""

from __future__ import annotations

import numpy as np
import pytest

from stream.aus import AU_INDEX, N_AUS
from stream.symptoms.evidence import EvidenceRules, assess, material_warnings, paper_findings, running_median
from stream.symptoms.normal import load_normal_cooccurrence
from stream.symptoms.statistics import compute_symptoms
from stream.symptoms.wording import pair_words, region_words

NORMAL = load_normal_cooccurrence(None)
BROWS, EYES, MOUTH = 0, 1, 2


def movement_series(n: int = 120, seed: int = 0, noise: float = 0.15) -> np.ndarray:
    """(n, 2, 3) movement of a healthy face: episodes of brow, eye and mouth movement on both sides."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    out = np.zeros((n, 2, 3))
    for region, period, phase in ((BROWS, 37, 0), (EYES, 23, 5), (MOUTH, 31, 11)):
        wave = np.clip(3.0 * np.sin(2 * np.pi * (t + phase) / period), 0, None)
        for side in range(2):
            out[:, side, region] = wave
    out += rng.normal(0, noise, out.shape)
    return np.clip(out, 0, 5)


def zeros(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, N_AUS)), np.zeros((n, N_AUS))


def test_healthy_symmetric_face_names_no_weaker_side():
    mv = movement_series()
    found = assess(*zeros(len(mv)), NORMAL, movement=mv)
    for name, region in found.regions.items():
        assert region.status == "no_clear_difference", (name, region.reason)
        assert region.weaker_side is None
        lo, hi = region.asymmetry_interval
        assert lo < 0 < hi
    assert found.synkinesis == []


def test_damped_left_side_is_named_with_its_percentage_and_interval():
    mv = movement_series()
    mv[:, 0, :] *= 0.35  # the patient's left keeps 35 % of its movement
    found = assess(*zeros(len(mv)), NORMAL, movement=mv)
    for region in found.regions.values():
        assert region.status == "weaker_side" and region.weaker_side == "left"
        assert 25 < region.weaker_percent < 50
        lo, hi = region.weaker_percent_interval
        assert lo <= region.weaker_percent <= hi
        assert region.asymmetry_interval[1] < 0  # the interval excludes no difference


def test_swapping_the_sides_negates_every_figure_exactly():
    mv = movement_series(seed=3)
    mv[:, 1, MOUTH] *= 0.5
    a = assess(*zeros(len(mv)), NORMAL, movement=mv)
    b = assess(*zeros(len(mv)), NORMAL, movement=mv[:, ::-1, :])
    for name in a.regions:
        ra, rb = a.regions[name], b.regions[name]
        assert ra.asymmetry == pytest.approx(-rb.asymmetry)
        assert ra.asymmetry_interval == pytest.approx((-rb.asymmetry_interval[1], -rb.asymmetry_interval[0]))
        assert {None: None, "left": "right", "right": "left"}[ra.weaker_side] == rb.weaker_side


def test_small_healthy_difference_is_not_a_finding():
    mv = movement_series(n=300, noise=0.05)
    mv[:, 0, :] *= 0.8  # 80 %: inside healthy variation
    found = assess(*zeros(len(mv)), NORMAL, movement=mv)
    for region in found.regions.values():
        assert region.weaker_side is None
        assert region.status == "no_clear_difference"


def test_too_few_keyframes_and_no_movement_say_so():
    mv = movement_series(n=6)
    found = assess(*zeros(6), NORMAL, movement=mv)
    assert {r.status for r in found.regions.values()} == {"not_enough_keyframes"}
    still = np.zeros((50, 2, 3))
    found = assess(*zeros(50), NORMAL, movement=still)
    assert {r.status for r in found.regions.values()} == {"did_not_move"}
    assert all(r.asymmetry is None for r in found.regions.values())


def synkinesis_series(side: int, n: int = 150) -> np.ndarray:
    """Both mouth corners smile in 3 episodes; the eye on ``side`` (0 left, 1 right) closes with them."""
    mv = movement_series(n=n, seed=5, noise=0.1)
    mv[:, :, MOUTH] = 0.0
    mv[:, :, EYES] = np.clip(mv[:, :, EYES], 0, 0.3)
    for start in (20, 70, 120):
        mv[start : start + 15, :, MOUTH] = 3.0
        mv[start : start + 15, side, EYES] = 3.5
    return mv


@pytest.mark.parametrize("side, name", [(0, "left"), (1, "right")])
def test_eye_closing_with_the_smile_on_one_side_is_synkinesis_with_its_counts(side, name):
    mv = synkinesis_series(side)
    found = assess(*zeros(len(mv)), NORMAL, movement=mv)
    pairs = {(s.side, s.au, s.trigger): s for s in found.synkinesis}
    assert (name, "eyes", "mouth") in pairs
    pair = pairs[(name, "eyes", "mouth")]
    assert pair.n_together >= 40 and pair.n_other_side == 0 and pair.episodes == 3
    assert pair.p_adjusted < 0.05
    assert all(s.side == name for s in found.synkinesis)


def test_bilateral_eye_narrowing_with_the_smile_is_not_synkinesis():
    mv = synkinesis_series(0)
    mv[:, 1, EYES] = mv[:, 0, EYES]  # both eyes narrow with the smile: a healthy Duchenne smile
    found = assess(*zeros(len(mv)), NORMAL, movement=mv)
    assert found.synkinesis == []


def test_a_single_coactivation_episode_is_not_enough():
    mv = synkinesis_series(1)
    mv[70:, 1, EYES] = np.clip(mv[70:, 1, EYES], 0, 0.3)  # only the first episode keeps the eye closing
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, rules=EvidenceRules(min_episodes=2))
    assert not [s for s in found.synkinesis if s.au == "eyes"]


def test_more_eye_movement_on_the_strong_side_of_a_palsy_is_not_called_synkinesis():
    mv = synkinesis_series(1)
    for start in (5, 50, 100, 140):  # the right eye also closes on its own (blinks, eye closure)
        mv[start : start + 4, 1, EYES] = 3.0
    mv[:, 0, EYES] = 0.0  # the left eye does not move at all: a weak left eye, the right eye is normal
    found = assess(*zeros(len(mv)), NORMAL, movement=mv)
    assert found.regions["eyes"].weaker_side == "left"
    assert not [s for s in found.synkinesis if s.au == "eyes" and s.side == "right"]


def narrowing_with_blinks(left_blink_closure: float) -> tuple[np.ndarray, np.ndarray]:
    """(movement, closure): the right eye narrows with every smile and now and then alone, the left eye
    does neither; both eyes blink three times, the left one's lids reaching ``left_blink_closure``."""
    mv = synkinesis_series(1)
    closure = np.zeros((len(mv), 2))
    for start in (5, 50, 100, 140):  # the right eye narrows with the mouth still, too
        mv[start : start + 4, 1, EYES] = 3.0
    mv[:, 0, EYES] = 0.0
    closure[:, 1] = mv[:, 1, EYES]
    for start in (35, 85, 135):  # blinks: the right eye closes completely
        mv[start : start + 2, 1, EYES] = closure[start : start + 2, 1] = 5.0
        mv[start : start + 2, 0, EYES] = closure[start : start + 2, 0] = left_blink_closure
    return mv, closure


def test_an_eye_whose_lids_meet_in_blinks_is_not_named_weaker_and_the_other_eye_is_tested():
    mv, closure = narrowing_with_blinks(5.0)
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure)
    eyes = found.regions["eyes"]
    assert eyes.weaker_side is None and eyes.status == "no_clear_difference"
    assert "lids met in 3 separate blinks" in eyes.reason
    assert eyes.asymmetry is not None and eyes.asymmetry < 0  # the evidence stays: the left moved less
    assert ("right", "AU43", "mouth") in {(s.side, s.au, s.trigger) for s in found.synkinesis}


def test_an_eye_whose_lids_do_not_meet_stays_the_weaker_eye():
    mv, closure = narrowing_with_blinks(2.0)  # the left lids close only partly: lagophthalmos
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure)
    assert found.regions["eyes"].weaker_side == "left"
    assert not [s for s in found.synkinesis if s.au in ("eyes", "AU43") and s.side == "right"]


def talking_with_blinks(left_blink: float, n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """(movement, closure): the mouth moves in every keyframe (a patient who talks throughout), and the
    right eye blinks completely 6 times, 2 keyframes each; the left eye's lids reach ``left_blink``."""
    mv = movement_series(n=n, seed=7, noise=0.1)
    mv[:, :, MOUTH] = 2.5
    closure = np.zeros((n, 2))
    for start in range(10, n - 10, 24):
        closure[start : start + 2, 1] = 5.0
        closure[start : start + 2, 0] = left_blink
    mv[:, :, EYES] = closure
    return mv, closure


def test_a_talking_patients_eye_whose_lids_do_not_meet_in_blinks_is_the_weaker_eye():
    mv, closure = talking_with_blinks(1.0)  # the left lids close a fifth of the way: lagophthalmos
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure)
    eyes = found.regions["eyes"]
    assert eyes.weaker_side == "left" and eyes.status == "weaker_side"
    assert eyes.reason.startswith("the left eye's lids do not meet: in 12 keyframes where the other eye closed")
    assert eyes.weaker_percent == pytest.approx(20.0)
    assert eyes.basis == "blinks" and eyes.to_json()["basis"] == "blinks"
    assert region_words(eyes.to_json()).startswith("left side weaker: closed 20 % as far as the right in blinks")
    assert region_words(eyes.to_json()).endswith("12 of 150 keyframes in blinks")
    # without the blinks' verdict the mouth, moving in every keyframe, would leave the eyes unjudged
    assert assess(*zeros(len(mv)), NORMAL, movement=mv).regions["eyes"].status == "did_not_move"


def test_a_talking_patients_eyes_blinking_together_are_judged_even():
    mv, closure = talking_with_blinks(4.6)
    eyes = assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure).regions["eyes"]
    assert eyes.weaker_side is None and eyes.status == "no_clear_difference"
    assert eyes.reason.startswith("in 12 blink keyframes:") and eyes.basis == "blinks"
    mirrored = assess(*zeros(len(mv)), NORMAL, movement=mv[:, ::-1], closure=closure[:, ::-1]).regions["eyes"]
    assert mirrored.asymmetry == pytest.approx(-eyes.asymmetry)


def closure_series(closing: int | None, n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """(movement, closure): the mouth smiles in 3 episodes, both eyes blink 3 times apart from them,
    and the eye ``closing`` (0 left, 1 right, None neither) also closes with every smile."""
    mv = movement_series(n=n, seed=5, noise=0.1)
    mv[:, :, MOUTH] = 0.0
    closure = np.zeros((n, 2))
    for start in (20, 70, 120):
        mv[start : start + 15, :, MOUTH] = 3.0
        if closing is not None:
            closure[start : start + 15, closing] = 4.0
    for start in (40, 90, 140):
        closure[start : start + 2, :] = 5.0
    mv[:, :, EYES] = closure
    return mv, closure


@pytest.mark.parametrize("side, name", [(0, "left"), (1, "right")])
def test_one_eye_closing_alone_with_the_smile_is_synkinesis_with_its_counts(side, name):
    mv, closure = closure_series(side)
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure)
    pairs = {(s.side, s.au, s.trigger): s for s in found.synkinesis}
    assert (name, "AU43", "mouth") in pairs, found.synkinesis
    pair = pairs[(name, "AU43", "mouth")]
    assert (pair.n_trigger, pair.n_together, pair.n_other_side, pair.episodes) == (45, 45, 0, 3)
    assert pair.p_adjusted < 0.05
    assert all(s.side == name for s in found.synkinesis)
    assert found.regions["eyes"].weaker_side is None  # the other eye's lids meet in its blinks
    words = pair_words(pair.to_json())
    assert words.startswith(f"{name} eye closes (AU43) with the mouth")
    assert "in 45 of 45 keyframes with the mouth moving (the other eye alone 0), 3 episodes" in words


def test_eyes_blinking_together_while_talking_are_not_synkinesis():
    mv, closure = closure_series(None)
    for start in (25, 75, 125):  # blinks during the smiles, both eyes together
        closure[start : start + 2, :] = 5.0
    mv[:, :, EYES] = closure
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure)
    assert not [s for s in found.synkinesis if s.au == "AU43"]


def test_the_healthy_eye_blinking_alone_beside_a_frozen_eye_is_not_synkinesis():
    mv, closure = closure_series(None)
    for start in (25, 75, 125):  # the right eye blinks during the smiles too
        closure[start : start + 2, 1] = 5.0
    closure[:, 0] = 0.0  # the left eye's lids never move: a palsy, not a synkinesis of the right
    mv[:, :, EYES] = closure
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure)
    assert not [s for s in found.synkinesis if s.au == "AU43"]


def talking_with_eye_closures(n: int = 160, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(movement, closure, left AUs, right AUs) of a talking face: the mouth moves on both sides in every
    keyframe, both corners lift a little at random, and both eyes close firmly in 4 held closures."""
    rng = np.random.default_rng(seed)
    mv = movement_series(n=n, seed=seed, noise=0.1)
    mv[:, :, MOUTH] = rng.uniform(2.0, 4.0, (n, 1))  # talking: the same on both sides
    closure = np.zeros((n, 2))
    for start in (20, 60, 100, 140):
        closure[start : start + 3, :] = 4.5
    mv[:, :, EYES] = closure
    left, right = zeros(n)
    lift = rng.uniform(0.0, 1.0, n)
    left[:, AU_INDEX["AU12"]], right[:, AU_INDEX["AU12"]] = lift, lift + rng.normal(0, 0.1, n)
    return mv, closure, left, right


@pytest.mark.parametrize("side, name", [(0, "left"), (1, "right")])
def test_a_mouth_corner_rising_whenever_the_eyes_close_is_synkinesis_in_a_talking_face(side, name):
    mv, closure, left, right = talking_with_eye_closures()
    closed = closure.min(axis=1) > 0
    (left, right)[side][closed, AU_INDEX["AU12"]] = 3.0
    found = assess(left, right, NORMAL, movement=mv, closure=closure)
    pairs = {(s.side, s.au, s.trigger): s for s in found.synkinesis}
    assert (name, "mouth", "eyes") in pairs, found.synkinesis
    pair = pairs[(name, "mouth", "eyes")]
    assert (pair.n_trigger, pair.n_together, pair.episodes) == (12, 12, 4)
    assert pair.share_with_trigger is not None and pair.share_with_trigger > 0.7
    words = pair_words(pair.to_json())
    assert words.startswith(f"{name} mouth corner lifts (AU12) with the eyes' closure")
    assert "lifted in 12 of 12 keyframes with the eyes closed" in words
    assert all(s.side == name for s in found.synkinesis)
    # the talking mouth's direction-free movement alone does not show it: it is the same on both sides
    assert not assess(*zeros(len(mv)), NORMAL, movement=mv, closure=closure).synkinesis


def test_a_corner_that_lifts_more_on_one_side_with_the_eyes_open_too_is_not_synkinesis():
    mv, closure, left, right = talking_with_eye_closures()
    right[:, AU_INDEX["AU12"]] += 1.5  # an asymmetric smile (or a residual tilt): there with or without the trigger
    found = assess(left, right, NORMAL, movement=mv, closure=closure)
    assert not found.synkinesis


def test_exercise_context_restricts_the_trigger_keyframes():
    mv = synkinesis_series(1)
    context = np.array(["rest"] * len(mv), dtype=object)
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, context=context)
    assert found.synkinesis == []  # no mouth exercise: eye-given-mouth pairs have no trigger keyframes
    context[:] = "smile"
    found = assess(*zeros(len(mv)), NORMAL, movement=mv, context=context)
    assert ("right", "eyes", "mouth") in {(s.side, s.au, s.trigger) for s in found.synkinesis}


def test_au_based_rules_without_movement_still_decide():
    n = 80
    rng = np.random.default_rng(1)
    left, right = zeros(n)
    smile = (np.arange(n) % 20) < 10
    for arr in (left, right):
        arr[smile, 6] = 3.0  # AU12
        arr[:, 6] += rng.normal(0, 0.1, n)
    right[:, 6] *= 0.2
    found = assess(np.clip(left, 0, 5), np.clip(right, 0, 5), NORMAL)
    assert found.regions["mouth"].weaker_side == "right"


def test_paper_rules_reproduce_the_paper_verdicts():
    rng = np.random.default_rng(2)
    left = rng.uniform(0, 5, (40, N_AUS))
    right = left * 0.3
    state = compute_symptoms(left, right, NORMAL)
    found = paper_findings(state)
    assert found.rules == "paper"
    for name, region in state.regions.items():
        assert found.regions[name].weaker_side == region.weaker_side
    assert len(found.synkinesis) == len(state.synkinesis_pairs)


def test_material_warnings():
    assert any("no face in 96 of 169" in w for w in material_warnings({"frames": 169, "frames_without_face": 96}, 8))
    assert any("still image" in w for w in material_warnings({"frames": 1}, 1))
    assert any("only 7 keyframes" in w for w in material_warnings({"frames": 72, "duration_s": 2.4}, 7))
    assert any("head turned" in w for w in material_warnings({"frames": 100, "frames_pose_gated": 40}, 30))
    turned = material_warnings({"frames": 300, "duration_s": 10.0, "keyframes": 80, "keyframes_pose_gated": 20}, 60)
    assert any("neutral reference in 20 of 80 keyframes (25 %)" in w for w in turned)
    assert material_warnings({"frames": 300, "duration_s": 10.0, "keyframes": 80, "keyframes_pose_gated": 10}, 70) == []
    assert material_warnings({"frames": 300, "duration_s": 10.0}, 80) == []


def test_running_median_removes_one_keyframe_spikes():
    x = np.zeros(10)
    x[4] = 5.0
    assert running_median(x, 3).max() == 0.0
    x[4:7] = 5.0
    assert running_median(x, 3)[5] == 5.0


def test_exact_mcnemar_tail_holds_for_long_sessions():
    from stream.symptoms.synkinesis import _binomial_tail

    assert _binomial_tail(3, 3) == pytest.approx(1 / 8)
    assert _binomial_tail(0, 5) == 1.0
    assert 0 < _binomial_tail(1500, 2000) < 1e-100  # 2.0**2000 would overflow a float


def test_eyes_that_move_only_with_the_mouth_say_what_to_record_instead_of_did_not_move():
    n = 120
    mv = np.zeros((n, 2, 3))
    for start in (10, 50, 90):  # three eye closures, each with a smile: never with the mouth still
        mv[start : start + 12, :, EYES] = 3.0
        mv[start : start + 12, :, MOUTH] = 3.0
    found = assess(*zeros(n), NORMAL, movement=mv)
    eyes = found.regions["eyes"]
    assert eyes.status == "did_not_move"
    assert eyes.n_moving_not_judged >= 30 and eyes.record_alone
    assert "close the eyes with the mouth at rest" in eyes.reason
    # the same amount of eye movement with the mouth still is judged as before
    alone = mv.copy()
    alone[:, :, MOUTH] = 0.0
    assert assess(*zeros(n), NORMAL, movement=alone).regions["eyes"].status == "no_clear_difference"
    # and a face that did not move at all is not told to record anything
    still = assess(*zeros(n), NORMAL, movement=np.zeros((n, 2, 3))).regions["eyes"]
    assert still.n_moving_not_judged == 0 and not still.record_alone and "record" not in still.reason
    # a few eye movements with the mouth, too few to judge even together, are counted but ask for nothing
    few = np.zeros((n, 2, 3))
    few[10:14, :, EYES] = 3.0
    few[10:14, :, MOUTH] = 3.0
    eyes = assess(*zeros(n), NORMAL, movement=few).regions["eyes"]
    assert eyes.n_moving_not_judged > 0 and not eyes.record_alone and "record" not in eyes.reason
