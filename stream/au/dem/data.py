"""Labelled half-face datasets for DEM training: the half-face set, the product's own pre-processing of
each trial and the per-trial cache. Reading the dataset folder (the DISFA+ layout, label files) is
``layout.py``.

Pre-processing is the product's own (so training sees what inference sees): the face detector, the
keyframe filter (reset per trial), the 3-point alignment and the patient-side split. Prepared
half-faces are cached per trial under a cache folder. Each entry is keyed by the pre-processing
settings, the trial's image names and sizes, and the sha256 of each label file it was made with;
labels are always taken from the label files just read, never from the cache, so a corrected label
file can never be shadowed by an old entry. A stale entry is rebuilt and the console says why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from stream.au.dem.layout import (
    IMAGE_EXTENSIONS,
    LAYOUT_HINT,
    DatasetLayoutError,
    Trial,
    read_label_file,
    scan_dataset,
)
from stream.aus import N_AUS
from stream.config import AnalysisConfig
from stream.errors import ConfigError, InputError
from stream.progress import Progress

if TYPE_CHECKING:
    from stream.face.detect import FaceDetector

# The layout's names stay importable from here (training commands and tests read them with the rest).
__all__ = [
    "CACHE_VERSION",
    "IMAGE_EXTENSIONS",
    "LAYOUT_HINT",
    "DatasetLayoutError",
    "HalfFaceSet",
    "PrepareSettings",
    "Trial",
    "cache_key",
    "load_dataset",
    "prepare_trial",
    "read_label_file",
    "scan_dataset",
]

CACHE_VERSION = 1


@dataclass(frozen=True)
class HalfFaceSet:
    """Keyframes as half-face pairs with per-side labels; rows are frames."""

    images: np.ndarray  # (N, 2, H, W, 3) uint8 RGB, [patient's left, patient's right]
    labels: np.ndarray  # (N, 2, 12) int, 0..5, AU_NAMES order
    video: np.ndarray  # (N,) str, "<subject>/<trial>": helpers and DVPM pairs stay inside one video
    subject: np.ndarray  # (N,) str
    frame: np.ndarray  # (N,) str, image file name (or any frame id)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 5 or self.images.shape[1] != 2 or self.images.shape[-1] != 3:
            raise ValueError(f"images must be (N, 2, H, W, 3), got {self.images.shape}")
        if self.labels.shape != (n, 2, N_AUS):
            raise ValueError(f"labels must be ({n}, 2, {N_AUS}), got {self.labels.shape}")
        for name in ("video", "subject", "frame"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} frames")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.images.shape[2:4]
        return int(height), int(width)

    def subset(self, idx: Iterable[int] | np.ndarray) -> HalfFaceSet:
        idx = np.asarray(list(idx) if not isinstance(idx, np.ndarray) else idx, dtype=np.int64)
        return HalfFaceSet(self.images[idx], self.labels[idx], self.video[idx], self.subject[idx], self.frame[idx])

    def resized(self, size: tuple[int, int]) -> HalfFaceSet:
        """The same set at another half-face size (H, W), resampled as the estimator does (INTER_AREA)."""
        if self.size == tuple(size):
            return self
        h, w = size
        out = np.empty((len(self), 2, h, w, 3), dtype=np.uint8)
        for i in range(len(self)):
            for s in range(2):
                out[i, s] = cv2.resize(self.images[i, s], (w, h), interpolation=cv2.INTER_AREA)
        return HalfFaceSet(out, self.labels, self.video, self.subject, self.frame)

    def split(self, fraction: float = 0.8, by: str = "frame", seed: int = 0) -> tuple[HalfFaceSet, HalfFaceSet]:
        """Train/test split. ``by="frame"``: the paper's random 8:2 over keyframes; ``"subject"``: whole
        subjects on one side (no identity leakage); ``"video"``: whole videos on one side."""
        rng = np.random.default_rng(seed)
        if by == "frame":
            order = rng.permutation(len(self))
            cut = int(round(fraction * len(self)))
            return self.subset(np.sort(order[:cut])), self.subset(np.sort(order[cut:]))
        if by not in ("subject", "video"):
            raise ConfigError(f"split must be 'frame', 'subject' or 'video', got {by!r}")
        keys = self.subject if by == "subject" else self.video
        groups = np.unique(keys)
        if len(groups) < 2:
            raise InputError(
                f"a split by {by} needs at least 2 {by}s, found {len(groups)}: use another --split or more data"
            )
        groups = groups[rng.permutation(len(groups))]
        n_train = min(max(1, int(round(fraction * len(groups)))), len(groups) - 1)
        train_mask = np.isin(keys, groups[:n_train])
        return self.subset(np.flatnonzero(train_mask)), self.subset(np.flatnonzero(~train_mask))

    @staticmethod
    def concatenate(parts: list[HalfFaceSet]) -> HalfFaceSet:
        parts = [p for p in parts if len(p)]
        if not parts:
            raise InputError("no keyframes to concatenate: the dataset gave no usable frames")
        return HalfFaceSet(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in ("images", "labels", "video", "subject", "frame"))
        )


@dataclass(frozen=True)
class PrepareSettings:
    detector: str = "mtcnn"
    # None: keep every frame with a face (no keyframe filter); default: the analysis default.
    keyframe_threshold: float | None = AnalysisConfig.keyframe_threshold
    mirrored: bool = False  # DISFA+ frames are unmirrored camera images

    def key(self) -> dict[str, Any]:
        return {
            "version": CACHE_VERSION,
            "detector": self.detector,
            "keyframe_threshold": self.keyframe_threshold,
            "mirrored": self.mirrored,
        }


def _read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetLayoutError(f"cannot decode image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def prepare_trial(trial: Trial, detector: FaceDetector, settings: PrepareSettings) -> dict[str, np.ndarray]:
    """Half-faces (512x256) of the trial's keyframes: {"left", "right", "frames", "labels"}; counts too."""
    from stream.face.align import align_face, split_halves
    from stream.keyframes import KeyframeFilter

    kf = KeyframeFilter(settings.keyframe_threshold) if settings.keyframe_threshold is not None else None
    left, right, frames, labels = [], [], [], []
    no_face = 0
    for path in trial.images:
        image = _read_rgb(path)
        face = detector.detect(image).face
        if face is None:
            no_face += 1
            continue
        try:
            if kf is not None and not kf.offer(image, face).keep:
                continue
            halves = split_halves(align_face(image, face), mirrored=settings.mirrored)
        except ValueError:  # degenerate landmarks
            no_face += 1
            continue
        left.append(halves.left)
        right.append(halves.right)
        frames.append(path.name)
        labels.append(trial.labels[path.name])
    empty = np.zeros((0, 512, 256, 3), dtype=np.uint8)
    return {
        "left": np.stack(left) if left else empty,
        "right": np.stack(right) if right else empty,
        "frames": np.array(frames, dtype=str),
        "labels": np.stack(labels) if labels else np.zeros((0, 2, N_AUS), dtype=np.int64),
        "no_face": np.array(no_face),
    }


