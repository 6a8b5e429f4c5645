"""The NumPy MTCNN (the default detector on the CPU) against facenet-pytorch's own, on real frames."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stream.errors import WeightsError
from stream.face.mtcnn_numpy import (
    NumpyMTCNN,
    area_resample,
    integral_image,
    nms,
    read_legacy_state_dict,
    weights_folder,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _frames(name: str, every: int, limit: int) -> list[np.ndarray]:
    from stream.decode import VideoFile
    from stream.face.detect import downscale_for_detection

    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    out = []
    with VideoFile(path) as video:
        for frame in video.frames():
            if frame.index % every == 0:
                out.append(downscale_for_detection(frame.image, 320, "MTCNN")[0])
            if len(out) >= limit:
                break
    return out


@pytest.mark.parametrize(
    "clip",
    [
        "d9.mp4",
        pytest.param("WolfgangLanger_Pexels.mp4", marks=pytest.mark.slow),
        pytest.param("no_face.mp4", marks=pytest.mark.slow),
    ],
)
def test_same_faces_as_facenet_pytorch(clip: str) -> None:
    torch = pytest.importorskip("torch")
    facenet = pytest.importorskip("facenet_pytorch")
    torch.set_num_threads(1)
    reference = facenet.MTCNN(keep_all=True, device="cpu", min_face_size=40, post_process=False)
    ours = NumpyMTCNN(min_face_size=40)
    compared = 0
    for image in _frames(clip, every=23, limit=10):
        with torch.inference_mode():
            boxes, probs, points = reference.detect(image, landmarks=True)
        b2, p2, pts2 = ours.detect(image)
        if boxes is None:
            assert len(b2) == 0
            continue
        boxes = np.asarray(boxes, dtype=float)
        probs = np.asarray(probs, dtype=float)
        points = np.asarray(points, dtype=float)
        assert len(b2) == len(boxes)
        order, order2 = np.argsort(-probs), np.argsort(-p2)
        np.testing.assert_allclose(b2[order2], boxes[order], atol=1e-2)
        np.testing.assert_allclose(pts2[order2], points[order], atol=1e-2)
        np.testing.assert_allclose(p2[order2], probs[order], atol=1e-4)
        compared += 1
    if clip != "no_face.mp4":
        assert compared >= 7  # faces were found and compared, not skipped


def test_weights_read_without_torch() -> None:
    code = (
        "import sys; from stream.face.mtcnn import MTCNNDetector; MTCNNDetector(); "
        "from stream.face.detect import build_detector; from stream.au.base import build_estimator; "
        "build_detector('mtcnn'); build_estimator('flow'); "
        "print(sorted(m for m in ('torch', 'torchvision', 'facenet_pytorch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    state = read_legacy_state_dict(weights_folder() / "onet.pt")
    assert state["conv1.weight"].shape == (32, 3, 3, 3) and state["dense6_3.weight"].shape == (10, 256)


def test_weight_reader_refuses_other_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(header, f)
        f.write(b"cos\nsystem\n(S'echo no'\ntR.")
    with pytest.raises(WeightsError, match="unexpected object os.system"):
        read_legacy_state_dict(path)


def test_area_resample_is_adaptive_average_pooling() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(7, 10, 3)).astype(np.uint8)
    out = area_resample(integral_image(img), [[0, 7, 0, 10]], 3, 4)[0]
    # cell (i, j) averages rows floor(7i/3)..ceil(7(i+1)/3)-1 and columns floor(10j/4)..ceil(10(j+1)/4)-1
    for i in range(3):
        for j in range(4):
            r0, r1 = (7 * i) // 3, -(-7 * (i + 1) // 3)
            c0, c1 = (10 * j) // 4, -(-10 * (j + 1) // 4)
            assert out[i, j] == pytest.approx(img[r0:r1, c0:c1].reshape(-1, 3).mean(axis=0), abs=1e-4)


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    assert nms(boxes, scores, 0.99).tolist() == [1, 0, 2]
