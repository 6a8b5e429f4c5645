"""Warnings about the recording itself, which a clinician must read before any verdict.

A verdict can be right about the keyframes it saw and still mislead when the face was missing for
much of the video, the clip was too short to show movement, or the head was turned away. These
warnings depend only on the frame counts of the analysis, not on the AU series, so they are computed
apart from the verdicts and shown with either rule set.

Pure: counts in, sentences out; no I/O.
"""

from __future__ import annotations

from typing import Any

from stream.symptoms.rules import EvidenceRules

_REFERENCE_WAIT_WORDS = "the first seconds"  # stream.config.AnalysisConfig.reference_wait_s


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
            f"head turned away from the camera in {gated} of {face_frames} face frames "
            f"({100 * gated / face_frames:.0f} %); those frames were not measured: "
            "ask the patient to keep facing the camera"
        )
    if int(counts.get("reference_not_frontal") or 0):
        out.append(
            "the neutral reference was taken with the head turned (no frame faced the camera within "
            f"{_REFERENCE_WAIT_WORDS}): the two half-faces are not measured alike, so read a weaker side with "
            "care; ask the patient to face the camera at rest"
        )
    keyframes = int(counts.get("keyframes") or 0)
    turned = int(counts.get("keyframes_pose_gated") or 0)
    if keyframes and turned / keyframes >= 0.2:
        out.append(
            f"head turned away from the pose of its neutral reference in {turned} of {keyframes} keyframes "
            f"({100 * turned / keyframes:.0f} %); those keyframes were not measured: ask the patient to keep "
            "facing the camera as at the start (the rest pose)"
        )
    return out
