"""Synkinesis per pair: does one side's eye or mouth move with the other region, beyond chance and
beyond what healthy faces do?

The clinically graded patterns join the eye and the mouth, so pairs are taken between those regions
only, minus pairs that co-occur in healthy faces (the normal matrix). From AU series a pair needs the
paper's cross-side difference and the same contrast within each side above the threshold, enough
co-activations in at least two episodes, and an exact McNemar test that stays significant after a
Holm correction over every pair tested. From direction-free movement a side must take a larger share
of a region's movement while the other region moves than while it is still (bootstrapped by blocks
over time), and, where the eye closure is measured, an eye that closes while the other stays open
must do so with the mouth more often than the other eye does (an exact McNemar test on those
one-sided closures, ``AU43`` pairs); all Holm-corrected together. A side next to a weaker region is
not tested: its extra movement is the other side's weakness. ``evidence.assess`` chooses between
AU series and movement.

Pure: arrays in, frozen ``SynkinesisFinding`` lists out; no I/O.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from stream.aus import AU_INDEX, EYE_CLOSURE, SIDES, Side
from stream.symptoms.findings import RegionFinding, SynkinesisFinding
from stream.symptoms.regions import moved
from stream.symptoms.rules import EYE_SIGNALS, MIDLINE_SIGNALS, MOUTH_SIGNALS, EvidenceRules
from stream.symptoms.series import block_indices, count_episodes

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


def _normal_value(normal: np.ndarray, row: str, col: str) -> float:
    if row in AU_INDEX and col in AU_INDEX:
        return float(normal[AU_INDEX[row], AU_INDEX[col]])
    return 0.0  # eye closure is not in DISFA's matrix: it does not co-occur with mouth AUs in healthy faces


def au_synkinesis(
    sig_l: dict[str, np.ndarray],
    sig_r: dict[str, np.ndarray],
    normal: np.ndarray,
    context: np.ndarray | None,
    rules: EvidenceRules,
    threshold: float,
    regions: dict[str, RegionFinding],
) -> tuple[list[SynkinesisFinding], int]:
    """Synkinesis pairs from AU series active above ``threshold``, and how many pairs were tested."""
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
            episodes = count_episodes(together | (active[side][trigger] & active[side][au] & in_context))
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


def movement_synkinesis(
    movement: np.ndarray,
    context: np.ndarray | None,
    rules: EvidenceRules,
    regions: dict[str, RegionFinding],
    closure: np.ndarray | None = None,
    corner_lift: np.ndarray | None = None,
) -> tuple[list[SynkinesisFinding], int]:
    """Synkinesis from direction-free movement: does one side take a larger share of a region's movement
    when the other region moves than when it is still?

    A weak side is weak with or without the trigger, so its share does not shift; a healthy face
    keeps even shares; a synkinetic side gains its share exactly when the trigger moves. The shift
    of the asymmetry index (trigger keyframes minus still keyframes) is bootstrapped by blocks over
    time in both sets. With ``closure`` (n, 2), each eye closing alone with the mouth is tested too
    (``_closure_candidates``): an eye narrowed in most keyframes of a talking patient leaves few still
    keyframes to compare with, but its closures with the mouth still have a side. The p-values are
    Holm-corrected over every pair tested.

    With ``corner_lift`` (n, 2: each side's mouth corner drawn up and out, AU12, unsmoothed), the mouth
    given the eyes' closure is read on it instead of the mouth's direction-free movement: the graded
    sign is the corner rising while the eyes close, and a talking mouth moves in every direction, which
    the direction-free movement adds up and the lift does not (docs/validity.md, item 13). Its effect
    must exceed ``corner_shift``. A constant tilt of the lift between the sides (a residual roll) is
    the same with and without the trigger and cancels in the shift.
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
        if name == "eyes" and closure is not None:
            # one eye closing alone with the mouth; the shift of the shares below tests a graded narrowing
            candidates.extend(_closure_candidates(closure, with_t, rules, regions))
        if int(with_t.sum()) < rules.min_cooccurrences:
            continue
        if name == "mouth" and corner_lift is not None:
            x_l, x_r = corner_lift[:, 0], corner_lift[:, 1]
        else:
            x_l, x_r = movement[:, 0, k], movement[:, 1, k]
        # Effect: how much more one side moves than the other while the trigger moves, compared with
        # while it is still, in units of the region's own large movement (the 90th percentile of the
        # stronger side), so that it reads the same for a small and a large face movement.
        scale = max(float(np.percentile(np.maximum(x_l, x_r), 90)), 2.0 * rules.move_threshold)
        diff = (x_l - x_r) / scale
        d_with = float(diff[with_t].mean())
        boot_with = diff[with_t][block_indices(int(with_t.sum()), rules.n_boot, rng)].mean(axis=1)
        moving_without = int(moved(x_l, x_r, rules)[without_t].sum())
        if moving_without >= rules.min_moving:
            d_without = float(diff[without_t].mean())
            boot_without = diff[without_t][block_indices(int(without_t.sum()), rules.n_boot, rng)].mean(axis=1)
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
                    count_episodes(together),
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
        # closure pairs: the discordant count is the effect; movement pairs: the shift of the shares
        shift = rules.corner_shift if c.au == "mouth" and corner_lift is not None else rules.synkinesis_shift
        effect = c.au == EYE_CLOSURE or c.cross_difference > shift
        if (
            effect
            and adjusted[i] < rules.alpha
            and c.n_together >= rules.min_cooccurrences
            and c.episodes >= rules.min_episodes
        ):
            findings.append(replace(c, p_adjusted=float(adjusted[i])))
    findings.sort(key=lambda f: (f.p_adjusted, f.side, f.au))
    return findings, m


def _closure_candidates(
    closure: np.ndarray, with_t: np.ndarray, rules: EvidenceRules, regions: dict[str, RegionFinding]
) -> list[SynkinesisFinding]:
    """Eye closure with the mouth, per side: while the mouth moves, does this eye close while the other
    stays open more often than the reverse?

    A healthy face blinks and narrows both eyes together, so one eye closing alone is rare and has no
    side; a synkinetic eye closes alone with the mouth. An exact McNemar test on those one-sided
    closures (this eye alone against the other alone) gives the p-value. A weak eye's fellow also
    closes alone, in every blink, whatever the mouth does: so a side is tested only where the other
    eye is not the weaker one and closes itself (``eye_closed``) in ``min_episodes`` separate blinks
    (a frozen or much weakened eye never does).
    """
    out = []
    for s, side in enumerate(SIDES):
        other = SIDES[1 - s]
        if regions["eyes"].weaker_side == other:
            continue
        closed_s, closed_o = closure[:, s] >= rules.eye_closed, closure[:, 1 - s] >= rules.eye_closed
        if count_episodes(closed_o) < rules.min_episodes:
            continue  # the other eye's lids do not work: this eye closing alone is that weakness
        alone = with_t & closed_s & (closure[:, 1 - s] <= rules.eye_open)
        reverse = with_t & closed_o & (closure[:, s] <= rules.eye_open)
        b, c = int(alone.sum()), int(reverse.sum())
        n_t = int(with_t.sum())
        p = _binomial_tail(b, b + c)
        out.append(
            SynkinesisFinding(
                side, EYE_CLOSURE, "mouth", n_t, b, c, count_episodes(alone), (b - c) / max(n_t, 1), float("nan"), p, p
            )
        )
    return out


def _binomial_tail(b: int, n: int) -> float:
    """P(X >= b) for X ~ Binomial(n, 1/2): exact one-sided McNemar on discordant keyframes."""
    if n == 0:
        return 1.0
    total = sum(math.comb(n, k) for k in range(b, n + 1))
    return min(1.0, total / (1 << n))  # exact integers: 2.0**n overflows a float from n = 1024


def _holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone), in the order given."""
    m = len(p_values)
    adjusted = [1.0] * m
    running = 0.0
    for rank, k in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        running = max(running, min(1.0, (m - rank) * p_values[k]))
        adjusted[k] = running
    return adjusted
