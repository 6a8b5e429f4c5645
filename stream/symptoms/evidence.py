"""Findings a clinician can believe: each verdict carries its evidence or says why there is none.

The paper's rules (a dead band on ΔAM, |co-occurrence difference| > 0.3) were written for a trained
AU model on long clinical recordings. On a proxy estimator and a one-minute clip they name a weaker
side and dozens of synkinesis pairs on healthy faces (docs/validity.md has the figures), so the
default rules ("evidence") ask more of the data before stating a finding:

* **Muscle function, per region.** Only keyframes where the region moved on at least one side count.
  The asymmetry index ``(S_L - S_R) / (S_L + S_R)`` of the summed region activity over those
  keyframes is symmetric under a left-right swap (a mirrored video gives exactly the opposite
  number) and does not depend on how strongly a patient moves; ``1 - |index|`` over ``1 + |index|`` is
  the weaker side's movement in % of the stronger side's, the way clinicians grade. A moving-block
  bootstrap over time gives its interval. A weaker side is named only when the interval excludes 0
  and the index exceeds what healthy faces show (``healthy_asymmetry``, measured with
  ``python -m stream validate``); otherwise the verdict says which of "did not move", "not enough
  keyframes" or "no clear difference" holds.
* **Synkinesis, per pair.** The clinically graded patterns join the eye and the mouth (eye narrowing or
  closing while the mouth moves, the mouth corner moving while the eyes close), so pairs are taken
  between those regions only, minus pairs that co-occur in healthy faces (the normal matrix). A
  pair "AU_i on side S moves with AU_j" needs all of: the paper's cross-side difference
  ``P(i_S | j_S') - P(i_S' | j_S')`` above the threshold; the same contrast within each side
  ``P(i_S | j_S) - P(i_S' | j_S')`` above it too (a weak side scales both of its AUs down together and
  does not pass this, a synkinetic side does); enough co-activations in at least two separate
  episodes; and an exact McNemar test on the discordant keyframes that stays significant after a
  Holm correction over every pair tested. Every pair carries its counts.

Pure: arrays in, frozen dataclasses out; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

import numpy as np

from stream.aus import AU_INDEX, AU_NAMES, EYE_CLOSURE, REGIONS, SIDES, Side

RegionStatus = Literal["weaker_side", "no_clear_difference", "did_not_move", "not_enough_keyframes"]
RULES: Final[tuple[str, ...]] = ("evidence", "paper")

# Regions of the evidence rules: the paper's AUs plus eye closure in the eye region (the eye sign of
# facial palsy that matters most: the weak side's lids do not close).
EVIDENCE_REGIONS: Final[dict[str, tuple[str, ...]]] = {
    "eyebrows": REGIONS["eyebrows"],
    "eyes": (*REGIONS["eyes"], EYE_CLOSURE),
    "mouth": REGIONS["mouth"],
}
EVIDENCE_REGION_NAMES: Final[tuple[str, ...]] = tuple(EVIDENCE_REGIONS)
# Synkinesis groups: eye AUs and mouth AUs (oral-ocular and ocular-oral synkinesis). Lips apart, jaw
# drop and chin raise move midline structures: they can trigger a synkinesis but cannot be the
# one-sided movement itself (their per-side values differ only by measurement error).
EYE_SIGNALS: Final[tuple[str, ...]] = ("AU5", "AU6", EYE_CLOSURE, "eyes")
MOUTH_SIGNALS: Final[tuple[str, ...]] = ("AU9", "AU12", "AU15", "AU20", "AU17", "AU25", "AU26", "mouth")
MIDLINE_SIGNALS: Final[tuple[str, ...]] = ("AU17", "AU25", "AU26")


@dataclass(frozen=True)
class EvidenceRules:
    """Thresholds of the evidence rules; defaults measured with the validation harness (docs/validity.md)."""

    # Running median over this many keyframes before any decision: one keyframe's flow error (a blink
    # half-caught, a glasses reflection) must not count as a movement or a co-activation.
    smooth: int = 3
    min_keyframes: int = 10  # fewer keyframes in the whole analysis: no verdict at all
    min_moving: int = 10  # fewer keyframes where the region moved: "did not move"
    move_threshold: float = 1.5  # region activity (movement or AU sum, stronger side) that counts as moving
    healthy_asymmetry: float = 0.4  # |asymmetry index| healthy faces stay within (weaker side >= 43 %)
    confidence: float = 0.95
    n_boot: int = 1000
    seed: int = 0
    active_threshold: float = 0.5  # an AU is active above this (paper eq. 4-5)
    cooccurrence_threshold: float = 0.3  # minimum co-occurrence difference (paper eq. 8-9)
    normal_threshold: float = 0.5  # pairs co-occurring above this in normal faces are not tested
    min_cooccurrences: int = 4  # keyframes with both AUs active
    min_episodes: int = 2  # separate runs of movement (a region) or of co-activation (a synkinesis pair)
    # Movement pairs: how much more one side moves than the other with the trigger than without it,
    # in units of the region's large movement (its 90th percentile): 0.3 is a third of it.
    synkinesis_shift: float = 0.3
    # A trigger is a deliberate movement (a broad smile, a firm eye closure), as in the exercises where
    # clinicians grade synkinesis; talking and blinking stay below it.
    trigger_threshold: float = 2.5
    closure_trigger: float = 3.0  # eye closure (AU43, 0..5) on both sides that makes an eye-closure trigger
    alpha: float = 0.05  # family-wise error over all pairs tested (Holm)


@dataclass(frozen=True)
class RegionFinding:
    region: str
    status: RegionStatus
    weaker_side: Side | None
    n_keyframes: int
    n_moving: int  # keyframes where the region moved on at least one side
    asymmetry: float | None  # (S_L - S_R) / (S_L + S_R) over moving keyframes; > 0: the left moves more
    asymmetry_interval: tuple[float, float] | None
    weaker_percent: float | None  # the weaker side's movement in % of the stronger side's
    weaker_percent_interval: tuple[float, float] | None
    delta_am: float | None  # mean left-minus-right region activity over moving keyframes (AU units)
    delta_am_interval: tuple[float, float] | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "status": self.status,
            "weaker_side": self.weaker_side,
            "n_keyframes": self.n_keyframes,
            "n_moving": self.n_moving,
            "asymmetry": _num(self.asymmetry),
            "asymmetry_interval": _pair(self.asymmetry_interval),
            "weaker_percent": _num(self.weaker_percent),
            "weaker_percent_interval": _pair(self.weaker_percent_interval),
            "delta_am": _num(self.delta_am),
            "delta_am_interval": _pair(self.delta_am_interval),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SynkinesisFinding:
    """AU ``au`` on ``side`` moves with ``trigger`` (active on the other side, or on both)."""

    side: Side
    au: str
    trigger: str
    n_trigger: int  # keyframes with the trigger active on the other side
    n_together: int  # ... of which ``au`` was active on ``side``
    n_other_side: int  # ... of which ``au`` was active on the other side
    episodes: int  # separate runs of keyframes where ``au`` on ``side`` and the trigger were active
    cross_difference: float  # P(au_side | trigger_other) - P(au_other | trigger_other), paper eq. 8-9
    same_side_difference: float  # P(au_side | trigger_side) - P(au_other | trigger_other)
    p_value: float  # one-sided, before the Holm correction (exact McNemar, or bootstrap for movement)
    p_adjusted: float
    # Movement pairs: this side's share of the co-moving region's movement (0..1, 0.5 = even) in the
    # keyframes where the trigger moves, and where it is still; None for AU pairs.
    share_with_trigger: float | None = None
    share_without_trigger: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "au": self.au,
            "trigger": self.trigger,
            "n_trigger": self.n_trigger,
            "n_together": self.n_together,
            "n_other_side": self.n_other_side,
            "episodes": self.episodes,
            "cross_difference": _num(self.cross_difference),
            "same_side_difference": _num(self.same_side_difference),
            "share_with_trigger": _num(self.share_with_trigger),
            "share_without_trigger": _num(self.share_without_trigger),
            "p_value": _num(self.p_value),
            "p_adjusted": _num(self.p_adjusted),
        }


@dataclass(frozen=True)
class Findings:
    rules: str
    regions: dict[str, RegionFinding]
    synkinesis: list[SynkinesisFinding]
    n_pairs_tested: int
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def synkinesis_detected(self) -> bool:
        return bool(self.synkinesis)

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": self.rules,
            "regions": {name: r.to_json() for name, r in self.regions.items()},
            "synkinesis": {
                "detected": self.synkinesis_detected,
                "n_pairs_tested": self.n_pairs_tested,
                "pairs": [s.to_json() for s in self.synkinesis],
            },
            "warnings": list(self.warnings),
            "settings": dict(self.settings),
        }


def signals(
    left: np.ndarray, right: np.ndarray, closure: np.ndarray | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per side, name -> (n,) series: the 12 AUs and, when measured, eye closure (``closure``: (n, 2) left, right)."""
    out: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] = ({}, {})
    for s, values in enumerate((np.asarray(left, float), np.asarray(right, float))):
        for name in AU_NAMES:
            out[s][name] = values[:, AU_INDEX[name]]
        if closure is not None:
            out[s][EYE_CLOSURE] = np.asarray(closure, float)[:, s]
    return out


