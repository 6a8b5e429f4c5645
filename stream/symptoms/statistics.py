"""Asymmetry and synkinesis statistics from per-side AU series (paper, section 4).

Pure: arrays in, a frozen ``SymptomState`` out. The same state is reached two ways:

* ``SymptomAccumulator`` keeps counts and sums, so a new keyframe costs the same however long the
  session is; a live dashboard takes a ``snapshot`` whenever it wants one.
* ``compute_symptoms`` applies the equations to a whole series at once. It is the reference the
  accumulator is tested against, so it shares none of the accumulator's counting code.

Both hand their per-AU means and co-occurrence matrices to one function that derives ΔAM, the
regions, the difference matrices, the mask and the synkinesis pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, cast

import numpy as np

from stream.aus import AU_INDEX, AU_NAMES, N_AUS, REGIONS, SIDES, Side

# CM_{p1|p2}: "p1|p2" reads "AU_i on side p1 given AU_j on side p2" (eq. 7).
COOCCURRENCE_KEYS: Final[tuple[str, ...]] = ("left|left", "left|right", "right|left", "right|right")
# eq. 8-9: co-occurrence with the opposite side minus that with the same side, for one
# conditioning side. Positive: AU_j pulls AU_i on the *other* half-face more than on its own.
DIFFERENCE_TERMS: Final[dict[str, tuple[str, str]]] = {
    "right-left|left": ("right|left", "left|left"),
    "left-right|right": ("left|right", "right|right"),
}
DIFFERENCE_KEYS: Final[tuple[str, ...]] = tuple(DIFFERENCE_TERMS)

_AU_ORDER = ",".join(AU_NAMES)
# Offsets of each side in the concatenated [left, right] activity vector.
_OFFSET: Final[dict[str, int]] = {"left": 0, "right": N_AUS}


@dataclass(frozen=True)
class RegionAsymmetry:
    """Sum of a region's ΔAM and the side it points to (Algorithm 2, with a dead band)."""

    delta_am: float  # > 0: the left side moves more, so the right side is the weaker one
    weaker_side: Side | None  # None: |delta_am| within the dead band, "no obvious difference"


@dataclass(frozen=True)
class SynkinesisPair:
    """A kept pair whose co-occurrence differs between the sides by more than the threshold."""

    matrix: str  # "right-left|left" or "left-right|right"
    row: str  # AU_i, on the side before the minus sign
    col: str  # AU_j, the conditioning AU, on the side after "|"
    value: float  # the difference-matrix entry

    def to_json(self) -> dict[str, Any]:
        return {"matrix": self.matrix, "row": self.row, "col": self.col, "value": self.value}


# eq=False: arrays do not compare with ==; two states are the same object or different.
@dataclass(frozen=True, eq=False)
class SymptomState:
    """Everything section 4 reports for one series of keyframes.

    Arrays are read-only, in ``AU_NAMES`` order; NaN marks a value the data cannot define
    (an AU never active, a conditioning AU never active).
    """

    n_frames: int
    active_threshold: float
    active_mean_left: np.ndarray  # (12,) eq. 4
    active_mean_right: np.ndarray  # (12,) eq. 5
    delta_am: np.ndarray  # (12,) eq. 6, left minus right
    regions: dict[str, RegionAsymmetry]
    cooccurrence: dict[str, np.ndarray]  # COOCCURRENCE_KEYS -> (12, 12), row i given column j
    cooccurrence_difference: dict[str, np.ndarray]  # DIFFERENCE_KEYS -> (12, 12)
    mask: np.ndarray  # (12, 12) bool, True = pair kept for the synkinesis test
    synkinesis_pairs: list[SynkinesisPair]
    asymmetry_threshold: float
    cooccurrence_threshold: float
    normal_threshold: float

    @property
    def synkinesis_detected(self) -> bool:
        return bool(self.synkinesis_pairs)

    def to_json(self) -> dict[str, Any]:
        """The symptom part of report.json: plain floats, ``None`` where a value is undefined."""
        return {
            "aus": list(AU_NAMES),
            "n_keyframes": self.n_frames,
            "active_threshold": self.active_threshold,
            "asymmetry_threshold": self.asymmetry_threshold,
            "cooccurrence_threshold": self.cooccurrence_threshold,
            "normal_threshold": self.normal_threshold,
            "active_mean": {
                "left": _by_au(self.active_mean_left),
                "right": _by_au(self.active_mean_right),
            },
            "delta_am": _by_au(self.delta_am),
            "regions": {
                name: {"delta_am": region.delta_am, "weaker_side": region.weaker_side}
                for name, region in self.regions.items()
            },
            "cooccurrence": {key: _nested(m) for key, m in self.cooccurrence.items()},
            "cooccurrence_difference": {key: _nested(m) for key, m in self.cooccurrence_difference.items()},
            "synkinesis": {
                "detected": self.synkinesis_detected,
                "pairs": [pair.to_json() for pair in self.synkinesis_pairs],
            },
        }


