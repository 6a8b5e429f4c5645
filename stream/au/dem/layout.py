"""Reading a labelled half-face dataset folder for DEM training: the DISFA+ layout (or a clinic's data
in the same layout), its trials and label files, with precise errors where a folder does not follow it.

Expected layout (DISFA+ as distributed; docs/dem.md)::

    ROOT/
      Images/<subject>/<trial>/<frame>.jpg        any of .jpg .jpeg .png .bmp; frames sorted by name
      Labels/<subject>/<trial>/AU<n>.txt          one file per AU: AU1 AU2 AU4 AU5 AU6 AU9 AU12 AU15 AU17 AU20 AU25 AU26
      Labels/<subject>/<trial>/AU<n>_left.txt     optional: the patient's-left label where the sides differ
      Labels/<subject>/<trial>/AU<n>_right.txt    optional: patient's right (both override AU<n>.txt)

A label file has rows ``<frame file name>  <intensity 0..5>`` (whitespace separated); the first two
lines may be a header (DISFA+ has two). A trial is one video: DVPM pairs and DEM helpers never cross
trials. DISFA+'s bilateral labels serve both half-faces.

Kept apart from the pre-processing and cache (``data.py``) because reading the folder needs no
detector, no images decoded, only file names and label files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stream.aus import AU_NAMES, N_AUS
from stream.errors import InputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
LAYOUT_HINT = (
    "expected ROOT/Images/<subject>/<trial>/<frame>.jpg and ROOT/Labels/<subject>/<trial>/AU<n>.txt "
    f"for the 12 AUs ({' '.join(AU_NAMES)}); see docs/dem.md"
)


class DatasetLayoutError(InputError):
    """A dataset folder does not follow the documented layout."""


@dataclass(frozen=True)
class Trial:
    subject: str
    name: str
    images: tuple[Path, ...]  # sorted by file name
    labels: dict[str, np.ndarray]  # image file name -> (2, 12) int
    label_sha256: dict[str, str] = field(default_factory=dict)  # label file name -> sha256 of its bytes

    @property
    def video(self) -> str:
        return f"{self.subject}/{self.name}"


_ROW = re.compile(r"^(\S+)\s+(-?\d+(?:\.0+)?)\s*$")


def read_label_file(path: Path) -> dict[str, int]:
    """``<frame name> <intensity>`` rows; up to two leading header lines are skipped."""
    out: dict[str, int] = {}
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        match = _ROW.match(text)
        if match is None or not match.group(1).lower().endswith(IMAGE_EXTENSIONS):
            if lineno <= 2 and not out:
                continue  # header (DISFA+ has two lines)
            raise DatasetLayoutError(
                f"{path} line {lineno}: expected '<frame>.jpg <intensity 0..5>', got {text[:60]!r}"
            )
        value = int(float(match.group(2)))
        if not 0 <= value <= 5:
            raise DatasetLayoutError(f"{path} line {lineno}: intensity {value} outside 0..5")
        out[match.group(1)] = value
    if not out:
        raise DatasetLayoutError(f"{path} has no '<frame>.jpg <intensity>' rows")
    return out


def _descend_nested(folder: Path) -> Path:
    # Some unpacked copies repeat the subject folder (Images/SN001/SN001/...).
    inner = [p for p in folder.iterdir() if p.is_dir()]
    if len(inner) == 1 and inner[0].name == folder.name:
        return inner[0]
    return folder


def _trial_labels(label_dir: Path, images: list[Path]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Labels per image and the sha256 of every label file they came from."""
    names = [p.name for p in images]
    hashes: dict[str, str] = {}
    table = np.full((len(names), 2, N_AUS), -1, dtype=np.int64)
    index = {n: i for i, n in enumerate(names)}
    for a, au in enumerate(AU_NAMES):
        both = label_dir / f"{au}.txt"
        sided = {s: label_dir / f"{au}_{side}.txt" for s, side in enumerate(("left", "right"))}
        for s in (0, 1):
            source = sided[s] if sided[s].is_file() else both
            if not source.is_file():
                raise DatasetLayoutError(
                    f"{label_dir} has no {au}.txt (nor {au}_left.txt/{au}_right.txt): {LAYOUT_HINT}"
                )
            if source.name not in hashes:
                hashes[source.name] = hashlib.sha256(source.read_bytes()).hexdigest()
            for name, value in read_label_file(source).items():
                if name in index:
                    table[index[name], s, a] = value
    missing = np.flatnonzero((table < 0).any(axis=(1, 2)))
    if len(missing):
        first = names[missing[0]]
        aus = [AU_NAMES[a] for a in np.flatnonzero((table[missing[0]] < 0).any(axis=0))]
        raise DatasetLayoutError(
            f"{label_dir}: {len(missing)} of {len(names)} images have no label in some AU file "
            f"(first: {first}, missing in {', '.join(au + '.txt' for au in aus)})"
        )
    return {n: table[i] for i, n in enumerate(names)}, hashes


def scan_dataset(root: str | Path) -> list[Trial]:
    """Every trial of a dataset folder, labels merged on the frame name; precise errors otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist: {LAYOUT_HINT}")
    images_root, labels_root = root / "Images", root / "Labels"
    for folder in (images_root, labels_root):
        if not folder.is_dir():
            raise DatasetLayoutError(f"{root} has no {folder.name}/ folder: {LAYOUT_HINT}")
    trials = []
    for subject_dir in sorted(p for p in images_root.iterdir() if p.is_dir()):
        subject_dir = _descend_nested(subject_dir)
        subject = subject_dir.name
        trial_dirs = sorted(p for p in subject_dir.iterdir() if p.is_dir())
        if not trial_dirs:
            raise DatasetLayoutError(f"{subject_dir} has no trial folders: {LAYOUT_HINT}")
        label_subject = labels_root / subject
        if label_subject.is_dir():
            label_subject = _descend_nested(label_subject)
        for trial_dir in trial_dirs:
            images = sorted(p for p in trial_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not images:
                raise DatasetLayoutError(f"{trial_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)}): {LAYOUT_HINT}")
            label_dir = label_subject / trial_dir.name
            if not label_dir.is_dir():
                raise DatasetLayoutError(f"images in {trial_dir} have no label folder {label_dir}: {LAYOUT_HINT}")
            labels, hashes = _trial_labels(label_dir, images)
            trials.append(Trial(subject, trial_dir.name, tuple(images), labels, hashes))
    if not trials:
        raise DatasetLayoutError(f"{images_root} has no <subject>/<trial>/ folders with images: {LAYOUT_HINT}")
    return trials


# --------------------------------------------------------------------------------------------
# Pre-processing with the product's detector, keyframe filter and half-face split; per-trial cache
