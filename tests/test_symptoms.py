"""Symptom statistics (paper, section 4): hand-computed series, incremental == batch, the loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stream.aus import AU_INDEX, AU_NAMES, N_AUS
from stream.errors import InputError
from stream.symptoms import (
    COOCCURRENCE_KEYS,
    DIFFERENCE_KEYS,
    SymptomAccumulator,
    SymptomState,
    SynkinesisPair,
    compute_symptoms,
    load_normal_cooccurrence,
)

NO_NORMAL = np.zeros((N_AUS, N_AUS))  # a mask that keeps every off-diagonal pair


def series(n: int, **columns: list[float]) -> np.ndarray:
    """An (n, 12) series of zeros with the named AU columns set, e.g. ``series(4, AU12=[...])``."""
    out = np.zeros((n, N_AUS))
    for name, values in columns.items():
        out[:, AU_INDEX[name]] = values
    return out


def both_ways(left: np.ndarray, right: np.ndarray, normal: np.ndarray = NO_NORMAL, **thresholds) -> SymptomState:
    """The batch state, after checking that frame-by-frame accumulation gives the same."""
    active_threshold = thresholds.pop("active_threshold", 0.5)
    batch = compute_symptoms(left, right, normal, active_threshold=active_threshold, **thresholds)
    accumulator = SymptomAccumulator(active_threshold)
    for l_row, r_row in zip(left, right):
        accumulator.update(l_row, r_row)
    assert_same_state(accumulator.snapshot(normal, **thresholds), batch)
    return batch


def assert_same_state(a: SymptomState, b: SymptomState) -> None:
    assert a.n_frames == b.n_frames
    # assert_allclose treats NaN in the same places as equal and NaN against a number as a failure.
    close = {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(a.active_mean_left, b.active_mean_left, **close)
    np.testing.assert_allclose(a.active_mean_right, b.active_mean_right, **close)
    np.testing.assert_allclose(a.delta_am, b.delta_am, **close)
    for key in COOCCURRENCE_KEYS:
        np.testing.assert_allclose(a.cooccurrence[key], b.cooccurrence[key], **close)
    for key in DIFFERENCE_KEYS:
        np.testing.assert_allclose(a.cooccurrence_difference[key], b.cooccurrence_difference[key], **close)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.regions.keys() == b.regions.keys()
    for name in a.regions:
        assert a.regions[name].delta_am == pytest.approx(b.regions[name].delta_am, abs=1e-12)
        assert a.regions[name].weaker_side == b.regions[name].weaker_side
    assert [(p.matrix, p.row, p.col) for p in a.synkinesis_pairs] == [
        (p.matrix, p.row, p.col) for p in b.synkinesis_pairs
    ]
    np.testing.assert_allclose([p.value for p in a.synkinesis_pairs], [p.value for p in b.synkinesis_pairs], atol=1e-12)


# --- Active Mean and asymmetry (eq. 4-6) -------------------------------------------------------

# Four keyframes of a patient whose right side is weak: a smile and a cheek raise mostly on the
# left, a mouth opening (AU25) stronger on the right.
WEAK_RIGHT_LEFT = series(4, AU6=[2.0, 1.0, 0.0, 0.0], AU12=[4.0, 3.0, 0.0, 0.5], AU25=[1.0, 0.0, 0.0, 0.0])
WEAK_RIGHT_RIGHT = series(4, AU6=[0.0, 0.0, 0.0, 0.0], AU12=[1.0, 0.2, 0.0, 0.0], AU25=[0.0, 0.0, 2.0, 0.0])


def test_active_mean_averages_both_sides_over_frames_where_either_side_is_active():
    state = both_ways(WEAK_RIGHT_LEFT, WEAK_RIGHT_RIGHT)
    am_left, am_right = state.active_mean_left, state.active_mean_right
    # AU12 is active in frames 0 and 1 (left); frame 3's left 0.5 is not above the threshold.
    assert am_left[AU_INDEX["AU12"]] == pytest.approx((4.0 + 3.0) / 2)
    assert am_right[AU_INDEX["AU12"]] == pytest.approx((1.0 + 0.2) / 2)  # 0.2 counts: the left was active
    assert am_left[AU_INDEX["AU6"]] == pytest.approx(1.5)
    assert am_right[AU_INDEX["AU6"]] == pytest.approx(0.0)
    # AU25: frame 0 (left) and frame 2 (right).
    assert am_left[AU_INDEX["AU25"]] == pytest.approx(0.5)
    assert am_right[AU_INDEX["AU25"]] == pytest.approx(1.0)
    assert state.delta_am[AU_INDEX["AU12"]] == pytest.approx(2.9)
    assert state.delta_am[AU_INDEX["AU6"]] == pytest.approx(1.5)
    assert state.delta_am[AU_INDEX["AU25"]] == pytest.approx(-0.5)


def test_region_sums_skip_null_aus_and_name_the_weaker_side():
    state = both_ways(WEAK_RIGHT_LEFT, WEAK_RIGHT_RIGHT)
    assert state.regions["mouth"].delta_am == pytest.approx(2.9 - 0.5)  # AU15, AU17, AU20 never active
    assert state.regions["mouth"].weaker_side == "right"
    assert state.regions["eyes"].delta_am == pytest.approx(1.5)  # AU5 never active
    assert state.regions["eyes"].weaker_side == "right"
    assert state.regions["eyebrows"].delta_am == 0.0  # all null
    assert state.regions["eyebrows"].weaker_side is None


def test_never_active_au_has_null_active_mean_and_null_cooccurrence_column():
    state = both_ways(WEAK_RIGHT_LEFT, WEAK_RIGHT_RIGHT)
    au1 = AU_INDEX["AU1"]
    assert np.isnan(state.active_mean_left[au1]) and np.isnan(state.active_mean_right[au1])
    assert np.isnan(state.delta_am[au1])
    for key in COOCCURRENCE_KEYS:
        assert np.isnan(state.cooccurrence[key][:, au1]).all()
    report = state.to_json()
    assert report["active_mean"]["left"]["AU1"] is None
    assert report["delta_am"]["AU1"] is None
    assert all(row[au1] is None for row in report["cooccurrence"]["left|left"])


@pytest.mark.parametrize(
    ("delta", "threshold", "weaker"),
    [
        (0.6, 0.5, "right"),
        (-0.6, 0.5, "left"),
        (0.5, 0.5, None),
        (-0.5, 0.5, None),
        (0.6, 1.0, None),
        (0.2, 0.1, "right"),
    ],
)
def test_asymmetry_dead_band(delta, threshold, weaker):
    # One frame of AU1, left 2 + delta against right 2: region eyebrows sums to delta.
    left = series(1, AU1=[2.0 + delta])
    right = series(1, AU1=[2.0])
    state = both_ways(left, right, asymmetry_threshold=threshold)
    assert state.regions["eyebrows"].delta_am == pytest.approx(delta)
    assert state.regions["eyebrows"].weaker_side == weaker
    assert state.asymmetry_threshold == threshold


def test_intensity_exactly_at_threshold_is_not_active():
    left = series(3, AU4=[0.5, 0.5, 0.5])
    right = series(3, AU4=[0.5, 0.5, 0.6])
    state = both_ways(left, right)
    au4 = AU_INDEX["AU4"]
    # Only frame 2 (right 0.6) is in S; the left's 0.5 is averaged there although not active itself.
    assert state.active_mean_left[au4] == pytest.approx(0.5)
    assert state.active_mean_right[au4] == pytest.approx(0.6)
    assert np.isnan(state.cooccurrence["left|left"][:, au4]).all()  # left AU4 never active
    assert state.cooccurrence["right|right"][au4, au4] == 1.0

    tie_only = both_ways(series(2, AU4=[0.5, 0.5]), series(2, AU4=[0.5, 0.5]))
    assert np.isnan(tie_only.active_mean_left[au4])


def test_always_active_au():
    rng = np.random.default_rng(7)
    left = rng.uniform(0.0, 1.0, (20, N_AUS))
    right = rng.uniform(0.0, 1.0, (20, N_AUS))
    au26 = AU_INDEX["AU26"]
    left[:, au26] = rng.uniform(1.0, 5.0, 20)
    right[:, au26] = rng.uniform(1.0, 5.0, 20)
    state = both_ways(left, right)
    assert state.active_mean_left[au26] == pytest.approx(left[:, au26].mean())
    assert state.active_mean_right[au26] == pytest.approx(right[:, au26].mean())
    for key in COOCCURRENCE_KEYS:
        first = key.split("|")[0]
        side = left if first == "left" else right
        # Given an AU that is always active, P(AU_i active) is just AU_i's base rate...
        np.testing.assert_allclose(state.cooccurrence[key][:, au26], (side > 0.5).mean(axis=0))
        # ... and AU26 itself is active whenever any other AU is.
        defined = ~np.isnan(state.cooccurrence[key][au26])
        np.testing.assert_array_equal(state.cooccurrence[key][au26, defined], 1.0)


# --- Co-occurrence and synkinesis (eq. 7-9) ----------------------------------------------------

# A smile on the left (AU12, frames 0 and 1) with the right eye opening (AU5) in frame 0 only.
SMILE_LEFT = series(4, AU12=[3.0, 3.0, 0.0, 0.0])
SMILE_RIGHT = series(4, AU5=[2.0, 0.0, 0.0, 0.0])
AU5, AU12 = AU_INDEX["AU5"], AU_INDEX["AU12"]


def test_cooccurrence_and_difference_entries_by_hand():
    state = both_ways(SMILE_LEFT, SMILE_RIGHT)
    cm = state.cooccurrence
    # P(right AU5 | left AU12): left AU12 is active in 2 frames, right AU5 in 1 of them.
    assert cm["right|left"][AU5, AU12] == pytest.approx(0.5)
    assert cm["left|left"][AU5, AU12] == 0.0
    assert cm["left|left"][AU12, AU12] == 1.0
    assert cm["left|right"][AU12, AU5] == 1.0  # the one right-AU5 frame has a left smile
    assert cm["right|right"][AU12, AU5] == 0.0
    assert np.isnan(cm["left|left"][:, AU5]).all()  # left AU5 never active
    diff = state.cooccurrence_difference
    assert diff["right-left|left"][AU5, AU12] == pytest.approx(0.5 - 0.0)
    assert diff["left-right|right"][AU12, AU5] == pytest.approx(1.0 - 0.0)
    assert diff["right-left|left"][AU12, AU12] == pytest.approx(0.0 - 1.0)
    assert np.isnan(diff["right-left|left"][:, AU5]).all()


def test_synkinesis_pairs_above_threshold_off_the_diagonal():
    state = both_ways(SMILE_LEFT, SMILE_RIGHT, cooccurrence_threshold=0.3)
    assert state.synkinesis_detected
    # The diagonal entries (-1: an AU with itself) are masked out.
    assert state.synkinesis_pairs == [
        SynkinesisPair("right-left|left", "AU5", "AU12", 0.5),
        SynkinesisPair("left-right|right", "AU12", "AU5", 1.0),
    ]


def test_difference_at_the_threshold_is_not_synkinesis():
    just_above = both_ways(SMILE_LEFT, SMILE_RIGHT, cooccurrence_threshold=0.49)
    assert [(p.row, p.col) for p in just_above.synkinesis_pairs] == [("AU5", "AU12"), ("AU12", "AU5")]
    at = both_ways(SMILE_LEFT, SMILE_RIGHT, cooccurrence_threshold=0.5)
    assert [(p.row, p.col, p.value) for p in at.synkinesis_pairs] == [("AU12", "AU5", 1.0)]
    assert not both_ways(SMILE_LEFT, SMILE_RIGHT, cooccurrence_threshold=1.0).synkinesis_detected


def test_mask_removes_pairs_that_cooccur_in_normal_subjects():
    normal = NO_NORMAL.copy()
    normal[AU12, AU5] = 0.8  # healthy faces smile with open eyes: not evidence of synkinesis
    state = both_ways(SMILE_LEFT, SMILE_RIGHT, normal)
    assert not state.mask[AU12, AU5]
    assert state.mask[AU5, AU12]
    assert not state.mask.diagonal().any()
    assert [(p.matrix, p.row, p.col) for p in state.synkinesis_pairs] == [("right-left|left", "AU5", "AU12")]

    normal[AU12, AU5] = 0.5  # exactly at the normal threshold: kept
    assert len(both_ways(SMILE_LEFT, SMILE_RIGHT, normal).synkinesis_pairs) == 2
    # A stricter normal threshold masks more.
    assert len(both_ways(SMILE_LEFT, SMILE_RIGHT, normal, normal_threshold=0.4).synkinesis_pairs) == 1


def test_symmetric_face_has_no_synkinesis():
    rng = np.random.default_rng(3)
    face = rng.uniform(0.0, 3.0, (40, N_AUS))
    state = both_ways(face, face.copy())
    assert not state.synkinesis_detected
    np.testing.assert_array_equal(np.nan_to_num(state.delta_am), 0.0)
    assert all(region.weaker_side is None for region in state.regions.values())


# --- Incremental == batch ----------------------------------------------------------------------


def random_series(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sparse activity with values exactly at the threshold and some AUs never active."""

    def side() -> np.ndarray:
        values = rng.choice([0.0, 0.0, 0.0, 0.2, 0.5, 0.5, 0.51, 1.0, 2.5, 5.0], size=(n, N_AUS))
        values += rng.uniform(0.0, 0.5, (n, N_AUS)) * (rng.random((n, N_AUS)) < 0.2)
        return values

    left, right = side(), side()
    never = rng.choice(N_AUS, size=2, replace=False)
    left[:, never] = right[:, never] = 0.5
    return left, right


