"""Run the constructed cases through the real analysis: decode, construct, (re-encode), analyse.

The edge of the harness: files, subprocesses, the detector. Each case's result is the AU series and
the frame counts (numbers only), saved as ``<out>/<clip>/<case>.npz`` so that the decision rules can
be scored again without re-running the analysis (``python -m stream validate --rescore OUT``).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stream.config import AnalysisConfig
from stream.decode import VideoFile
from stream.errors import InputError
from stream.types import Frame
from stream.validate.cases import Case

VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi")


@dataclass(frozen=True)
class CaseResult:
    clip: str
    case: str
    left: np.ndarray
    right: np.ndarray
    closure: np.ndarray | None
    movement: np.ndarray | None
    time_s: np.ndarray
    counts: dict[str, float]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = {"left": self.left, "right": self.right, "time_s": self.time_s}
        if self.closure is not None:
            arrays["closure"] = self.closure
        if self.movement is not None:
            arrays["movement"] = self.movement
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, counts=json.dumps(self.counts), clip=self.clip, case=self.case, **arrays)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> CaseResult:
        with np.load(path) as z:
            return cls(
                str(z["clip"]),
                str(z["case"]),
                z["left"],
                z["right"],
                z["closure"] if "closure" in z else None,
                z["movement"] if "movement" in z else None,
                z["time_s"],
                json.loads(str(z["counts"])),
            )


def find_clips(paths: list[str]) -> list[Path]:
    """Video files named or inside the folders named (sorted, folders searched one level deep)."""
    clips: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            clips += sorted(q for q in p.iterdir() if q.suffix.lower() in VIDEO_SUFFIXES and q.is_file())
        elif p.is_file():
            clips.append(p)
        else:
            raise InputError(
                f"validation clip or folder {p} does not exist: give video files or folders that hold them"
            )
    return clips


def clip_landmarks(clip: Path, config: AnalysisConfig) -> tuple[np.ndarray, float]:
    """(n, 5, 2) landmarks per frame (NaN without a face) from the product's detector, and the fps."""
    from stream.face.detect import build_detector
    from stream.face.track import TrackingDetector

    tracker = TrackingDetector(
        build_detector(config.detector, weights=config.weights, device=config.device), detect_every=config.detect_every
    )
    out = []
    with VideoFile(clip) as video:
        fps = video.info.fps or 30.0
        for frame in video.frames():
            face = tracker.detect(frame.image).face
            out.append(np.full((5, 2), np.nan) if face is None else np.asarray(face.landmarks, float))
    return np.asarray(out), fps


def _case_frames(clip: Path, case: Case, landmarks: np.ndarray, fps: float, config: AnalysisConfig) -> Iterator[Frame]:
    constructor = None
    if case.kind is not None:  # a constructed case (Case.constructed)
        from stream.face.mesh import FaceMesh
        from stream.validate.construct import CaseSpec, Constructor, ReferenceRule

        # freeze/damp hold the frame the pipeline will take as its neutral reference
        reference = ReferenceRule(config.reference_max_yaw, config.reference_wait_s, gate_yaw=config.max_yaw)

        spec = CaseSpec(case.kind, case.side or "right", case.region, case.factor)
        # freeze/damp carry the reference into each frame's 3-D head pose, from the face mesh; the
        # synkinesis reads the clip's own mouth movement with that pose taken out
        constructor = Constructor(spec, fps=fps, n_frames=len(landmarks), mesh=FaceMesh(), reference=reference)
    with VideoFile(clip) as video:
        for frame in video.frames():
            image = frame.image
            if constructor is not None:
                lm = landmarks[frame.index] if frame.index < len(landmarks) else None
                if lm is not None and not np.isfinite(lm).all():
                    lm = None
                image = constructor.frame(frame.index, image, lm)
            if case.flip:
                image = np.ascontiguousarray(image[:, ::-1])
            yield Frame(frame.index, frame.time_s, image)


def _reencode(frames: Iterator[Frame], fps: float, crf: int, scale: float, path: Path) -> None:
    import av
    import cv2

    container = av.open(str(path), mode="w")
    stream = None
    try:
        for frame in frames:
            image = frame.image
            if scale != 1.0:
                h, w = image.shape[:2]
                image = cv2.resize(
                    image, (int(round(w * scale / 2)) * 2, int(round(h * scale / 2)) * 2), interpolation=cv2.INTER_AREA
                )
            elif image.shape[0] % 2 or image.shape[1] % 2:
                image = image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]
            if stream is None:
                stream = container.add_stream("libx264", rate=round(fps) or 30)
                stream.width, stream.height = image.shape[1], image.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")):
                container.mux(packet)
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    finally:
        container.close()


