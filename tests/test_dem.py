"""DEM estimator: eq. 3 through the public interface, checkpoints as matched pairs, refusals."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stream.au.base import build_estimator
from stream.au.dem import checkpoint as ckpt
from stream.au.dem.estimator import DemEstimator, DemPayload
from stream.au.dem.models import DVPM_CLASSES, OVPM_CLASSES, DemConfig, build_pair, preset
from stream.buffer import KeyframeBuffer
from stream.errors import CheckpointError
from stream.types import HalfFaces, Keyframe

TINY = DemConfig(
    backbone="vgg16", input_scale=0.125, width=0.0625, batch_norm=True, head="pool", dvpm_width=0.5, feature_grid=(4, 2)
)


def tiny_pair(seed: int = 0):
    torch.manual_seed(seed)
    ovpm, dvpm = build_pair(TINY)
    return ovpm.eval(), dvpm.eval()


def keyframe(index: int, seed: int) -> Keyframe:
    rng = np.random.default_rng(seed)
    aligned = rng.integers(0, 256, size=(512, 512, 3), dtype=np.uint8)
    halves = HalfFaces(left=np.ascontiguousarray(aligned[:, 256:][:, ::-1]), right=aligned[:, :256].copy())
    return Keyframe(index, index / 30.0, halves, aligned)


def constant_output(linear: torch.nn.Linear, classes: int, values: np.ndarray, offset: int = 0) -> None:
    """Make a final layer ignore its input and put (almost) all probability on class values + offset."""
    with torch.no_grad():
        linear.weight.zero_()
        bias = torch.full((len(values), classes), -50.0)
        bias[torch.arange(len(values)), torch.as_tensor(values + offset)] = 50.0
        linear.bias.copy_(bias.flatten())


def test_dem_value_is_the_mean_of_helper_values_plus_differences():
    ovpm, dvpm = tiny_pair()
    delta = np.array([-2, -1, 0, 1, 2, 3, -5, 5, 0, 1, -1, 2])
    constant_output(dvpm.head[-1], DVPM_CLASSES, delta, offset=DVPM_CLASSES // 2)
    constant_output(ovpm.trunk.classifier[-1], OVPM_CLASSES, np.full(12, 4))
    est = DemEstimator(ovpm, dvpm, "cpu")

    current = est.encode(keyframe(10, 0))
    np.testing.assert_allclose(current.own, 4.0, atol=1e-6)
    helper_values = [np.full((2, 12), 1.0), np.tile(np.linspace(0, 5, 12), (2, 1))]
    helpers = [dataclasses.replace(est.encode(keyframe(i, i + 1)), own=v) for i, v in enumerate(helper_values)]

    result = est.estimate(current, helpers)

    # eq. 3: mean_j (Y_j + ΔY_ij), clipped to [0, 5]; not Algorithm 1's Y_i + ΔY
    expected = np.clip(np.mean([v + delta for v in helper_values], axis=0), 0, 5)
    np.testing.assert_allclose(result.left, expected[0], atol=1e-5)
    np.testing.assert_allclose(result.right, expected[1], atol=1e-5)
    assert result.n_helpers == 2
    alone = est.estimate(current, [])
    np.testing.assert_allclose(alone.left, 4.0, atol=1e-6)  # m = 0: the OVPM alone


def test_difference_is_batched_over_helpers_and_sides():
    ovpm, dvpm = tiny_pair()
    est = DemEstimator(ovpm, dvpm, "cpu")
    codes = [est.encode(keyframe(i, i)) for i in range(4)]
    batched = est.difference(codes[0], codes[1:])
    assert batched.shape == (3, 2, 12)
    one_by_one = np.concatenate([est.difference(codes[0], [h]) for h in codes[1:]])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(est.difference(codes[0], [codes[0]]), est.difference(codes[1], [codes[1]]), atol=1e-5)


def test_helper_cache_is_counted_and_half_precision_halves_it():
    ovpm, dvpm = tiny_pair()
    code16 = DemEstimator(ovpm, dvpm, "cpu", torch.float16).encode(keyframe(0, 0))
    code32 = DemEstimator(ovpm, dvpm, "cpu", torch.float32).encode(keyframe(0, 0))
    assert isinstance(code16.payload, DemPayload)
    feature_bytes = sum(f.numel() * f.element_size() for f in code16.payload.features)
    assert code16.nbytes == feature_bytes + code16.own.nbytes
    assert code32.nbytes - code32.own.nbytes == 2 * feature_bytes
    shapes = [tuple(f.shape) for f in code16.payload.features]
    assert shapes == [(2,) + s for s in ovpm.feature_shapes()]
    buffer = KeyframeBuffer(max_keyframes=100, max_bytes=3 * code16.nbytes)
    for i in range(5):
        buffer.add(dataclasses.replace(code16, frame_index=i))
    assert len(buffer) == 3  # bounded by bytes


def test_checkpoint_round_trip_gives_identical_estimates(tmp_path):
    ovpm, dvpm = tiny_pair(1)
    path = ckpt.save(tmp_path / "dem.pt", TINY, ovpm, dvpm)
    est = build_estimator("dem", checkpoint=str(path), device="cpu")
    assert est.name == "dem" and not est.is_proxy
    ref = DemEstimator(ovpm, dvpm, "cpu")
    kf = [keyframe(i, i) for i in range(3)]
    a = est.estimate(est.encode(kf[0]), [est.encode(k) for k in kf[1:]])
    b = ref.estimate(ref.encode(kf[0]), [ref.encode(k) for k in kf[1:]])
    np.testing.assert_allclose(a.left, b.left, atol=1e-6)
    np.testing.assert_allclose(a.right, b.right, atol=1e-6)
    # a run folder works as well as the file
    assert isinstance(build_estimator("dem", checkpoint=str(tmp_path)), DemEstimator)


def test_mismatched_pair_is_refused(tmp_path):
    ovpm_a, dvpm_a = tiny_pair(1)
    ovpm_b, _ = tiny_pair(2)
    # DVPM trained on OVPM a, shipped with OVPM b
    path = ckpt.save(tmp_path / "dem.pt", TINY, ovpm_b, dvpm_a, ovpm_fingerprint=ckpt.fingerprint(ovpm_a, TINY))
    with pytest.raises(CheckpointError, match="retrain the DVPM"):
        build_estimator("dem", checkpoint=str(path))


def test_edited_ovpm_weights_are_refused(tmp_path):
    ovpm, dvpm = tiny_pair(1)
    data = ckpt.pack(TINY, ovpm, dvpm)
    key = next(iter(data["ovpm"]["state_dict"]))
    data["ovpm"]["state_dict"][key] += 1.0
    ckpt.save_sealed(data, tmp_path / "dem.pt")  # even re-sealed, the edit shows in the OVPM's hash
    with pytest.raises(CheckpointError, match=r"the OVPM record \('ovpm'.* does not match the sha256"):
        ckpt.load(tmp_path / "dem.pt")


def test_untrained_dem_is_refused_with_how_to_train(tmp_path):
    with pytest.raises(CheckpointError, match="python -m stream train"):
        build_estimator("dem", checkpoint=None)
    with pytest.raises(CheckpointError, match="python -m stream train"):
        build_estimator("dem", checkpoint=str(tmp_path / "missing.pt"))
    ovpm, _ = tiny_pair()
    ckpt.save(tmp_path / "half.pt", TINY, ovpm, None)  # OVPM trained, DVPM not yet
    with pytest.raises(CheckpointError, match="without its DVPM"):
        build_estimator("dem", checkpoint=str(tmp_path / "half.pt"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable DEM checkpoint"):
        build_estimator("dem", checkpoint=str(tmp_path / "junk.pt"))


@pytest.mark.parametrize("backbone", ["vgg19", "vgg16", "resnet50", "mobilenet_v3_large"])
def test_backbones_expose_stage_features_and_feed_the_dvpm(backbone):
    config = DemConfig(
        backbone=backbone,
        input_scale=0.125,
        width=1.0 if backbone == "resnet50" else 0.25,
        head="pool",
        feature_grid=(4, 2),
    )
    torch.manual_seed(0)
    ovpm, dvpm = build_pair(config)
    x = torch.randn(2, 3, *config.input_size)
    logits, feats = ovpm.eval()(x)
    assert logits.shape == (2, 12, 6)
    assert len(feats) == len(ovpm.stage_channels) >= 4
    cached = ovpm.cached_features(feats)
    assert all(f.shape[-2] <= 4 and f.shape[-1] <= 2 for f in cached)
    assert dvpm.eval()([a - a.flip(0) for a in cached]).shape == (2, 12, 11)


def test_vgg_keeps_torchvision_layout_for_imagenet_weights(tmp_path):
    from torchvision.models import vgg as tv_vgg

    from stream.au.dem.models import load_imagenet

    torch.manual_seed(0)
    reference = {f"features.{k}": v for k, v in tv_vgg.make_layers(tv_vgg.cfgs["D"]).state_dict().items()}  # VGG-16
    ovpm, _ = build_pair(DemConfig(backbone="vgg16", input_scale=0.125, head="pool", feature_grid=(4, 2)))
    ours = {k.removeprefix("trunk."): v.shape for k, v in ovpm.state_dict().items()}
    assert all(ours.get(k) == v.shape for k, v in reference.items())
    torch.save(reference, tmp_path / "vgg16_features.pth")

    missing = load_imagenet(ovpm, str(tmp_path / "vgg16_features.pth"))

    assert missing == ["trunk.classifier.1.bias", "trunk.classifier.1.weight"]  # the new AU head
    assert torch.equal(ovpm.trunk.features[0].weight, reference["features.0.weight"])
    narrow, _ = build_pair(DemConfig(backbone="vgg16", input_scale=0.125, width=0.5, head="pool"))
    with pytest.raises(ValueError, match="shares no layer"):
        load_imagenet(narrow, str(tmp_path / "vgg16_features.pth"))


def test_presets_and_bad_names():
    assert preset("default").backbone == "vgg19" and preset("default").input_size == (512, 256)
    assert preset("light").input_size == (128, 64)
    assert preset("paper").feature_grid is None
    with pytest.raises(ValueError, match="unknown backbone"):
        DemConfig(backbone="alexnet").validate()
    with pytest.raises(ValueError, match="unknown DEM preset"):
        preset("huge")


@pytest.mark.slow  # times the models over repeated runs
def test_bench_reports_ovpm_and_dvpm_apart_with_cache_size():
    from stream.au.dem.bench import bench_dem, format_bench

    result = bench_dem(light=True, ms=[0, 2], repeats=1)
    assert [r["m"] for r in result["rows"]] == [0, 2]
    assert result["rows"][0]["dvpm_ms"] == 0.0 and result["rows"][1]["dvpm_ms"] > 0
    assert [r["m"] for r in result["naive"]] == [2]
    assert result["cache"]["bytes_per_keyframe"] < 64 * 1024
    table = format_bench(result)
    assert "| 2 (naive, no cache) |" in table and "Helper cache:" in table