class SymptomAccumulator:
    """Running counts and sums from which a ``SymptomState`` is read at any time.

    Memory and the cost of ``update`` are constant in the number of keyframes seen: per AU, how
    many frames had it active on either side and the sums of both sides' intensities over those
    frames (eq. 4-5); and a 24x24 count of joint activity over the vector [left AUs, right AUs],
    whose diagonal is each AU's active count per side (eq. 7).
    """

    def __init__(self, active_threshold: float = 0.5) -> None:
        if not math.isfinite(active_threshold):
            raise ValueError(f"active threshold must be a finite intensity, got {active_threshold}")
        self._active_threshold = float(active_threshold)
        self._n = 0
        self._either_count = np.zeros(N_AUS, dtype=np.int64)
        self._either_sum = np.zeros((len(SIDES), N_AUS), dtype=np.float64)  # rows: left, right
        self._joint = np.zeros((2 * N_AUS, 2 * N_AUS), dtype=np.int64)

    @property
    def n(self) -> int:
        """Keyframes seen so far."""
        return self._n

    @property
    def active_threshold(self) -> float:
        return self._active_threshold

    @property
    def nbytes(self) -> int:
        """Memory held by the running statistics; the same after 10 keyframes or 10 million."""
        return self._either_count.nbytes + self._either_sum.nbytes + self._joint.nbytes

    def update(self, left: np.ndarray, right: np.ndarray) -> None:
        """Add one keyframe: 12 AU intensities per side in ``AU_NAMES`` order."""
        left = _check_keyframe(left, "left")
        right = _check_keyframe(right, "right")
        active = np.concatenate((left > self._active_threshold, right > self._active_threshold))
        either = active[:N_AUS] | active[N_AUS:]
        self._joint += np.outer(active, active)
        self._either_count += either
        self._either_sum[0] += np.where(either, left, 0.0)
        self._either_sum[1] += np.where(either, right, 0.0)
        self._n += 1

    def update_many(self, left: np.ndarray, right: np.ndarray) -> None:
        """Add n keyframes at once: (n, 12) per side; the same as n calls to ``update``."""
        left, right = _check_series(left, right)
        active = np.concatenate((left > self._active_threshold, right > self._active_threshold), axis=1)
        either = active[:, :N_AUS] | active[:, N_AUS:]
        counts = active.astype(np.int64)
        self._joint += counts.T @ counts
        self._either_count += either.sum(axis=0)
        self._either_sum[0] += np.where(either, left, 0.0).sum(axis=0)
        self._either_sum[1] += np.where(either, right, 0.0).sum(axis=0)
        self._n += len(left)

    def copy(self) -> SymptomAccumulator:
        twin = SymptomAccumulator(self._active_threshold)
        twin._n = self._n
        twin._either_count = self._either_count.copy()
        twin._either_sum = self._either_sum.copy()
        twin._joint = self._joint.copy()
        return twin

    def snapshot(
        self,
        normal: np.ndarray,
        *,
        asymmetry_threshold: float = 0.5,
        cooccurrence_threshold: float = 0.3,
        normal_threshold: float = 0.5,
    ) -> SymptomState:
        """The statistics of every keyframe so far, masked with the normal-subject matrix."""
        active_mean = {side: _ratio(self._either_sum[k], self._either_count) for k, side in enumerate(SIDES)}
        active_count = np.diagonal(self._joint)
        cooccurrence = {}
        for key in COOCCURRENCE_KEYS:
            first, given = key.split("|")
            rows = slice(_OFFSET[first], _OFFSET[first] + N_AUS)
            cols = slice(_OFFSET[given], _OFFSET[given] + N_AUS)
            cooccurrence[key] = _ratio(self._joint[rows, cols], active_count[cols])
        return _state(
            self._n,
            self._active_threshold,
            active_mean["left"],
            active_mean["right"],
            cooccurrence,
            normal,
            asymmetry_threshold=asymmetry_threshold,
            cooccurrence_threshold=cooccurrence_threshold,
            normal_threshold=normal_threshold,
        )