def cache_key(trial: Trial, settings: PrepareSettings) -> dict[str, Any]:
    """What a cached trial depends on: settings, the images (names and sizes), the label files (sha256).

    Image sizes rather than image hashes: hashing every frame of DISFA+ on each load would cost more
    than reading the cache saves; a replaced frame of identical byte size is not noticed.
    """
    images = hashlib.sha256("".join(f"{p.name}\t{p.stat().st_size}\n" for p in trial.images).encode()).hexdigest()
    return {"settings": settings.key(), "images": images, "labels": dict(sorted(trial.label_sha256.items()))}


def _stale(stored: dict[str, Any] | None, key: dict[str, Any], video: str) -> tuple[str | None, bool]:
    """(why the entry is stale or None, whether the half-faces must be prepared again)."""
    if stored is None:
        return f"cache entry of {video} predates content keys: half-faces prepared again", True
    if stored.get("settings") != key["settings"]:
        return f"cache entry of {video} was prepared with other settings: half-faces prepared again", True
    if stored.get("images") != key["images"]:
        return f"images of {video} changed since they were cached: half-faces prepared again", True
    if stored.get("labels") != key["labels"]:
        old, new = stored.get("labels") or {}, key["labels"]
        changed = sorted(n for n in set(old) | set(new) if old.get(n) != new.get(n))
        return (
            f"labels of {video} changed since they were cached ({', '.join(changed)}): "
            "cache entry rebuilt with the new labels",
            False,
        )
    return None, False


