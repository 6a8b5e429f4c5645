"""RetinaFace: anchors and decoding on hand-made numbers, the biubug6 state-dict layouts, the weights
cache (downloads from a loopback HTTP server) and detection on real photos and video."""

from __future__ import annotations

import hashlib
import http.server
import math
import shutil
import threading
import time
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stream.errors import WeightsError
from stream.face.detect import available_detectors, build_detector
from stream.face.retinaface import (
    CONFIGS,
    RetinaFaceDetector,
    build_retinaface,
    decode_boxes,
    decode_landmarks,
    load_retinaface,
    prior_boxes,
    read_state_dict,
    resolve_weights,
)

WEIGHTS_NAME = "weights/retinaface_mobilenet0.25_Final.pth"
WEIGHTS_SHA256 = "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1"
VARIANCE = (0.1, 0.2)


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own weights cache, so nothing here reads or writes ~/.cache."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("STREAM_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="module")
def weights_file(shared_data: Path) -> Path:
    path = shared_data / WEIGHTS_NAME
    if not path.is_file():
        pytest.skip(f"RetinaFace test weights not found at {path}")
    return path


@pytest.fixture(scope="module")
def detector(weights_file: Path) -> RetinaFaceDetector:
    return RetinaFaceDetector(weights=weights_file, device="cpu")


def rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A loopback HTTP server over a folder: (base URL, folder, paths requested so far)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_QuietHandler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, requests
    server.shutdown()
    server.server_close()
    thread.join()


# -- anchors and decoding --------------------------------------------------------------------------


def test_prior_boxes_cover_each_level_in_head_order() -> None:
    cfg = CONFIGS["mobilenet0.25"]
    priors = prior_boxes(cfg, height=360, width=640)
    # strides 8/16/32 give 80x45, 40x23 and 20x12 cells, two anchor sizes each
    assert priors.shape == ((80 * 45 + 40 * 23 + 20 * 12) * 2, 4)
    torch.testing.assert_close(priors[0], torch.tensor([4 / 640, 4 / 360, 16 / 640, 16 / 360]))
    torch.testing.assert_close(priors[1], torch.tensor([4 / 640, 4 / 360, 32 / 640, 32 / 360]))
    torch.testing.assert_close(priors[2], torch.tensor([12 / 640, 4 / 360, 16 / 640, 16 / 360]))  # next column
    torch.testing.assert_close(priors[2 * 80], torch.tensor([4 / 640, 12 / 360, 16 / 640, 16 / 360]))  # next row
    first_of_level2 = 80 * 45 * 2
    torch.testing.assert_close(priors[first_of_level2], torch.tensor([8 / 640, 8 / 360, 64 / 640, 64 / 360]))
    torch.testing.assert_close(priors[-1], torch.tensor([19.5 * 32 / 640, 11.5 * 32 / 360, 512 / 640, 512 / 360]))


@pytest.mark.parametrize("variant", ["mobilenet0.25", "mobilenet0.25-1mb"])
def test_network_emits_one_row_per_prior_for_odd_sizes(variant: str) -> None:
    model = build_retinaface(variant).eval()
    with torch.inference_mode():
        loc, probs, landmarks = model(torch.zeros(1, 3, 97, 131))
    n = prior_boxes(model.cfg, 97, 131).shape[0]
    assert loc.shape == (1, n, 4) and probs.shape == (1, n, 2) and landmarks.shape == (1, n, 10)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, n))


def test_decode_boxes_on_hand_made_numbers() -> None:
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.1]])
    loc = torch.tensor([[1.0, -2.0, math.log(2) / 0.2, 0.0]])
    # centre moves by offset * 0.1 * prior size: x 0.5 + 0.02, y 0.5 - 0.02; width doubles, height stays
    torch.testing.assert_close(decode_boxes(loc, priors, VARIANCE), torch.tensor([[0.32, 0.43, 0.72, 0.53]]))


def test_decode_landmarks_on_hand_made_numbers() -> None:
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.1]])
    pre = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0, 1.0, -5.0, 0.0, 0.0, -5.0]])
    expected = torch.tensor([[[0.5, 0.5], [0.52, 0.5], [0.5, 0.51], [0.4, 0.5], [0.5, 0.45]]])
    torch.testing.assert_close(decode_landmarks(pre, priors, VARIANCE), expected)


def test_decoding_inverts_the_training_encoding() -> None:
    generator = torch.Generator().manual_seed(0)
    priors = torch.cat([torch.rand(50, 2, generator=generator), 0.05 + 0.3 * torch.rand(50, 2, generator=generator)], 1)
    centre = torch.rand(50, 2, generator=generator)
    size = 0.05 + 0.5 * torch.rand(50, 2, generator=generator)
    boxes = torch.cat([centre - size / 2, centre + size / 2], 1)
    points = torch.rand(50, 5, 2, generator=generator)
    # the SSD encoding RetinaFace is trained against, written out here independently of the decoder
    loc = torch.cat([(centre - priors[:, :2]) / (0.1 * priors[:, 2:]), torch.log(size / priors[:, 2:]) / 0.2], 1)
    pre = ((points - priors[:, None, :2]) / (0.1 * priors[:, None, 2:])).reshape(50, 10)
    torch.testing.assert_close(decode_boxes(loc, priors, VARIANCE), boxes)
    torch.testing.assert_close(decode_landmarks(pre, priors, VARIANCE), points)