def compute_symptoms(
    left: np.ndarray,
    right: np.ndarray,
    normal: np.ndarray,
    *,
    active_threshold: float = 0.5,
    asymmetry_threshold: float = 0.5,
    cooccurrence_threshold: float = 0.3,
    normal_threshold: float = 0.5,
) -> SymptomState:
    """Section 4 over a whole series: ``left`` and ``right`` are (n, 12) in ``AU_NAMES`` order."""
    if not math.isfinite(active_threshold):
        raise ValueError(f"active threshold must be a finite intensity, got {active_threshold}")
    left, right = _check_series(left, right)
    intensity = {"left": left, "right": right}
    active = {side: intensity[side] > active_threshold for side in SIDES}
    # eq. 4-5: S is the set of frames where the AU is active on at least one side.
    in_s = active["left"] | active["right"]
    active_mean = {side: np.full(N_AUS, np.nan) for side in SIDES}
    for k in range(N_AUS):
        frames = in_s[:, k]
        if frames.any():
            for side in SIDES:
                active_mean[side][k] = intensity[side][frames, k].mean()
    # eq. 7: column j is the distribution of activity on side p1 over frames where AU_j is active on p2.
    cooccurrence = {}
    for key in COOCCURRENCE_KEYS:
        first, given = (cast(Side, name) for name in key.split("|"))
        matrix = np.full((N_AUS, N_AUS), np.nan)
        for j in range(N_AUS):
            frames = active[given][:, j]
            if frames.any():
                matrix[:, j] = active[first][frames].mean(axis=0)
        cooccurrence[key] = matrix
    return _state(
        len(left),
        float(active_threshold),
        active_mean["left"],
        active_mean["right"],
        cooccurrence,
        normal,
        asymmetry_threshold=asymmetry_threshold,
        cooccurrence_threshold=cooccurrence_threshold,
        normal_threshold=normal_threshold,
    )