def _read_entry(file: Path) -> tuple[dict[str, np.ndarray], dict[str, Any] | None] | None:
    try:
        with np.load(file) as z:
            entry = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError):  # unreadable (interrupted copy, disk error): prepared again
        return None
    key = json.loads(str(entry.pop("key"))) if "key" in entry else None
    return entry, key


def _write_entry(file: Path, prepared: dict[str, np.ndarray], key: dict[str, Any]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp.npz")
    entries: dict[str, Any] = {k: prepared[k] for k in ("left", "right", "frames", "no_face")}
    np.savez_compressed(tmp, key=np.array(json.dumps(key, sort_keys=True)), **entries)
    tmp.replace(file)


def load_dataset(
    root: str | Path,
    size: tuple[int, int],
    cache_dir: str | Path | None = None,
    settings: PrepareSettings = PrepareSettings(),
    detector: FaceDetector | None = None,
    progress: bool = False,
    say: Callable[[str], None] | None = None,
) -> HalfFaceSet:
    """Scan, pre-process (or read the cache) and return all keyframes at half-face ``size`` (H, W).

    ``say`` receives one line per stale cache entry (default: printed on stderr, bar or no bar).
    """

    trials = scan_dataset(root)
    cache = Path(cache_dir) if cache_dir else Path(root) / ".stream_cache"
    manifest = cache / "manifest.json"
    if manifest.is_file() and json.loads(manifest.read_text()) != settings.key():
        raise InputError(
            f"half-face cache {cache} was prepared with other settings ({manifest.read_text().strip()}); "
            "delete it or pass another --cache folder"
        )
    cache.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps(settings.key()))
    parts: list[HalfFaceSet] = []
    bar = Progress("prepare half-faces", len(trials), progress)
    say = say or bar.say
    no_face = 0
    for t_i, trial in enumerate(trials):
        file = cache / trial.subject / f"{trial.name}.npz"
        key = cache_key(trial, settings)
        cached = _read_entry(file) if file.is_file() else None
        prepared = None
        if cached is not None:
            prepared, stored = cached
            why, again = _stale(stored, key, trial.video)
            if why:
                say(why)
                if again:
                    prepared = None
                else:
                    _write_entry(file, prepared, key)
        elif file.is_file():
            say(f"cache entry {file} is unreadable: half-faces prepared again")
        if prepared is None:
            if detector is None:
                from stream.face.detect import build_detector

                detector = build_detector(settings.detector)
            prepared = prepare_trial(trial, detector, settings)
            _write_entry(file, prepared, key)
        no_face += int(prepared["no_face"])
        n = len(prepared["frames"])
        bar.update(t_i + 1, f"{trial.video}: {n} keyframes")
        if n == 0:
            continue
        frames = prepared["frames"].astype(str)
        # Labels from the files just read (their hashes are in the key), never from the cache.
        labels = np.stack([trial.labels[f] for f in frames]).astype(np.int64)
        images = np.stack([prepared["left"], prepared["right"]], axis=1)
        part = HalfFaceSet(
            images,
            labels,
            np.full(n, trial.video, dtype=object),
            np.full(n, trial.subject, dtype=object),
            frames.astype(object),
        )
        parts.append(part.resized(size))
    bar.close(f"{sum(len(p) for p in parts)} keyframes, {no_face} frames without a usable face")
    if not parts:
        raise InputError(f"no keyframe with a detectable face in {root} ({no_face} frames without a face)")
    return HalfFaceSet.concatenate(parts)
