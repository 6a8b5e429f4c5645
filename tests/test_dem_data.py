"""DISFA+ layout loader on a generated folder, its errors, and the train/evaluate commands end to end."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stream.au.dem.commands import add_evaluate_arguments, add_train_arguments, run_evaluate, run_train
from stream.au.dem.data import DatasetLayoutError, PrepareSettings, load_dataset, read_label_file, scan_dataset
from stream.aus import AU_NAMES
from stream.face.detect import FaceDetector, register_detector
from stream.types import Face


class FixedFaceDetector(FaceDetector):
    """A face at fixed landmarks (generated images hold no real face)."""

    name = "test-fixed"

    def detect_all(self, image: np.ndarray) -> list[Face]:
        landmarks = np.array([[44.0, 50.0], [84.0, 50.0], [64.0, 73.0], [50.0, 95.0], [78.0, 95.0]])
        return [Face(np.array([20.0, 20.0, 108.0, 120.0]), landmarks, 0.99)]


register_detector("test-fixed")(lambda **_: FixedFaceDetector())

# A training run small enough for a test: the light preset at 1/8 scale, one epoch of each stage.
TINY_TRAINING = [
    *("--preset", "light", "--input-scale", "0.125", "--width", "0.0625"),
    *("--epochs", "1", "--dvpm-epochs", "1", "--split", "video", "--max-pairs", "20"),
]


def dataset_arguments(data: Path, cache: Path, detector: str) -> list[str]:
    """The dataset options that the tests' DEM train and evaluate commands share."""
    return ["--data", str(data), "--cache", str(cache), "--detector", detector, "--no-keyframe-filter", "--no-progress"]


def make_disfa_plus(
    root: Path, subjects=("SN001", "SN003"), trials=("A1_AU1_TrailNo_1", "B2_AU6_TrailNo_2"), frames=4
) -> Path:
    """DISFA+-shaped folder: images whose mouth-bar length follows the AU12 label; 2-line headers."""
    rng = np.random.default_rng(0)
    for subject in subjects:
        for trial in trials:
            img_dir, lab_dir = root / "Images" / subject / trial, root / "Labels" / subject / trial
            img_dir.mkdir(parents=True)
            lab_dir.mkdir(parents=True)
            values = rng.integers(0, 6, size=(frames, len(AU_NAMES)))
            for f in range(frames):
                image = np.full((128, 128, 3), 90, dtype=np.uint8)
                image[90:100, 30 : 40 + 10 * values[f, 6]] = 220  # big changes so the keyframe filter keeps frames
                image[30:40, 20 : 20 + 15 * values[f, 0]] = 30
                cv2.imwrite(str(img_dir / f"{f:03d}.jpg"), image)
            for a, au in enumerate(AU_NAMES):
                rows = "".join(f"{f:03d}.jpg     {values[f, a]}\n" for f in range(frames))
                (lab_dir / f"{au}.txt").write_text(f"{subject} {trial} {au}\nFrame   Intensity\n{rows}")
    return root


def test_disfa_plus_layout_is_read_with_labels_merged_per_frame(tmp_path):
    root = make_disfa_plus(tmp_path / "DISFAPlus")
    (root / "Labels" / "SN001" / "A1_AU1_TrailNo_1" / "AU12_left.txt").write_text(
        "".join(f"{f:03d}.jpg  5\n" for f in range(4))
    )

    trials = scan_dataset(root)

    assert [t.video for t in trials] == [
        "SN001/A1_AU1_TrailNo_1",
        "SN001/B2_AU6_TrailNo_2",
        "SN003/A1_AU1_TrailNo_1",
        "SN003/B2_AU6_TrailNo_2",
    ]
    first = trials[0]
    assert [p.name for p in first.images] == ["000.jpg", "001.jpg", "002.jpg", "003.jpg"]
    au1 = read_label_file(root / "Labels/SN001/A1_AU1_TrailNo_1/AU1.txt")
    assert first.labels["002.jpg"][1, 0] == au1["002.jpg"]
    assert first.labels["002.jpg"][0, AU_NAMES.index("AU12")] == 5  # the per-side file overrides for the patient's left