def run_case(
    clip: Path, case: Case, landmarks: np.ndarray, fps: float, config: AnalysisConfig, jitter_px: float = 0.0
) -> CaseResult:
    """Analyse one constructed case of one clip with the product's own pipeline.

    ``jitter_px``: move the detector's points by N(0, jitter_px) pixels (stream/validate/jitter.py), to
    measure how much of a figure is noise; 0 analyses exactly as ``analyze`` does.
    """
    from stream.face.detect import build_detector
    from stream.pipeline import Pipeline
    from stream.validate.jitter import JitteredDetector

    detector = None  # the pipeline builds the configured detector itself, as in ``analyze``
    if jitter_px > 0:
        plain = build_detector(config.detector, weights=config.weights, device=config.device)
        detector = JitteredDetector(plain, jitter_px, seed=config.seed)
    pipeline = Pipeline(config, detector=detector, mirrored=case.mirrored_flag)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stream-validate-") as tmp:
        if case.crf is not None:
            encoded = Path(tmp) / "case.mp4"
            _reencode(_case_frames(clip, case, landmarks, fps, config), fps, case.crf, case.scale, encoded)
            with VideoFile(encoded) as video:
                for frame in video.frames():
                    pipeline.process(frame)
        else:
            for frame in _case_frames(clip, case, landmarks, fps, config):
                pipeline.process(frame)
    series = pipeline.series()
    counts = {**pipeline.counts.as_dict(), "seconds": time.perf_counter() - t0}
    if len(series.time_s):
        counts["duration_s"] = float(series.time_s[-1])
    return CaseResult(
        clip.name, case.name, series.left, series.right, series.closure, series.movement, series.time_s, counts
    )


def _worker(clip: str, cases: list[Case], config: AnalysisConfig, out: str, jitter_px: float = 0.0) -> list[str]:
    import cv2

    cv2.setNumThreads(1)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    clip_path = Path(clip)
    cache = Path(out) / clip_path.stem / "landmarks.npz"
    if cache.exists():
        with np.load(cache) as z:
            landmarks, fps = z["landmarks"], float(z["fps"])
    else:
        landmarks, fps = clip_landmarks(clip_path, config)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, landmarks=landmarks, fps=fps)
    done = []
    for case in cases:
        target = Path(out) / clip_path.stem / f"{case.name}.npz"
        if target.exists():
            done.append(case.name)
            continue
        run_case(clip_path, case, landmarks, fps, config, jitter_px).save(target)
        done.append(case.name)
    return done


def run_all(
    clips: list[Path],
    cases: list[Case],
    out: Path,
    config: AnalysisConfig,
    jobs: int = 2,
    log: Callable[[str], object] = print,
    jitter_px: float = 0.0,
) -> None:
    """Every case of every clip, ``jobs`` processes, results under ``out`` (existing results are kept);
    ``jitter_px``: see ``run_case``."""
    out.mkdir(parents=True, exist_ok=True)
    # One job per (clip, chunk of cases): the landmarks of a clip are computed once and cached.
    chunks: list[tuple[Path, list[Case]]] = []
    per = 4
    for clip in clips:
        for k in range(0, len(cases), per):
            chunks.append((clip, cases[k : k + per]))
    t0 = time.perf_counter()
    if jobs <= 1:
        for clip, chunk in chunks:
            _worker(str(clip), chunk, config, str(out), jitter_px)
            log(f"  {clip.name}: {len(chunk)} cases ({time.perf_counter() - t0:.0f} s)")
        return
    # landmarks first (one process per clip), so that chunks of one clip do not race on the cache
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_worker, str(clip), [], config, str(out)): clip for clip in clips}
        for f in as_completed(futures):
            f.result()
        futures = {pool.submit(_worker, str(clip), chunk, config, str(out), jitter_px): clip for clip, chunk in chunks}
        for f in as_completed(futures):
            names = f.result()
            log(f"  {futures[f].name}: {len(names)} cases ({time.perf_counter() - t0:.0f} s)")