def assess(
    left: np.ndarray,
    right: np.ndarray,
    normal: np.ndarray,
    *,
    closure: np.ndarray | None = None,
    movement: np.ndarray | None = None,
    context: np.ndarray | None = None,
    rules: EvidenceRules | None = None,
) -> Findings:
    """Region verdicts and synkinesis findings under the evidence rules.

    ``left``/``right``: (n, 12) AU series in ``AU_NAMES`` order; ``closure``: (n, 2) eye closure
    (left, right) on the same 0..5 scale, or None where not measured; ``movement``: (n, 2, 3)
    direction-free movement of brows, eyes and mouth (left, right), which the region verdicts use
    instead of the AU sums when the estimator measures it; ``normal``: 12x12 normal
    co-occurrence matrix; ``context``: (n,) exercise name per keyframe (None/"" unknown), which
    restricts eye-given-mouth pairs to mouth exercises and mouth-given-eye pairs to eye closures.
    """
    rules = rules or EvidenceRules()
    left = running_median(np.asarray(left, float).reshape(-1, len(AU_NAMES)), rules.smooth)
    right = running_median(np.asarray(right, float).reshape(-1, len(AU_NAMES)), rules.smooth)
    n = len(left)
    raw_closure = raw_movement = None
    if closure is not None:
        raw_closure = np.asarray(closure, float).reshape(n, 2)
        closure = running_median(raw_closure, rules.smooth)
    sig_l, sig_r = signals(left, right, closure)
    if movement is not None:
        raw_movement = np.asarray(movement, float).reshape(n, 2, len(EVIDENCE_REGIONS))
        movement = running_median(raw_movement, rules.smooth)
        regions = {}
        for k, name in enumerate(EVIDENCE_REGIONS):
            rows = _voluntary_rows(movement, k, rules)
            note = "" if rows.all() else (" while the mouth was still" if k == 1 else " while the eyes were still")
            regions[name] = _region_from(name, movement[rows, 0, k], movement[rows, 1, k], n, rules, note, rows)
    else:
        regions = {name: _region(name, aus, sig_l, sig_r, n, rules) for name, aus in EVIDENCE_REGIONS.items()}
    synkinesis: list[SynkinesisFinding] = []
    tested = 0
    if n >= rules.min_keyframes and raw_movement is not None:
        # Unsmoothed: a held eye closure may span only two or three keyframes (the keyframe filter keeps
        # changes, not stillness), which a running median would erase; the effect is a mean over the
        # trigger keyframes, so one keyframe's error weighs little there.
        synkinesis, tested = _movement_synkinesis(raw_movement, context, rules, regions, raw_closure)
    elif n >= rules.min_keyframes:
        synkinesis, tested = _synkinesis(sig_l, sig_r, normal, context, rules, rules.active_threshold, regions)
    settings = {k: getattr(rules, k) for k in rules.__dataclass_fields__}
    return Findings("evidence", regions, synkinesis, tested, [], settings)


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Centred running median along axis 0 (keyframes), the ends using what exists."""
    n = len(values)
    if width <= 1 or n < 3:
        return values
    half = width // 2
    padded = np.concatenate([values[:1].repeat(half, axis=0), values, values[-1:].repeat(half, axis=0)])
    windows = np.stack([padded[k : k + n] for k in range(2 * half + 1)])
    return np.median(windows, axis=0)


# --------------------------------------------------------------------------------------------
# muscle function


def _region(
    name: str,
    aus: tuple[str, ...],
    sig_l: dict[str, np.ndarray],
    sig_r: dict[str, np.ndarray],
    n: int,
    rules: EvidenceRules,
) -> RegionFinding:
    present = [au for au in aus if au in sig_l]
    if n == 0 or not present:
        a_l = a_r = np.zeros(n)
    else:
        a_l = np.sum([sig_l[au] for au in present], axis=0)
        a_r = np.sum([sig_r[au] for au in present], axis=0)
    return _region_from(name, a_l, a_r, n, rules)


# The region whose stillness makes a keyframe's movement of eyes or mouth voluntary: synkinetic
# movement of one comes with the movement of the other, and would otherwise pose as strength.
_OTHER_REGION: Final[dict[int, int]] = {1: 2, 2: 1}


def _voluntary_rows(movement: np.ndarray, k: int, rules: EvidenceRules) -> np.ndarray:
    """Keyframes on which region ``k``'s verdict rests: for the eyes, those where the mouth is still, and
    the other way round; every keyframe for the brows."""
    n = len(movement)
    if k not in _OTHER_REGION:
        return np.ones(n, dtype=bool)
    return movement[:, :, _OTHER_REGION[k]].max(axis=1) <= rules.move_threshold


def _region_from(
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
    moving = np.maximum(a_l, a_r) > rules.move_threshold
    n_moving = int(moving.sum())
    if rows is None:
        episodes = _episodes(moving)
    else:
        in_time = np.zeros(n, dtype=bool)
        in_time[np.flatnonzero(rows)[moving]] = True
        episodes = _episodes(in_time)

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
    idx = _block_indices(len(x_l), n_boot, np.random.default_rng(seed))
    return x_l[idx].sum(axis=1), x_r[idx].sum(axis=1)


def _block_indices(m: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, m) indices of moving-block resamples of a series of m, blocks of about sqrt(m)."""
    block = max(1, min(m, int(math.ceil(math.sqrt(m)))))
    n_blocks = int(math.ceil(m / block))
    starts = rng.integers(0, m - block + 1, size=(n_boot, n_blocks))
    return (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :m]