@pytest.mark.parametrize("seed", range(6))
def test_incremental_equals_batch(seed):
    rng = np.random.default_rng(seed)
    left, right = random_series(rng, int(rng.integers(1, 200)))
    normal = load_normal_cooccurrence(None)
    thresholds = {"asymmetry_threshold": 0.3, "cooccurrence_threshold": 0.2, "normal_threshold": 0.5}
    batch = compute_symptoms(left, right, normal, **thresholds)

    one_by_one = SymptomAccumulator()
    for l_row, r_row in zip(left, right):
        one_by_one.update(l_row, r_row)
    in_chunks = SymptomAccumulator()
    cut = len(left) // 3
    in_chunks.update_many(left[:cut], right[:cut])
    in_chunks.update_many(left[cut:], right[cut:])

    assert one_by_one.n == in_chunks.n == len(left)
    assert_same_state(one_by_one.snapshot(normal, **thresholds), batch)
    assert_same_state(in_chunks.snapshot(normal, **thresholds), batch)
    assert np.isnan(batch.active_mean_left).sum() >= 2


def test_snapshot_midway_and_copy_is_independent():
    rng = np.random.default_rng(11)
    left, right = random_series(rng, 60)
    accumulator = SymptomAccumulator()
    accumulator.update_many(left[:30], right[:30])
    frozen = accumulator.copy()
    accumulator.update_many(left[30:], right[30:])
    assert frozen.n == 30
    assert_same_state(frozen.snapshot(NO_NORMAL), compute_symptoms(left[:30], right[:30], NO_NORMAL))
    assert_same_state(accumulator.snapshot(NO_NORMAL), compute_symptoms(left, right, NO_NORMAL))