# -- state-dict layouts ----------------------------------------------------------------------------


def test_real_weights_are_a_legacy_pickle_that_loads_safely(weights_file: Path) -> None:
    assert not zipfile.is_zipfile(weights_file)  # pre-1.6 torch.save format
    state = read_state_dict(weights_file)
    assert len(state) == 300
    assert sum(t.numel() for t in state.values()) == 433_343
    assert set(state) == set(build_retinaface("mobilenet0.25").state_dict())


def test_resnet50_layout_round_trips_with_a_module_prefix(tmp_path: Path) -> None:
    model = build_retinaface("resnet50")
    state = model.state_dict()
    assert "body.fc.weight" not in state  # the body stops after layer4, as IntermediateLayerGetter does
    assert state["body.layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert state["fpn.output1.0.weight"].shape == (256, 512, 1, 1)
    assert state["fpn.output3.0.weight"].shape == (256, 2048, 1, 1)
    assert state["ssh1.conv7x7_3.0.weight"].shape == (64, 64, 3, 3)
    assert state["ClassHead.0.conv1x1.weight"].shape == (4, 256, 1, 1)
    assert state["BboxHead.1.conv1x1.weight"].shape == (8, 256, 1, 1)
    assert state["LandmarkHead.2.conv1x1.weight"].shape == (20, 256, 1, 1)

    path = tmp_path / "Resnet50_Final.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)  # as saved from nn.DataParallel
    loaded = load_retinaface(path)
    assert loaded.cfg.name == "resnet50"
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    with torch.inference_mode():
        loc, probs, landmarks = loaded(torch.zeros(1, 3, 64, 96))
    assert loc.shape == (1, (8 * 12 + 4 * 6 + 2 * 3) * 2, 4)
    assert probs.shape[:2] == landmarks.shape[:2] == loc.shape[:2]


def test_a_state_dict_of_another_network_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "some_classifier.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3), "classifier.weight": torch.zeros(10, 8)}, path)
    with pytest.raises(WeightsError, match="some_classifier.pth") as err:
        load_retinaface(path)
    assert "mobilenet0.25_Final.pth" in str(err.value) and "Resnet50_Final.pth" in str(err.value)


def test_a_truncated_mobilenet_state_dict_is_refused(tmp_path: Path) -> None:
    state = build_retinaface("mobilenet0.25").state_dict()
    del state["LandmarkHead.2.conv1x1.weight"]
    path = tmp_path / "partial.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"partial\.pth.*missing 1 \(e\.g\. LandmarkHead\.2\.conv1x1\.weight\)"):
        load_retinaface(path)


def test_a_file_that_is_no_state_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pth"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(WeightsError, match="cannot read .*weights.pth"):
        load_retinaface(path)


def test_a_variant_of_the_other_backbone_is_refused(weights_file: Path) -> None:
    with pytest.raises(WeightsError, match="mobilenet0.25 RetinaFace, but variant 'resnet50'"):
        load_retinaface(weights_file, variant="resnet50")


# -- resolving and downloading weights -------------------------------------------------------------


def test_no_weights_and_an_empty_cache_says_how_to_get_weights(empty_cache: Path) -> None:
    with pytest.raises(WeightsError) as err:
        resolve_weights(None)
    message = str(err.value)
    assert "--weights PATH" in message and "mobilenet0.25_Final.pth" in message and "Resnet50_Final.pth" in message
    assert str(empty_cache) in message


def test_no_weights_uses_a_known_file_in_the_cache(empty_cache: Path, weights_file: Path) -> None:
    empty_cache.mkdir()
    shutil.copy(weights_file, empty_cache / "retinaface-mobilenet0.25-1mb.pth")
    assert resolve_weights(None) == empty_cache / "retinaface-mobilenet0.25-1mb.pth"


def test_a_missing_path_is_refused() -> None:
    with pytest.raises(WeightsError, match="nowhere/mobilenet.pth does not exist"):
        resolve_weights("/nowhere/mobilenet.pth")


def test_a_local_file_with_the_wrong_checksum_is_refused_and_kept(tmp_path: Path, weights_file: Path) -> None:
    mine = tmp_path / "mine.pth"
    shutil.copy(weights_file, mine)
    with pytest.raises(WeightsError, match="mine.pth have sha256 ed6fa7"):
        resolve_weights(mine, sha256="0" * 64)
    assert mine.is_file()


def test_download_goes_to_the_cache_once_and_is_verified(
    served: tuple[str, Path, list[str]], empty_cache: Path, weights_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, root, requests = served
    shutil.copy(weights_file, root / "mobilenet0.25_Final.pth")
    url = f"{base}/mobilenet0.25_Final.pth"

    path = resolve_weights(url, sha256=WEIGHTS_SHA256)

    assert path.parent == empty_cache and path.name.endswith("-mobilenet0.25_Final.pth")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == WEIGHTS_SHA256
    assert list(empty_cache.iterdir()) == [path]  # no temporary left behind
    assert f"downloading {url}: 1.8 / 1.8 MB" in capsys.readouterr().err
    detector = build_detector("retinaface", weights=url, weights_sha256=WEIGHTS_SHA256, device="cpu")
    assert requests == ["/mobilenet0.25_Final.pth"]  # the second use read the cache
    assert detector.weights_path == path and detector.cfg.name == "mobilenet0.25-1mb"  # known by its checksum


def test_a_download_with_the_wrong_checksum_leaves_nothing_in_the_cache(
    served: tuple[str, Path, list[str]], empty_cache: Path
) -> None:
    base, root, _ = served
    (root / "w.pth").write_bytes(b"x" * 200_000)
    with pytest.raises(WeightsError, match="has sha256 .* expected 0000"):
        resolve_weights(f"{base}/w.pth", sha256="0" * 64)
    assert list(empty_cache.iterdir()) == []


def test_a_missing_url_is_a_weights_error(served: tuple[str, Path, list[str]], empty_cache: Path) -> None:
    base, _, _ = served
    with pytest.raises(WeightsError, match="404"):
        resolve_weights(f"{base}/gone.pth")
    assert list(empty_cache.iterdir()) == []


def test_an_unreachable_url_fails_fast() -> None:
    started = time.monotonic()
    with pytest.raises(WeightsError, match=r"cannot download .*127\.0\.0\.1:9/x\.pth.*--weights PATH"):
        resolve_weights("http://127.0.0.1:9/x.pth")
    assert time.monotonic() - started < 5


# -- detection on real images ----------------------------------------------------------------------


def test_registry_builds_retinaface(weights_file: Path) -> None:
    assert "retinaface" in available_detectors()
    detector = build_detector("retinaface", weights=str(weights_file), device="cpu", max_side=320)
    assert detector.name == "retinaface" and detector.max_side == 320


def test_single_face_once_with_points_in_image_order(detector: RetinaFaceDetector, shared_data: Path) -> None:
    faces = detector.detect_all(rgb(shared_data / "single_face.jpg"))
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.9
    (lx, ly), (rx, ry), (nx, ny), (mlx, mly), (mrx, mry) = face.landmarks
    assert lx < rx and lx < nx < rx and ny > max(ly, ry)
    assert mlx < mrx and min(mly, mry) > ny
    x1, y1, x2, y2 = face.box
    assert all(x1 < x < x2 and y1 < y < y2 for x, y in face.landmarks)


def test_video_frame_points_agree_with_mtcnn(detector: RetinaFaceDetector, shared_data: Path) -> None:
    capture = cv2.VideoCapture(str(shared_data / "single_face.mp4"))
    for _ in range(17):
        ok, frame = capture.read()
        assert ok
    capture.release()
    image = np.ascontiguousarray(frame[:, :, ::-1])
    assert image.shape == (360, 640, 3)
    detection = detector.detect(image)
    assert detection.n_faces == 1 and detection.face is not None
    # MTCNN's eyes and nose on this clip, from shared/data/README.md
    mtcnn = np.array([[255.0, 163.0], [326.0, 159.0], [294.0, 204.0]])
    assert np.linalg.norm(detection.face.landmarks[:3] - mtcnn, axis=1).max() < 10


def test_five_faces_and_detect_picks_the_largest(detector: RetinaFaceDetector, shared_data: Path) -> None:
    image = rgb(shared_data / "multi_face.jpg")
    faces = detector.detect_all(image)
    assert len(faces) == 5
    detection = detector.detect(image)
    assert detection.n_faces == 5 and detection.face is not None
    assert detection.face.area == max(f.area for f in faces)


def test_large_images_are_downscaled_and_points_scaled_back(detector: RetinaFaceDetector, shared_data: Path) -> None:
    image = rgb(shared_data / "single_face.jpg")
    big = cv2.resize(image, (1144, 1124), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(big, (640, 629), interpolation=cv2.INTER_AREA)  # what max_side=640 should run on
    big_face, small_face = detector.detect(big).face, detector.detect(small).face
    assert big_face is not None and small_face is not None
    np.testing.assert_allclose(big_face.landmarks * [640 / 1144, 629 / 1124], small_face.landmarks, atol=1e-3)
    np.testing.assert_allclose(big_face.box * ([640 / 1144, 629 / 1124] * 2), small_face.box, atol=1e-3)


def test_no_face_in_a_blank_image(detector: RetinaFaceDetector) -> None:
    detection = detector.detect(np.full((240, 320, 3), 128, dtype=np.uint8))
    assert detection.face is None and detection.n_faces == 0


def test_rejects_non_rgb_input(detector: RetinaFaceDetector) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        detector.detect_all(np.zeros((10, 10), dtype=np.uint8))
