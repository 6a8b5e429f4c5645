"""The constructed cases the harness builds from each healthy clip, and what each must yield.

Ground truth comes from the construction: a healthy clip is healthy (no weaker side, no synkinesis);
freezing or damping one side makes that side weaker wherever the face moved; injected synkinesis puts
an eye-mouth pair on the chosen side; mirroring swaps the sides; re-encoding changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from stream.aus import SIDES, Side

REGION_NAMES: tuple[str, ...] = ("eyebrows", "eyes", "mouth")


@dataclass(frozen=True)
class Case:
    name: str
    family: str  # control | mirror | mirrored_flag | reencode | freeze | damp | damp_region | synkinesis
    kind: str | None = None  # construction (stream.validate.construct.CaseSpec.kind); None: the clip as it is
    side: Side | None = None  # the patient's side that is modified
    region: str = "face"  # face | eyebrows | eyes | mouth
    factor: float = 1.0  # fraction of motion kept on the modified side
    flip: bool = False  # frames mirrored horizontally before analysis
    mirrored_flag: bool = False  # analysed with --mirrored
    crf: int | None = None  # re-encoded with libx264 at this crf before analysis
    scale: float = 1.0  # re-encode at this scale

    @property
    def constructed(self) -> bool:
        return self.kind is not None


def standard_cases(quick: bool = False) -> list[Case]:
    """Every case of docs/validity.md; ``quick``: the unmodified clip and a frozen right side only."""
    if quick:
        return [Case("control", "control"), Case("freeze_right", "freeze", "freeze", "right", factor=0.0)]
    cases = [
        Case("control", "control"),
        Case("mirror", "mirror", flip=True),
        Case("mirror_flagged", "mirrored_flag", flip=True, mirrored_flag=True),
        Case("crf18", "reencode", crf=18),
        Case("crf28", "reencode", crf=28),
        Case("scale075", "reencode", crf=18, scale=0.75),
    ]
    for side in SIDES:
        cases.append(Case(f"freeze_{side}", "freeze", "freeze", side, factor=0.0))
        for factor in (0.35, 0.6):
            pct = int(round(factor * 100))
            cases.append(Case(f"damp{pct}_{side}", "damp", "damp", side, factor=factor))
            for region in REGION_NAMES:
                cases.append(Case(f"damp{pct}_{side}_{region}", "damp_region", "damp", side, region, factor))
        cases.append(Case(f"synk_eye_on_smile_{side}", "synkinesis", "synkinesis_eye_on_smile", side))
        cases.append(Case(f"synk_mouth_on_eye_closure_{side}", "synkinesis", "synkinesis_mouth_on_eye_closure", side))
    return cases


def case_by_name(name: str) -> Case:
    for case in standard_cases():
        if case.name == name:
            return case
    raise KeyError(name)