def test_accumulator_memory_does_not_grow_with_the_series():
    rng = np.random.default_rng(5)
    left, right = random_series(rng, 10_000)

    def stored(accumulator: SymptomAccumulator) -> dict[str, tuple[int, ...]]:
        return {name: value.shape for name, value in vars(accumulator).items() if isinstance(value, np.ndarray)}

    short, long = SymptomAccumulator(), SymptomAccumulator()
    for i in range(10):
        short.update(left[i], right[i])
    long.update_many(left[:5000], right[:5000])
    for i in range(5000, 10_000):
        long.update(left[i], right[i])
    assert long.n == 10_000
    assert stored(short) == stored(long) and stored(short)
    assert short.nbytes == long.nbytes
    assert not any(isinstance(value, (list, dict, tuple)) for value in vars(long).values())


def test_empty_series_is_all_null():
    empty = np.zeros((0, N_AUS))
    state = both_ways(empty, empty)
    assert state.n_frames == 0
    assert np.isnan(state.active_mean_left).all()
    assert all(np.isnan(m).all() for m in state.cooccurrence.values())
    assert not state.synkinesis_detected
    assert SymptomAccumulator().snapshot(NO_NORMAL).n_frames == 0


# --- Input validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "message"),
    [
        (np.zeros((4, 11)), np.zeros((4, 11)), r"left AU series must have shape \(n, 12\).*got \(4, 11\)"),
        (np.zeros(12), np.zeros(12), r"shape \(n, 12\)"),
        (np.zeros((4, 12)), np.zeros((5, 12)), "differ in length: 4 vs 5"),
        (np.zeros((4, 12)), series(4, AU9=[0, 0, np.nan, 0]), "right AU series has a NaN .* at keyframe 2, AU9"),
        (series(4, AU20=[np.inf, 0, 0, 0]), np.zeros((4, 12)), "left .* keyframe 0, AU20"),
    ],
)
def test_bad_series_are_refused(left, right, message):
    with pytest.raises(ValueError, match=message):
        compute_symptoms(left, right, NO_NORMAL)
    with pytest.raises(ValueError, match=message):
        SymptomAccumulator().update_many(left, right)


