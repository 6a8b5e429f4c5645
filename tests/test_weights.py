"""Weights as data (stream/weights.py): resolve, download into the cache, verify, on real weight files.

No network: downloads come from file:// URLs (urllib reads them like http), so the cache, the
checksum and the atomic rename run for real.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch

from stream.au.dem import checkpoint as ckpt
from stream.au.dem.models import DemConfig, build_pair
from stream.errors import WeightsError
from stream.face.retinaface import KNOWN_WEIGHTS, PREPROCESSING, load_retinaface
from stream.weights import WeightsSpec, resolve, sha256_of

RETINAFACE = "weights/retinaface_mobilenet0.25_Final.pth"
RETINAFACE_SHA256 = "ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1"  # shared/data/README.md


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STREAM_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def retinaface_copy(shared_data: Path, tmp_path: Path) -> Path:
    source = shared_data / RETINAFACE
    if not source.is_file():
        pytest.skip(f"{source} not found")
    copy = tmp_path / "published" / "mobilenet0.25_Final.pth"
    copy.parent.mkdir()
    shutil.copyfile(source, copy)
    return copy


def mtcnn_files() -> list[Path]:
    import facenet_pytorch

    folder = Path(facenet_pytorch.__file__).parent / "data"
    return [folder / f"{net}.pt" for net in ("pnet", "rnet", "onet")]


def test_checksum_of_the_real_retinaface_file(retinaface_copy: Path) -> None:
    assert sha256_of(retinaface_copy) == RETINAFACE_SHA256
    assert resolve(retinaface_copy, sha256=RETINAFACE_SHA256) == retinaface_copy
    with pytest.raises(WeightsError, match=r"have sha256 ed6fa7d4.*expected 0{64}: wrong or corrupt file"):
        resolve(retinaface_copy, sha256="0" * 64, what="RetinaFace weights")


def test_a_missing_file_names_the_file_and_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"RetinaFace weights file .*none\.pth does not exist: ask the clinic"):
        resolve(tmp_path / "none.pth", what="RetinaFace weights", how_to_get="ask the clinic")


def test_download_lands_in_the_cache_once(retinaface_copy: Path, cache: Path) -> None:
    url = retinaface_copy.as_uri()
    first = resolve(url, sha256=RETINAFACE_SHA256)
    assert first.parent == cache and first.read_bytes() == retinaface_copy.read_bytes()
    retinaface_copy.unlink()  # the source is gone: a second resolve must not need it
    assert resolve(url, sha256=RETINAFACE_SHA256) == first
    assert [p.name for p in cache.iterdir()] == [first.name]  # no temporary file left behind


def test_a_corrupt_cached_file_is_downloaded_again(retinaface_copy: Path, cache: Path) -> None:
    url = retinaface_copy.as_uri()
    cached = resolve(url, sha256=RETINAFACE_SHA256)
    cached.write_bytes(b"damaged")
    assert resolve(url, sha256=RETINAFACE_SHA256) == cached
    assert sha256_of(cached) == RETINAFACE_SHA256


def test_a_download_with_the_wrong_checksum_leaves_nothing(retinaface_copy: Path, cache: Path) -> None:
    with pytest.raises(WeightsError, match=r"has sha256 ed6fa7d4.*expected 1{64}: the file was deleted"):
        resolve(retinaface_copy.as_uri(), sha256="1" * 64)
    assert list(cache.iterdir()) == []


def test_a_missing_url_is_a_weights_error(tmp_path: Path, cache: Path) -> None:
    with pytest.raises(WeightsError, match=r"cannot download DEM checkpoint from file://.*gone\.pt"):
        resolve((tmp_path / "gone.pt").as_uri(), what="DEM checkpoint")


def test_a_known_name_downloads_its_spec_and_runs_with_its_settings(retinaface_copy: Path, cache: Path) -> None:
    shipped = next(k for k in KNOWN_WEIGHTS if k.sha256 == RETINAFACE_SHA256)
    assert shipped.config == "mobilenet0.25-1mb" and shipped.preprocessing == PREPROCESSING
    mirror = WeightsSpec(shipped.name, retinaface_copy.as_uri(), shipped.sha256, shipped.config, shipped.preprocessing)
    path = resolve(shipped.name, known=[mirror])
    assert path == cache / shipped.filename
    assert load_retinaface(path).cfg.name == shipped.config  # the checksum picks the training settings
    # With nothing given, a known file already in the cache is used.
    assert resolve(None, known=[mirror]) == path


def test_facenet_mtcnn_weights_through_the_cache(cache: Path) -> None:
    for source in mtcnn_files():
        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        spec = WeightsSpec(f"mtcnn-{source.stem}", source.as_uri(), digest, suffix=".pt")
        cached = resolve(spec.name, known=[spec])
        assert cached == cache / f"mtcnn-{source.stem}.pt"
        original = torch.load(source, map_location="cpu", weights_only=True)
        loaded = torch.load(cached, map_location="cpu", weights_only=True)
        assert original.keys() == loaded.keys() and len(loaded) > 0
        assert all(torch.equal(original[k], loaded[k]) for k in original)
        with pytest.raises(WeightsError, match="expected 0{64}"):
            resolve(cached, sha256="0" * 64)


def test_dem_checkpoint_from_a_url_with_its_preprocessing(tmp_path: Path, cache: Path) -> None:
    config = DemConfig(
        backbone="vgg16",
        input_scale=0.125,
        width=0.0625,
        batch_norm=True,
        head="pool",
        dvpm_width=0.5,
        feature_grid=(4, 2),
    )
    torch.manual_seed(0)
    ovpm, dvpm = build_pair(config)
    saved = ckpt.save(tmp_path / "run" / "dem.pt", config, ovpm, dvpm)
    digest = sha256_of(saved)
    pair = ckpt.load(saved.as_uri(), sha256=digest)
    assert pair.info.path is not None and Path(pair.info.path).parent == cache.resolve()
    assert pair.weights.sha256 == digest and pair.weights.config == config
    assert pair.weights.preprocessing["size_hw"] == config.input_size
    assert pair.weights.preprocessing["colour_order"] == "RGB"
    assert all(torch.equal(a, b) for a, b in zip(pair.ovpm.state_dict().values(), ovpm.state_dict().values()))
    with pytest.raises(WeightsError, match="expected 0{64}"):
        ckpt.load(saved, sha256="0" * 64)