def _state(
    n_frames: int,
    active_threshold: float,
    active_mean_left: np.ndarray,
    active_mean_right: np.ndarray,
    cooccurrence: dict[str, np.ndarray],
    normal: np.ndarray,
    *,
    asymmetry_threshold: float,
    cooccurrence_threshold: float,
    normal_threshold: float,
) -> SymptomState:
    """ΔAM, regions, difference matrices, mask and synkinesis pairs from AM and CM."""
    if not (math.isfinite(asymmetry_threshold) and asymmetry_threshold >= 0):
        raise ValueError(f"asymmetry threshold must be >= 0 (a sum of ΔAM), got {asymmetry_threshold}")
    if not 0 <= cooccurrence_threshold <= 1:
        raise ValueError(f"co-occurrence threshold must be in [0, 1], got {cooccurrence_threshold}")
    if not 0 <= normal_threshold <= 1:
        raise ValueError(f"normal co-occurrence threshold must be in [0, 1], got {normal_threshold}")
    normal = _check_normal(normal)

    delta_am = active_mean_left - active_mean_right  # eq. 6; NaN stays NaN
    regions = {}
    for name, aus in REGIONS.items():
        values = [float(delta_am[AU_INDEX[au]]) for au in aus if not math.isnan(delta_am[AU_INDEX[au]])]
        total = float(sum(values, 0.0))
        weaker: Side | None = None
        if total > asymmetry_threshold:
            weaker = "right"
        elif total < -asymmetry_threshold:
            weaker = "left"
        regions[name] = RegionAsymmetry(delta_am=total, weaker_side=weaker)

    difference = {key: cooccurrence[plus] - cooccurrence[minus] for key, (plus, minus) in DIFFERENCE_TERMS.items()}
    # Pairs that co-occur in healthy faces say nothing about synkinesis; nor does an AU with itself.
    mask = ~(normal > normal_threshold)
    np.fill_diagonal(mask, False)

    pairs = []
    for key in DIFFERENCE_KEYS:
        matrix = difference[key]
        with np.errstate(invalid="ignore"):
            strong = mask & (np.abs(matrix) > cooccurrence_threshold)  # NaN compares False
        for i, j in zip(*np.nonzero(strong)):
            pairs.append(SynkinesisPair(key, AU_NAMES[i], AU_NAMES[j], float(matrix[i, j])))

    return SymptomState(
        n_frames=int(n_frames),
        active_threshold=float(active_threshold),
        active_mean_left=_frozen(active_mean_left),
        active_mean_right=_frozen(active_mean_right),
        delta_am=_frozen(delta_am),
        regions=regions,
        cooccurrence={key: _frozen(m) for key, m in cooccurrence.items()},
        cooccurrence_difference={key: _frozen(m) for key, m in difference.items()},
        mask=_frozen(mask),
        synkinesis_pairs=pairs,
        asymmetry_threshold=float(asymmetry_threshold),
        cooccurrence_threshold=float(cooccurrence_threshold),
        normal_threshold=float(normal_threshold),
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator (broadcast over rows), NaN where the denominator is 0."""
    shape = np.broadcast_shapes(np.shape(numerator), np.shape(denominator))
    out = np.full(shape, np.nan)
    np.divide(numerator, denominator, out=out, where=np.broadcast_to(denominator > 0, shape))
    return out


def _check_keyframe(values: np.ndarray, side: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (N_AUS,):
        raise ValueError(f"{side} AU intensities must have shape ({N_AUS},) in AU order {_AU_ORDER}; got {array.shape}")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{side} AU intensities have a NaN or infinite value at {AU_NAMES[bad[0]]}: {array[bad[0]]}")
    return array


def _check_series(left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    checked = []
    for side, values in (("left", left), ("right", right)):
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 2 or array.shape[1] != N_AUS:
            raise ValueError(
                f"{side} AU series must have shape (n, {N_AUS}), one row per keyframe in AU order {_AU_ORDER}; "
                f"got {array.shape}"
            )
        bad = np.argwhere(~np.isfinite(array))
        if bad.size:
            row, col = bad[0]
            raise ValueError(
                f"{side} AU series has a NaN or infinite value at keyframe {row}, {AU_NAMES[col]}: {array[row, col]}"
            )
        checked.append(array)
    if len(checked[0]) != len(checked[1]):
        raise ValueError(f"left and right AU series differ in length: {len(checked[0])} vs {len(checked[1])} keyframes")
    return checked[0], checked[1]


def _check_normal(normal: np.ndarray) -> np.ndarray:
    array = np.asarray(normal, dtype=np.float64)
    if array.shape != (N_AUS, N_AUS):
        raise ValueError(
            f"normal co-occurrence matrix must be {N_AUS}x{N_AUS} in AU order {_AU_ORDER}; got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("normal co-occurrence matrix has NaN or infinite values")
    return array


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array)  # own copy, so freezing it cannot affect the caller's
    array.flags.writeable = False
    return array


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _by_au(values: np.ndarray) -> dict[str, float | None]:
    return {name: _number(v) for name, v in zip(AU_NAMES, values)}


def _nested(matrix: np.ndarray) -> list[list[float | None]]:
    return [[_number(v) for v in row] for row in matrix]