def test_bad_keyframe_and_normal_are_refused():
    accumulator = SymptomAccumulator()
    with pytest.raises(ValueError, match=r"left AU intensities must have shape \(12,\)"):
        accumulator.update(np.zeros(13), np.zeros(12))
    with pytest.raises(ValueError, match="right AU intensities have a NaN or infinite value at AU15"):
        accumulator.update(np.zeros(12), series(1, AU15=[np.nan])[0])
    assert accumulator.n == 0  # nothing half-added
    with pytest.raises(ValueError, match=r"normal co-occurrence matrix must be 12x12.*\(12, 11\)"):
        accumulator.snapshot(np.zeros((12, 11)))
    with pytest.raises(ValueError, match="co-occurrence threshold must be in"):
        accumulator.snapshot(NO_NORMAL, cooccurrence_threshold=1.5)


# --- report.json -------------------------------------------------------------------------------


def test_to_json_is_plain_and_has_the_report_keys():
    state = both_ways(SMILE_LEFT, SMILE_RIGHT, load_normal_cooccurrence(None))
    report = state.to_json()
    text = json.dumps(report, allow_nan=False)  # no NaN, no numpy scalars
    assert json.loads(text) == report
    assert set(report) == {
        "aus",
        "active_threshold",
        "active_mean",
        "delta_am",
        "regions",
        "cooccurrence",
        "cooccurrence_difference",
        "synkinesis",
        "asymmetry_threshold",
        "cooccurrence_threshold",
        "normal_threshold",
        "n_keyframes",
    }
    assert report["aus"] == list(AU_NAMES)
    assert report["n_keyframes"] == 4
    assert set(report["cooccurrence"]) == {"left|left", "left|right", "right|left", "right|right"}
    assert set(report["cooccurrence_difference"]) == {"right-left|left", "left-right|right"}
    assert all(len(m) == 12 and all(len(row) == 12 for row in m) for m in report["cooccurrence"].values())
    assert report["cooccurrence"]["right|left"][AU5][AU12] == 0.5
    assert report["regions"]["mouth"] == {"delta_am": 3.0, "weaker_side": "right"}
    assert report["regions"]["eyes"] == {"delta_am": -2.0, "weaker_side": "left"}  # right lid raised alone
    assert report["synkinesis"]["detected"] is True
    assert {"matrix": "right-left|left", "row": "AU5", "col": "AU12", "value": 0.5} in report["synkinesis"]["pairs"]