def _holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone), in the order given."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, k in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[k]))
        adjusted[k] = running
    return adjusted


# --------------------------------------------------------------------------------------------
# synkinesis


_EYE_CONTEXT = ("eye", "closure", "blink")
_MOUTH_CONTEXT = ("smile", "pucker", "snarl", "mouth", "lip")


def _context_masks(context: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Keyframes that may trigger (eye-given-mouth, mouth-given-eye): all, or the matching exercises."""
    everything = np.ones(n, dtype=bool)
    if context is None:
        return everything, everything
    names = [str(c or "").lower() for c in context]
    if not any(names):
        return everything, everything
    mouth = np.array([any(k in c for k in _MOUTH_CONTEXT) for c in names], dtype=bool)
    eyes = np.array([any(k in c for k in _EYE_CONTEXT) for c in names], dtype=bool)
    return mouth, eyes


def _episodes(mask: np.ndarray) -> int:
    if not mask.any():
        return 0
    m = mask.astype(np.int8)
    return int(m[0] + np.count_nonzero(np.diff(m) == 1))


def _normal_value(normal: np.ndarray, row: str, col: str) -> float:
    if row in AU_INDEX and col in AU_INDEX:
        return float(normal[AU_INDEX[row], AU_INDEX[col]])
    return 0.0  # eye closure is not in DISFA's matrix: it does not co-occur with mouth AUs in healthy faces


def _synkinesis(
    sig_l: dict[str, np.ndarray],
    sig_r: dict[str, np.ndarray],
    normal: np.ndarray,
    context: np.ndarray | None,
    rules: EvidenceRules,
    threshold: float,
    regions: dict[str, RegionFinding],
) -> tuple[list[SynkinesisFinding], int]:
    active = {
        "left": {k: v > threshold for k, v in sig_l.items()},
        "right": {k: v > threshold for k, v in sig_r.items()},
    }
    n = len(next(iter(sig_l.values())))
    names = set(sig_l)
    pairs = [(i, j) for i in EYE_SIGNALS for j in MOUTH_SIGNALS] + [(i, j) for i in MOUTH_SIGNALS for j in EYE_SIGNALS]
    mouth_triggers, eye_triggers = _context_masks(context, n)
    candidates = []
    for au, trigger in pairs:
        if au not in names or trigger not in names or au in MIDLINE_SIGNALS:
            continue
        region = "eyes" if au in EYE_SIGNALS else "mouth"
        if _normal_value(normal, au, trigger) > rules.normal_threshold:
            continue
        in_context = eye_triggers if trigger in EYE_SIGNALS else mouth_triggers
        for side in SIDES:
            other: Side = "left" if side == "right" else "right"
            if regions[region].weaker_side == other:
                # The other side's region is weaker: more movement on this side is its weakness,
                # not a synkinesis of this side, and the counts cannot tell the two apart.
                continue
            given_other = active[other][trigger] & in_context
            given_same = active[side][trigger] & in_context
            n_trigger = int(given_other.sum())
            together = given_other & active[side][au]
            n_together = int(together.sum())
            if n_trigger == 0 or n_together < rules.min_cooccurrences or given_same.sum() == 0:
                continue
            n_other = int((given_other & active[other][au]).sum())
            cross = (n_together - n_other) / n_trigger
            same = float(active[side][au][given_same].mean() - active[other][au][given_other].mean())
            b = int((given_other & active[side][au] & ~active[other][au]).sum())
            c = int((given_other & ~active[side][au] & active[other][au]).sum())
            p = _binomial_tail(b, b + c)
            episodes = _episodes(together | (active[side][trigger] & active[side][au] & in_context))
            candidates.append((side, au, trigger, n_trigger, n_together, n_other, episodes, cross, same, p))
    # Holm over every pair that had the support to be tested.
    m = len(candidates)
    adjusted = _holm([c[9] for c in candidates])
    findings = []
    for k, (side, au, trigger, n_trigger, n_together, n_other, episodes, cross, same, p) in enumerate(candidates):
        if (
            cross > rules.cooccurrence_threshold
            and same > rules.cooccurrence_threshold
            and episodes >= rules.min_episodes
            and adjusted[k] < rules.alpha
        ):
            findings.append(
                SynkinesisFinding(
                    side,
                    au,
                    trigger,
                    n_trigger,
                    n_together,
                    n_other,
                    episodes,
                    float(cross),
                    float(same),
                    float(p),
                    float(adjusted[k]),
                )
            )
    findings.sort(key=lambda f: (f.p_adjusted, f.side, f.au, f.trigger))
    return findings, m


def _index(x_l: np.ndarray, x_r: np.ndarray) -> np.ndarray:
    """Asymmetry index of summed activity along the last axis; 0 where nothing moved."""
    sl, sr = x_l.sum(axis=-1), x_r.sum(axis=-1)
    total = sl + sr
    return np.where(total > 0, (sl - sr) / np.where(total > 0, total, 1.0), 0.0)


def _movement_synkinesis(
    movement: np.ndarray,
    context: np.ndarray | None,
    rules: EvidenceRules,
    regions: dict[str, RegionFinding],
    closure: np.ndarray | None = None,
) -> tuple[list[SynkinesisFinding], int]:
    """Synkinesis from direction-free movement: does one side take a larger share of a region's movement
    when the other region moves than when it is still?

    A weak side is weak with or without the trigger, so its share does not shift; a healthy face
    keeps even shares; a synkinetic side gains its share exactly when the trigger moves. The shift
    of the asymmetry index (trigger keyframes minus still keyframes) is bootstrapped by blocks over
    time in both sets; the p-values are Holm-corrected over the pairs tested.
    """
    n = len(movement)
    mouth_ctx, eye_ctx = _context_masks(context, n)
    rng = np.random.default_rng(rules.seed)
    candidates = []
    for k, trig_k, name, trigger, ctx in ((1, 2, "eyes", "mouth", mouth_ctx), (2, 1, "mouth", "eyes", eye_ctx)):
        trigger_level = movement[:, :, trig_k].max(axis=1)
        if trigger == "eyes" and closure is not None:
            # the trigger is the eyes *closing* on both sides, as asked in the eye-closure exercises;
            # the partial narrowing of a broad smile (healthy, and bilateral) is not one
            with_t = (closure.min(axis=1) > rules.closure_trigger) & ctx
        else:
            with_t = (trigger_level > rules.trigger_threshold) & ctx
        without_t = trigger_level <= rules.move_threshold
        if int(with_t.sum()) < rules.min_cooccurrences:
            continue
        x_l, x_r = movement[:, 0, k], movement[:, 1, k]
        # Effect: how much more one side moves than the other while the trigger moves, compared with
        # while it is still, in units of the region's own large movement (the 90th percentile of the
        # stronger side), so that it reads the same for a small and a large face movement.
        scale = max(float(np.percentile(np.maximum(x_l, x_r), 90)), 2.0 * rules.move_threshold)
        diff = (x_l - x_r) / scale
        d_with = float(diff[with_t].mean())
        boot_with = diff[with_t][_block_indices(int(with_t.sum()), rules.n_boot, rng)].mean(axis=1)
        moving_without = int((np.maximum(x_l, x_r)[without_t] > rules.move_threshold).sum())
        if moving_without >= rules.min_moving:
            d_without = float(diff[without_t].mean())
            boot_without = diff[without_t][_block_indices(int(without_t.sum()), rules.n_boot, rng)].mean(axis=1)
        else:  # the region hardly moves on its own: compare with no difference
            d_without, boot_without = 0.0, np.zeros(rules.n_boot)
        shift, boot_shift = d_with - d_without, boot_with - boot_without
        a_with = float(_index(x_l[with_t], x_r[with_t]))
        a_without = float(_index(x_l[without_t], x_r[without_t])) if without_t.any() else 0.0
        side_signs: tuple[tuple[Side, float], ...] = (("left", 1.0), ("right", -1.0))
        for side, sign in side_signs:
            other: Side = "right" if side == "left" else "left"
            if regions[name].weaker_side == other:
                continue  # more movement on this side is the other side's weakness
            x_s, x_o = (x_l, x_r) if side == "left" else (x_r, x_l)
            together = with_t & (x_s > rules.move_threshold)
            p = max(float(np.mean(sign * boot_shift <= 0.0)), 1.0 / (rules.n_boot + 1))
            candidates.append(
                SynkinesisFinding(
                    side,
                    name,
                    trigger,
                    int(with_t.sum()),
                    int(together.sum()),
                    int((with_t & (x_o > rules.move_threshold)).sum()),
                    _episodes(together),
                    float(sign * shift),
                    float("nan"),
                    p,
                    p,
                    share_with_trigger=(1.0 + sign * a_with) / 2.0,
                    share_without_trigger=(1.0 + sign * a_without) / 2.0,
                )
            )
    m = len(candidates)
    adjusted = _holm([c.p_value for c in candidates])
    findings = []
    for i, c in enumerate(candidates):
        if (
            c.cross_difference > rules.synkinesis_shift
            and adjusted[i] < rules.alpha
            and c.n_together >= rules.min_cooccurrences
            and c.episodes >= rules.min_episodes
        ):
            findings.append(replace(c, p_adjusted=float(adjusted[i])))
    findings.sort(key=lambda f: (f.p_adjusted, f.side, f.au))
    return findings, m


def _binomial_tail(b: int, n: int) -> float:
    """P(X >= b) for X ~ Binomial(n, 1/2): exact one-sided McNemar on discordant keyframes."""
    if n == 0:
        return 1.0
    total = sum(math.comb(n, k) for k in range(b, n + 1))
    return min(1.0, total / (1 << n))  # exact integers: 2.0**n overflows a float from n = 1024


# --------------------------------------------------------------------------------------------
# warnings about the material itself


def material_warnings(counts: dict[str, Any], n_keyframes: int, rules: EvidenceRules | None = None) -> list[str]:
    """What a clinician must know before reading any verdict: missing face, too little data, head pose."""
    rules = rules or EvidenceRules()
    out = []
    frames = int(counts.get("frames") or 0)
    without = int(counts.get("frames_without_face") or 0)
    gated = int(counts.get("frames_pose_gated") or 0)
    duration = counts.get("duration_s")
    if frames and without / frames >= 0.2:
        out.append(
            f"no face in {without} of {frames} frames ({100 * without / frames:.0f} %): "
            "findings rest on the rest of the video only"
        )
    if frames <= 1 or (duration is not None and float(duration) < 1.0):
        out.append("a still image or a clip under 1 s cannot show movement: no verdict is possible")
    elif n_keyframes < rules.min_keyframes:
        out.append(
            f"only {n_keyframes} keyframes (at least {rules.min_keyframes} are needed for a verdict): "
            "record longer, with the guided movements"
        )
    face_frames = frames - without
    if face_frames and gated / face_frames >= 0.2:
        out.append(
            f"head turned away from the camera, or from the pose of its neutral reference, in {gated} of "
            f"{face_frames} face frames ({100 * gated / face_frames:.0f} %); those frames were not measured: "
            "ask the patient to keep facing the camera"
        )
    return out


# --------------------------------------------------------------------------------------------
# the paper's rules, as findings


def paper_findings(state: Any) -> Findings:
    """The paper's verdicts (dead band on ΔAM, |difference| > threshold) in the findings shape."""
    regions = {}
    for name, region in state.regions.items():
        status: RegionStatus = "weaker_side" if region.weaker_side else "no_clear_difference"
        reason = (
            f"|ΔAM| = {abs(region.delta_am):.2f} "
            f"{'>' if region.weaker_side else '<='} {state.asymmetry_threshold} (paper's dead band)"
        )
        regions[name] = RegionFinding(
            name,
            status,
            region.weaker_side,
            state.n_frames,
            state.n_frames,
            None,
            None,
            None,
            None,
            region.delta_am,
            None,
            reason,
        )
    pairs = []
    for pair in state.synkinesis_pairs:
        side: Side = "right" if pair.matrix.startswith("right") else "left"
        pairs.append(
            SynkinesisFinding(
                side, pair.row, pair.col, 0, 0, 0, 0, pair.value, float("nan"), float("nan"), float("nan")
            )
        )
    return Findings(
        "paper",
        regions,
        pairs,
        int(np.asarray(state.mask).sum()) * 2,
        [],
        {
            "asymmetry_threshold": state.asymmetry_threshold,
            "cooccurrence_threshold": state.cooccurrence_threshold,
            "normal_threshold": state.normal_threshold,
        },
    )


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _pair(values: tuple[float, float] | None) -> list[float | None] | None:
    return None if values is None else [_num(values[0]), _num(values[1])]