def test_prepared_half_faces_are_cached_and_reused(tmp_path):
    root = make_disfa_plus(tmp_path / "DISFAPlus")
    settings = PrepareSettings(detector="test-fixed", keyframe_threshold=None)
    data = load_dataset(root, (64, 32), tmp_path / "cache", settings)
    assert len(data) == 16 and data.images.shape == (16, 2, 64, 32, 3)
    assert set(data.video) == {
        "SN001/A1_AU1_TrailNo_1",
        "SN001/B2_AU6_TrailNo_2",
        "SN003/A1_AU1_TrailNo_1",
        "SN003/B2_AU6_TrailNo_2",
    }
    assert (tmp_path / "cache" / "SN001" / "A1_AU1_TrailNo_1.npz").is_file()
    shutil.rmtree(root / "Images" / "SN001" / "A1_AU1_TrailNo_1")  # an emptied trial folder is an error, cache or not
    (root / "Images" / "SN001" / "A1_AU1_TrailNo_1").mkdir()
    with pytest.raises(DatasetLayoutError, match="holds no images"):
        load_dataset(root, (64, 32), tmp_path / "cache", settings)
    train, test = data.split(0.5, by="subject", seed=0)
    assert set(train.subject).isdisjoint(set(test.subject))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda r: shutil.rmtree(r / "Labels"), "has no Labels/ folder"),
        (lambda r: (r / "Labels/SN003/B2_AU6_TrailNo_2/AU26.txt").unlink(), r"has no AU26.txt"),
        (lambda r: shutil.rmtree(r / "Labels/SN003/B2_AU6_TrailNo_2"), "have no label folder"),
        (
            lambda r: (r / "Labels/SN001/A1_AU1_TrailNo_1/AU4.txt").write_text("h1\nh2\n000.jpg  2\n001.jpg  seven\n"),
            "line 4",
        ),
        (lambda r: (r / "Labels/SN001/A1_AU1_TrailNo_1/AU4.txt").write_text("000.jpg 9\n"), "outside 0..5"),
        (
            lambda r: (r / "Labels/SN001/A1_AU1_TrailNo_1/AU9.txt").write_text("000.jpg 1\n001.jpg 1\n"),
            r"2 of 4 images have no label .*AU9.txt",
        ),
    ],
)
def test_malformed_folder_fails_with_a_precise_message(tmp_path, damage, message):
    root = make_disfa_plus(tmp_path / "DISFAPlus")
    damage(root)
    with pytest.raises(DatasetLayoutError, match=message):
        scan_dataset(root)


@pytest.mark.slow  # trains and evaluates a DEM pair through the commands
def test_train_then_evaluate_commands_on_a_folder(tmp_path, capsys):
    torch.manual_seed(0)
    root = make_disfa_plus(tmp_path / "DISFAPlus", frames=6)
    common = dataset_arguments(root, tmp_path / "cache", "test-fixed")
    train_parser = argparse.ArgumentParser()
    add_train_arguments(train_parser)
    run = tmp_path / "run"
    args = train_parser.parse_args([*common, "--out", str(run), *TINY_TRAINING])
    assert run_train(args) == 0
    assert {"ovpm.pt", "dem.pt", "split.json", "ovpm.state.pt"} <= {p.name for p in run.iterdir()}
    assert run_train(args) == 0  # a rerun resumes: nothing left to train

    eval_parser = argparse.ArgumentParser()
    add_evaluate_arguments(eval_parser)
    assert run_evaluate(eval_parser.parse_args(common + ["--checkpoint", str(run / "dem.pt"), "--m", "0,2"])) == 0
    result = json.loads((run / "dem_eval.json").read_text())
    assert set(result["by_m"]) == {"0", "2"} and result["keyframes"] == 6  # one held-out video of 6 frames
    assert "| m | accuracy | MAE | ICC(3,1) | PCC | ms per keyframe |" in (run / "dem_eval.md").read_text()
    assert (run / "dem_figure6.svg").read_text().startswith("<svg")

    bad = eval_parser.parse_args(
        ["--data", str(tmp_path / "nowhere"), "--checkpoint", str(run / "dem.pt"), "--no-progress"]
    )
    assert run_evaluate(bad) == 2
    assert "does not exist" in capsys.readouterr().err


def test_pipeline_runs_the_dem_estimator_from_a_checkpoint(tmp_path):
    from stream.au.dem import checkpoint as ckpt
    from stream.au.dem.estimator import DemEstimator
    from stream.au.dem.models import DemConfig, build_pair
    from stream.config import AnalysisConfig
    from stream.pipeline import Pipeline
    from stream.types import Frame

    config = DemConfig(
        backbone="vgg16", input_scale=0.125, width=0.0625, batch_norm=True, head="pool", feature_grid=(4, 2)
    )
    torch.manual_seed(0)
    ovpm, dvpm = build_pair(config)
    ckpt.save(tmp_path / "dem.pt", config, ovpm, dvpm)
    pipeline = Pipeline(
        AnalysisConfig(estimator="dem", checkpoint=str(tmp_path / "dem.pt"), helpers=2, keyframe_threshold=0.0),
        detector=FixedFaceDetector(),
    )
    assert isinstance(pipeline.estimator, DemEstimator)
    rng = np.random.default_rng(0)
    helpers_used = []
    for i in range(5):
        _, analysed = pipeline.process(Frame(i, i / 30, rng.integers(0, 256, size=(128, 128, 3), dtype=np.uint8)))
        helpers_used.append(analysed.estimate.n_helpers)
    assert helpers_used == [0, 1, 2, 2, 2]  # helpers come from the session's buffer, up to m = 2
    assert pipeline.buffer.nbytes == sum(code.nbytes for code in pipeline.buffer)
