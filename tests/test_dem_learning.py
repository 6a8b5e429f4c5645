"""DEM learns on a tiny rendered dataset: OVPM above chance, DVPM learns differences, DEM (m >= 2) beats OVPM.

Half-faces are 64x32 grey images with three bars (brows, eyes, mouth); a bar's length encodes its
region's intensity 0..5, which is the label of the region's AUs. Each video has its own background,
brightness and bar start (an identity); each frame adds strong pixel noise and 1-px jitter, so a single
OVPM reading is noisy and averaging over helpers of the same video helps, as in the paper.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stream.au.dem.data import HalfFaceSet
from stream.au.dem.estimator import DemEstimator
from stream.au.dem.evaluate import evaluate_codes
from stream.au.dem.models import DemConfig, build_pair
from stream.au.dem.train import TrainSettings, train_dvpm, train_ovpm
from stream.aus import AU_INDEX, REGIONS

# Region of each AU; AU9 and AU26 belong to no region of the paper: they follow the eyes and the mouth.
REGION_OF_AU = np.zeros(12, dtype=int)
for r, aus in enumerate(REGIONS.values()):
    REGION_OF_AU[[AU_INDEX[a] for a in aus]] = r
REGION_OF_AU[AU_INDEX["AU9"]], REGION_OF_AU[AU_INDEX["AU26"]] = 1, 2


def rendered_set(n_videos: int, frames_per_video: int, seed: int, noise: float = 40.0) -> HalfFaceSet:
    rng = np.random.default_rng(seed)
    h, w = 64, 32
    n = n_videos * frames_per_video
    level = rng.integers(0, 6, size=(n, 2, 3))
    images = np.empty((n, 2, h, w, 3), dtype=np.uint8)
    i = 0
    for _ in range(n_videos):
        background, brightness, start = rng.uniform(40, 100), rng.uniform(150, 220), int(rng.integers(1, 4))
        for _ in range(frames_per_video):
            for side in range(2):
                img = np.full((h, w), background)
                for region in range(3):
                    y = 6 + 20 * region + int(rng.integers(-1, 2))
                    x = start + int(rng.integers(-1, 2))
                    img[y : y + 10, x : x + 3 + 5 * level[i, side, region]] = brightness
                img += rng.normal(0, noise, size=img.shape)
                images[i, side] = np.clip(img, 0, 255).astype(np.uint8)[..., None]
            i += 1
    video = np.repeat([f"S{v % 3}/T{seed}-{v}" for v in range(n_videos)], frames_per_video).astype(object)
    subject = np.array([v.split("/")[0] for v in video], dtype=object)
    return HalfFaceSet(images, level[:, :, REGION_OF_AU], video, subject, np.arange(n).astype(str).astype(object))


CONFIG = DemConfig(
    backbone="vgg16", input_scale=0.125, width=0.0625, batch_norm=True, head="vgg", dvpm_width=0.5, feature_grid=(8, 4)
)


@pytest.mark.slow
def test_dem_with_helpers_beats_ovpm_alone_on_held_out_videos():
    torch.manual_seed(0)
    train, test = rendered_set(8, 16, seed=0), rendered_set(4, 16, seed=1)
    ovpm, dvpm = build_pair(CONFIG)

    train_ovpm(ovpm, train, TrainSettings(epochs=10, lr=1e-3, batch_size=32))
    history = train_dvpm(ovpm, dvpm, train, TrainSettings(epochs=5, lr=1e-3, batch_size=32), val=test, max_pairs=960)
    est = DemEstimator(ovpm, dvpm, "cpu")
    codes = [est.encode_halves(test.images[i], i) for i in range(len(test))]
    result = evaluate_codes(est, codes, test, ms=[0, 2, 4], seed=0)

    ovpm_alone, dem2, dem4 = (result[m]["metrics"] for m in (0, 2, 4))
    assert ovpm_alone["accuracy"]["mean"] > 1 / 6 + 0.04  # OVPM learnt: above chance over 6 classes (0.29 seen)
    assert history[-1]["val_accuracy"] > 1 / 11 + 0.1  # DVPM learnt differences: above chance over 11 classes
    assert dem2["mae"]["mean"] < ovpm_alone["mae"]["mean"] - 0.05  # DEM with helpers beats the OVPM alone
    assert dem4["mae"]["mean"] < ovpm_alone["mae"]["mean"] - 0.05
    assert dem2["accuracy"]["mean"] > ovpm_alone["accuracy"]["mean"]