def test_state_arrays_are_read_only():
    state = compute_symptoms(SMILE_LEFT, SMILE_RIGHT, NO_NORMAL)
    with pytest.raises(ValueError):
        state.delta_am[0] = 1.0
    with pytest.raises(ValueError):
        state.cooccurrence["left|left"][0, 0] = 1.0


# --- The normal co-occurrence matrix ------------------------------------------------------------


def test_default_matrix_loads_with_unit_diagonal():
    normal = load_normal_cooccurrence(None)
    assert normal.shape == (N_AUS, N_AUS)
    np.testing.assert_array_equal(normal.diagonal(), 1.0)
    assert ((0.0 <= normal) & (normal <= 1.0)).all()
    # AU1 and AU2 (inner and outer brow raiser) move together in healthy faces.
    assert normal[AU_INDEX["AU2"], AU_INDEX["AU1"]] > 0.5


def test_default_matrix_is_the_disfa_table(shared_data: Path):
    source = shared_data / "cooccurrence" / "disfa12_P_i_given_j_thr1.csv"
    np.testing.assert_array_equal(load_normal_cooccurrence(None), np.loadtxt(source, delimiter=",", comments="#"))


def test_json_file(tmp_path: Path):
    matrix = np.round(np.random.default_rng(1).random((N_AUS, N_AUS)), 4)
    path = tmp_path / "clinic.json"
    path.write_text(json.dumps(matrix.tolist()))
    np.testing.assert_array_equal(load_normal_cooccurrence(path), matrix)
    np.testing.assert_array_equal(load_normal_cooccurrence(str(path)), matrix)


