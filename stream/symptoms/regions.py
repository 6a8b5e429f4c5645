"""Muscle function per region: is one side weaker, and how sure is that?

Only keyframes where the region moved on at least one side count. The asymmetry index
``(S_L - S_R) / (S_L + S_R)`` of the summed region activity over those keyframes is symmetric under
a left-right swap and does not depend on how strongly a patient moves; ``(1 - |index|) / (1 + |index|)``
is the weaker side's movement in % of the stronger side's, the way clinicians grade. A moving-block
bootstrap over time gives its interval. A weaker side is named only when the interval excludes 0 and
the index exceeds what healthy faces show; otherwise the verdict says which of "did not move", "not
enough keyframes" or "no clear difference" holds. ``evidence.assess`` calls these per region.

Pure: arrays in, a frozen ``RegionFinding`` out; no I/O.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from stream.aus import Side
from stream.symptoms.findings import RegionFinding, RegionStatus
from stream.symptoms.rules import EvidenceRules
from stream.symptoms.series import block_indices, count_episodes


def region_from_aus(
    name: str,
    aus: tuple[str, ...],
    sig_l: dict[str, np.ndarray],
    sig_r: dict[str, np.ndarray],
    n: int,
    rules: EvidenceRules,
) -> RegionFinding:
    """The verdict from the summed AU intensities of ``aus`` per side (where movement is not measured)."""
    present = [au for au in aus if au in sig_l]
    if n == 0 or not present:
        a_l = a_r = np.zeros(n)
    else:
        a_l = np.sum([sig_l[au] for au in present], axis=0)
        a_r = np.sum([sig_r[au] for au in present], axis=0)
    return region_verdict(name, a_l, a_r, n, rules)


# The region whose stillness makes a keyframe's movement of eyes or mouth voluntary: synkinetic
# movement of one comes with the movement of the other, and would otherwise pose as strength.
_OTHER_REGION: Final[dict[int, int]] = {1: 2, 2: 1}


def moved(a_l: np.ndarray, a_r: np.ndarray, rules: EvidenceRules) -> np.ndarray:
    """Keyframes where a region moved: its activity above the move threshold on at least one side."""
    return np.maximum(a_l, a_r) > rules.move_threshold


def voluntary_rows(movement: np.ndarray, k: int, rules: EvidenceRules) -> np.ndarray:
    """Keyframes on which region ``k``'s verdict rests: for the eyes, those where the mouth is still, and
    the other way round; every keyframe for the brows."""
    n = len(movement)
    if k not in _OTHER_REGION:
        return np.ones(n, dtype=bool)
    other = _OTHER_REGION[k]
    return ~moved(movement[:, 0, other], movement[:, 1, other], rules)


def region_verdict(
    name: str,
    a_l: np.ndarray,
    a_r: np.ndarray,
    n: int,
    rules: EvidenceRules,
    note: str = "",
    rows: np.ndarray | None = None,
) -> RegionFinding:
    """The verdict from one activity series per side (time-ordered, one value per keyframe).

    ``n`` counts every keyframe of the analysis; the series may be the subset ``rows`` of them
    (``note`` says which).
    """
    moving = moved(a_l, a_r, rules)
    n_moving = int(moving.sum())
    if rows is None:
        episodes = count_episodes(moving)
    else:
        in_time = np.zeros(n, dtype=bool)
        in_time[np.flatnonzero(rows)[moving]] = True
        episodes = count_episodes(in_time)

    def empty(status: RegionStatus, reason: str) -> RegionFinding:
        return RegionFinding(name, status, None, n, n_moving, None, None, None, None, None, None, reason)

    if n < rules.min_keyframes:
        return empty(
            "not_enough_keyframes",
            f"{n} keyframe{'' if n == 1 else 's'} in all; at least {rules.min_keyframes} are needed",
        )
    if n_moving < rules.min_moving:
        return empty(
            "did_not_move", f"moved in {n_moving} of {n} keyframes{note}; at least {rules.min_moving} are needed"
        )
    if episodes < rules.min_episodes:
        # One stretch of movement (a sentence spoken, one long expression) is one observation however
        # many keyframes it spans; a side is graded on a movement seen at least twice.
        return empty(
            "not_enough_keyframes",
            f"moved in one stretch only ({n_moving} keyframes{note}); "
            f"a verdict needs the movement at least {rules.min_episodes} times",
        )
    x_l, x_r = a_l[moving], a_r[moving]
    sl, sr = float(x_l.sum()), float(x_r.sum())
    index = (sl - sr) / (sl + sr)
    delta = float(np.mean(x_l - x_r))
    boot_l, boot_r = _block_bootstrap_sums(x_l, x_r, rules.n_boot, rules.seed)
    boot_index = (boot_l - boot_r) / np.maximum(boot_l + boot_r, 1e-12)
    lo_q, hi_q = (1 - rules.confidence) / 2, 1 - (1 - rules.confidence) / 2
    # symmetric quantiles of a sign-symmetric bootstrap: swapping the sides negates the interval exactly
    lo, hi = float(np.quantile(boot_index, lo_q)), float(np.quantile(boot_index, hi_q))
    boot_delta = (boot_l - boot_r) / len(x_l)
    d_lo, d_hi = float(np.quantile(boot_delta, lo_q)), float(np.quantile(boot_delta, hi_q))
    percent = _weaker_percent(index)
    if lo > 0 or hi < 0:
        far = min(abs(lo), abs(hi))
        p_int = (_weaker_percent(max(abs(lo), abs(hi))), _weaker_percent(far))
    else:
        p_int = (_weaker_percent(max(abs(lo), abs(hi))), 100.0)
    excludes_zero = lo > 0 or hi < 0
    if excludes_zero and abs(index) > rules.healthy_asymmetry:
        weaker: Side = "right" if index > 0 else "left"
        reason = (
            f"the {weaker} side moved {percent:.0f} % as much as the other "
            f"({rules.confidence:.0%} interval {p_int[0]:.0f}-{p_int[1]:.0f} %) over {n_moving} moving keyframes{note}"
        )
        return RegionFinding(
            name, "weaker_side", weaker, n, n_moving, index, (lo, hi), percent, p_int, delta, (d_lo, d_hi), reason
        )
    if not excludes_zero:
        reason = f"the interval of the asymmetry ({lo:+.2f} to {hi:+.2f}) includes no difference"
    else:
        reason = (
            f"the difference ({percent:.0f} %) is within what healthy faces show "
            f"(weaker side at {_weaker_percent(rules.healthy_asymmetry):.0f} % or more)"
        )
    return RegionFinding(
        name, "no_clear_difference", None, n, n_moving, index, (lo, hi), percent, p_int, delta, (d_lo, d_hi), reason
    )


def _weaker_percent(index: float) -> float:
    a = min(abs(index), 1.0)
    return 100.0 * (1.0 - a) / (1.0 + a)


def _block_bootstrap_sums(x_l: np.ndarray, x_r: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Moving-block bootstrap of the two sums over a time-ordered series (keeps autocorrelation)."""
    idx = block_indices(len(x_l), n_boot, np.random.default_rng(seed))
    return x_l[idx].sum(axis=1), x_r[idx].sum(axis=1)
