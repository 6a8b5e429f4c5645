"""The words of a finding, in one place: the command line and the report say the same sentence.

Takes the JSON shapes of ``Findings.to_json()`` (a region or a synkinesis pair), so that a stored
report reads the same as a fresh one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream.aus import EYE_CLOSURE

STATUS_WORDS = {
    "weaker_side": "{side} side weaker",
    "no_clear_difference": "no clear difference",
    "did_not_move": "did not move",
    "not_enough_keyframes": "not enough keyframes",
}


def region_words(region: Mapping[str, Any]) -> str:
    """e.g. "left side weaker: moved 31 % as much as the right (95 % interval 22-41 %), 48 of 120 keyframes moving"."""
    status = str(region.get("status", ""))
    head = STATUS_WORDS.get(status, status).format(side=region.get("weaker_side"))
    n, moving = region.get("n_keyframes"), region.get("n_moving")
    percent, interval = region.get("weaker_percent"), region.get("weaker_percent_interval")
    blinks = region.get("basis") == "blinks"
    parts = []
    if status == "weaker_side" and percent is not None:
        other = "right" if region.get("weaker_side") == "left" else "left"
        if blinks:
            text = f"closed {percent:.0f} % as far as the {other} in blinks"
        else:
            text = f"moved {percent:.0f} % as much as the {other}"
        if interval and None not in interval:
            text += f" (95 % interval {interval[0]:.0f}-{interval[1]:.0f} %)"
        parts.append(text)
    elif status == "no_clear_difference" and percent is not None:
        parts.append(f"weaker side at {percent:.0f} % of the stronger")
    elif region.get("reason"):
        parts.append(str(region["reason"]))
    if n is not None and moving is not None and status in ("weaker_side", "no_clear_difference"):
        parts.append(f"{moving} of {n} keyframes {'in blinks' if blinks else 'moving'}")
    return head + (": " + ", ".join(parts) if parts else "")


def pair_words(pair: Mapping[str, Any]) -> str:
    """e.g. "right AU43 with AU12: 9 of 11 keyframes (left side 0), 3 episodes, p = 0.002"."""
    side, au, trigger = pair.get("side"), pair.get("au"), pair.get("trigger")
    n_trigger, together, other = pair.get("n_trigger"), pair.get("n_together"), pair.get("n_other_side")
    if not n_trigger:  # the paper's rule carries no counts
        value = pair.get("cross_difference")
        return (
            f"{side} {au} with {trigger}: co-occurrence difference {value:+.2f}"
            if value is not None
            else f"{side} {au} with {trigger}"
        )
    with_t, without_t = pair.get("share_with_trigger"), pair.get("share_without_trigger")
    if au == EYE_CLOSURE:
        text = (
            f"{side} eye closes ({au}) with the {trigger}: it closed while the other eye stayed open in {together} "
            f"of {n_trigger} keyframes with the {trigger} moving (the other eye alone {other}), "
            f"{pair.get('episodes')} episodes"
        )
    elif with_t is not None and without_t is not None and au == "mouth" and trigger == "eyes":
        # the mouth with the eyes' closure is read on each corner's lift (stream/symptoms/synkinesis.py)
        text = (
            f"{side} mouth corner lifts (AU12) with the eyes' closure: the {side} corner takes {100 * with_t:.0f} % "
            f"of the corners' lift while both eyes close, {100 * without_t:.0f} % otherwise; lifted in {together} of "
            f"{n_trigger} keyframes with the eyes closed (other corner {other}), {pair.get('episodes')} episodes"
        )
    elif with_t is not None and without_t is not None:
        text = (
            f"{side} {au} moves with the {trigger}: the {side} side takes {100 * with_t:.0f} % of the {au}' "
            f"movement while the {trigger} moves, {100 * without_t:.0f} % otherwise; moving in {together} of "
            f"{n_trigger} keyframes (other side {other}), {pair.get('episodes')} episodes"
        )
    else:
        text = (
            f"{side} {au} with {trigger}: active in {together} of {n_trigger} keyframes with {trigger} "
            f"(other side {other}), {pair.get('episodes')} episodes"
        )
    p = pair.get("p_adjusted")
    if p is not None:
        text += f", corrected p = {p:.2g}"
    return text