def test_csv_file_with_comments_and_header(tmp_path: Path):
    matrix = np.round(np.random.default_rng(2).random((N_AUS, N_AUS)), 4)
    lines = ["# healthy volunteers, clinic X, 2024", "", ", ".join(AU_NAMES)]
    for i, row in enumerate(matrix):
        lines.append(",".join(f"{v:.4f}" for v in row))
        if i == 5:
            lines.append("# halfway")
    path = tmp_path / "clinic.csv"
    path.write_text("\n".join(lines) + "\n")
    np.testing.assert_array_equal(load_normal_cooccurrence(path), matrix)

    no_header = tmp_path / "plain.csv"
    no_header.write_text("\n".join(",".join(str(v) for v in row) for row in matrix))
    np.testing.assert_array_equal(load_normal_cooccurrence(no_header), matrix)


def write_rows(path: Path, rows: list[list[object]]) -> Path:
    path.write_text("\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("short_row.csv", "row3", r"short_row.csv: row 3 \(line 3\) has 11 values, expected 12 in AU order AU1,AU2,"),
        ("eleven_rows.csv", "eleven", "eleven_rows.csv: has 11 rows of numbers, expected 12 rows of 12 numbers"),
        ("range.csv", "range", r"range.csv: row 2 \(line 2\), column AU4: 1.5 is not a probability in \[0, 1\]"),
        ("nan.csv", "nan", r"column AU1: nan is not a probability"),
        ("word.csv", "word", r"row 12 \(line 12\), column AU26: 'high' is not a number"),
        ("header.csv", "header", r"header row \(line 1\) names AU2,AU1,.*expected AU1,AU2,"),
        ("bad.json", "not json", "bad.json: not valid JSON"),
        ("dict.json", '{"matrix": []}', "dict.json: expected a JSON list of 12 lists"),
        ("short.json", "json11", "short.json: row 1 has 11 values, expected 12"),
        ("neg.json", "negative", r"neg.json: row 12, column AU26: -0.1 is not a probability in \[0, 1\]"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(tmp_path: Path, name, content, message):
    good = [[0.25] * N_AUS for _ in range(N_AUS)]
    path = tmp_path / name
    if content == "row3":
        write_rows(path, good[:2] + [[0.25] * 11] + good[3:])
    elif content == "eleven":
        write_rows(path, good[:11])
    elif content == "range":
        write_rows(path, good[:1] + [[0.25, 0.25, 1.5] + [0.25] * 9] + good[2:])
    elif content == "nan":
        write_rows(path, [["nan"] + [0.25] * 11] + good[1:])
    elif content == "word":
        write_rows(path, good[:11] + [[0.25] * 11 + ["high"]])
    elif content == "header":
        write_rows(path, [["AU2", "AU1", *AU_NAMES[2:]]] + good)
    elif content == "json11":
        path.write_text(json.dumps([[0.25] * 11] + good[1:]))
    elif content == "negative":
        path.write_text(json.dumps(good[:11] + [[0.25] * 11 + [-0.1]]))
    else:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_normal_cooccurrence(path)


def test_missing_file(tmp_path: Path):
    with pytest.raises(InputError, match=r"normal co-occurrence file .*absent.csv does not exist"):
        load_normal_cooccurrence(tmp_path / "absent.csv")
