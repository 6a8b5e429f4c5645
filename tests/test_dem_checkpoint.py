"""A DEM run on real frames, then everything a user can do to its files: every byte of dem.pt is verified,
a missing part or a damaged state is refused with exit 2 and a message naming the file and the part,
refusals suggest only commands that exist, corrected labels reach the cache, and the estimator says
which model spoke (and when its output is nearly constant).

The dataset is DISFA+-shaped: frames of ../shared/data/d9.mp4 (a real face, real MTCNN detections)
when present, else the generated frames of test_dem_data. Labels are random: nothing here measures
accuracy, only what the files and messages do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from test_dem_data import TINY_TRAINING, dataset_arguments, make_disfa_plus

from stream.au.base import build_estimator
from stream.au.dem import checkpoint as ckpt
from stream.au.dem import constant_output_warning
from stream.au.dem.data import PrepareSettings, load_dataset
from stream.au.dem.estimator import DemEstimator
from stream.au.dem.models import build_pair
from stream.aus import AU_NAMES
from stream.cli import build_parser, main
from stream.errors import CheckpointError

REPO = Path(__file__).resolve().parents[1]
REAL_CLIP = Path(os.environ.get("STREAM_SHARED_DATA", REPO.parent / "shared" / "data")) / "d9.mp4"
SUBJECTS, TRIALS, FRAMES = ("SN001", "SN003"), ("A1_AU1_TrailNo_1", "B2_AU6_TrailNo_2"), 6


def real_disfa_plus(root: Path, clip: Path) -> Path:
    """DISFA+ layout from frames spread over a real clip (each trial a different stretch of it)."""
    n_images = len(SUBJECTS) * len(TRIALS) * FRAMES
    capture = cv2.VideoCapture(str(clip))
    wanted = set(np.linspace(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) - 1, n_images).astype(int).tolist())
    frames, index = [], 0
    while len(frames) < n_images:
        ok, image = capture.read()
        if not ok:
            break
        if index in wanted:  # a third of the size: the face stays ~80 px high and MTCNN runs 9x faster
            frames.append(cv2.resize(image, (image.shape[1] // 3, image.shape[0] // 3), interpolation=cv2.INTER_AREA))
        index += 1
    capture.release()
    assert len(frames) == n_images, f"could not read {n_images} frames of {clip}"
    rng = np.random.default_rng(0)
    k = 0
    for subject in SUBJECTS:
        for trial in TRIALS:
            img_dir, lab_dir = root / "Images" / subject / trial, root / "Labels" / subject / trial
            img_dir.mkdir(parents=True)
            lab_dir.mkdir(parents=True)
            values = rng.integers(0, 6, size=(FRAMES, len(AU_NAMES)))
            for f in range(FRAMES):
                cv2.imwrite(str(img_dir / f"{f:03d}.jpg"), frames[k])
                k += 1
            for a, au in enumerate(AU_NAMES):
                rows = "".join(f"{f:03d}.jpg     {values[f, a]}\n" for f in range(FRAMES))
                (lab_dir / f"{au}.txt").write_text(f"{subject} {trial} {au}\nFrame   Intensity\n{rows}")
    return root


@dataclass(frozen=True)
class Run:
    data: Path
    cache: Path
    folder: Path
    detector: str
    common: list[str]  # dataset flags shared by train and evaluate

    @property
    def dem(self) -> Path:
        return self.folder / "dem.pt"


# Every test but the last trains on real frames through the commands first (the module's `run`): slow.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Run:
    base = tmp_path_factory.mktemp("dem_run")
    if REAL_CLIP.is_file():
        data, detector = real_disfa_plus(base / "DISFAPlus", REAL_CLIP), "mtcnn"
    else:
        data, detector = make_disfa_plus(base / "DISFAPlus", frames=FRAMES), "test-fixed"
    common = dataset_arguments(data, base / "cache", detector)
    torch.manual_seed(0)
    folder = base / "run"
    code = main(["train", *common, "--out", str(folder), *TINY_TRAINING])
    assert code == 0
    return Run(data, base / "cache", folder, detector, common)


def evaluate(common: list[str], checkpoint: Path, out: Path) -> int:
    """The CLI's ``evaluate`` of ``checkpoint`` on every trial at threshold m = 0: its exit code."""
    return main(
        ["evaluate", *common, "--checkpoint", str(checkpoint), "--subset", "all", "--m", "0", "--out", str(out)]
    )


def flipped(source: Path, target: Path, position: int, mask: int = 0x01) -> Path:
    raw = bytearray(source.read_bytes())
    raw[position] ^= mask
    target.write_bytes(bytes(raw))
    return target


def refusal(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        ckpt.load(path)
    message = str(info.value)
    assert str(path) in message  # every refusal names the file
    return message


# --------------------------------------------------------------------------------------------
# Every byte verified


def test_any_flipped_byte_in_dem_pt_is_refused(run, tmp_path):
    raw = run.dem.read_bytes()
    stored = torch.load(run.dem, weights_only=True)
    ckpt.load(run.dem)  # the intact file loads

    # Where the DVPM's largest tensor and the pickled records lie in the file.
    dvpm_tensor = max(stored["dvpm"]["state_dict"].values(), key=torch.Tensor.numel).numpy().tobytes()
    dvpm_at = raw.find(dvpm_tensor)
    assert dvpm_at > 0 and raw.find(dvpm_tensor, dvpm_at + 1) < 0
    with zipfile.ZipFile(run.dem) as z:
        pickle_info = next(i for i in z.infolist() if i.filename.endswith("data.pkl"))
    name_len, extra_len = np.frombuffer(
        raw[pickle_info.header_offset + 26 : pickle_info.header_offset + 30], dtype="<u2"
    )
    pickle_at = pickle_info.header_offset + 30 + int(name_len) + int(extra_len)

    positions = {
        "anywhere": np.linspace(0, len(raw) - 1, 120).astype(int),
        "dvpm": np.linspace(dvpm_at, dvpm_at + len(dvpm_tensor) - 1, 30).astype(int),
        "records": np.linspace(pickle_at, pickle_at + pickle_info.compress_size - 1, 30).astype(int),
        "tail": np.arange(len(raw) - 120, len(raw)),  # central directory end, EOCD and the seal
    }
    target = tmp_path / "dem.pt"
    for where, spots in positions.items():
        for i, position in enumerate(spots):
            message = refusal(flipped(run.dem, target, int(position), 0x01 if i % 2 else 0xFF))
            if where == "dvpm":
                assert "DVPM record ('dvpm'" in message, message


def test_an_edited_dvpm_weight_is_refused_by_the_cli_with_exit_2(run, tmp_path, capsys):
    # Finding 1 of issue 13: one changed DVPM weight, in the saved dict, then re-saved by torch.
    data = torch.load(run.dem, weights_only=True)
    first = next(iter(data["dvpm"]["state_dict"].values()))
    first.view(-1)[0] += 1e-3
    edited = tmp_path / "dem.pt"
    torch.save(data, edited)
    assert "DVPM record ('dvpm'" in refusal(edited)

    code = evaluate(run.common, edited, tmp_path / "eval")
    err = capsys.readouterr().err
    assert code == 2 and str(edited) in err and "DVPM record" in err
    assert not (tmp_path / "eval" / "dem_eval.json").exists()


@pytest.mark.skipif(not REAL_CLIP.is_file(), reason=f"{REAL_CLIP} not found")
def test_analyze_refuses_a_damaged_checkpoint_with_exit_2(run, tmp_path, capsys):
    raw = run.dem.read_bytes()
    stored = torch.load(run.dem, weights_only=True)
    dvpm_at = raw.find(next(iter(stored["dvpm"]["state_dict"].values())).numpy().tobytes())
    damaged = flipped(run.dem, tmp_path / "dem.pt", dvpm_at + 3)
    code = main(
        [
            "analyze",
            str(REAL_CLIP),
            "--estimator",
            "dem",
            "--checkpoint",
            str(damaged),
            "--out",
            str(tmp_path / "report"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and str(damaged) in err and "DVPM record" in err
    assert not (tmp_path / "report" / "report.json").exists()


@pytest.mark.skipif(not REAL_CLIP.is_file(), reason=f"{REAL_CLIP} not found")
def test_a_dem_report_says_which_model_spoke(run, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["analyze", str(REAL_CLIP), "--estimator", "dem", "--checkpoint", str(run.dem), "--out", str(out)])
    capsys.readouterr()
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    stored = torch.load(run.dem, weights_only=True)
    assert report["model"]["estimator"] == "dem" and report["model"]["fingerprint"] == stored["sha256"]
    assert report["model"]["training_set"]["name"] == "DISFAPlus"
    html = (out / "report.html").read_text()
    assert stored["sha256"][:12] in html  # the header names the checkpoint's fingerprint


@pytest.mark.parametrize(
    "part, expected",
    [
        ("ovpm", "OVPM record ('ovpm'"),
        ("dvpm", "DVPM record ('dvpm'"),
        ("config", "model configuration ('config')"),
        ("sha256", "model hash ('sha256')"),
    ],
)
def test_a_dem_pt_missing_a_part_is_refused_naming_it(run, tmp_path, capsys, part, expected):
    # Finding 2: a dem.pt without its "ovpm" entry ended in a KeyError traceback (exit 1).
    data = torch.load(run.dem, weights_only=True)
    del data[part]
    broken = tmp_path / "dem.pt"
    torch.save(data, broken)
    message = refusal(broken)
    assert expected in message and "missing" in message

    code = evaluate(run.common, broken, tmp_path / "eval")
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err


def test_unsealed_old_and_truncated_files_are_refused(run, tmp_path):
    intact = torch.load(run.dem, weights_only=True)
    resaved = tmp_path / "resaved.pt"
    torch.save(intact, resaved)  # same content, but not written (and sealed) by stream
    assert "carries no seal" in refusal(resaved)

    old = dict(intact, format="stream-dem/1")
    torch.save(old, tmp_path / "old.pt")
    assert "'stream-dem/1'" in refusal(tmp_path / "old.pt")

    (tmp_path / "cut.pt").write_bytes(run.dem.read_bytes()[: run.dem.stat().st_size // 2])
    assert "not a readable DEM checkpoint" in refusal(tmp_path / "cut.pt")


def test_a_damaged_training_state_is_refused_on_resume(run, tmp_path, capsys):
    folder = tmp_path / "run"
    shutil.copytree(run.folder, folder)
    state = folder / "ovpm.state.pt"
    flipped(state, state, state.stat().st_size // 2)
    code = main(["train", *run.common, "--out", str(folder), "--epochs", "1", "--dvpm-epochs", "1", "--split", "video"])
    err = capsys.readouterr().err
    assert code == 2 and str(state) in err and "resumable training state" in err


# --------------------------------------------------------------------------------------------
# Refusals suggest only commands that exist


def refusal_messages(run: Run, tmp: Path) -> list[str]:
    messages = []

    def collect(fn) -> None:
        with pytest.raises(CheckpointError) as info:
            fn()
        messages.append(str(info.value))

    collect(lambda: build_estimator("dem", checkpoint=None))
    collect(lambda: build_estimator("dem", checkpoint=str(tmp / "missing.pt")))
    collect(lambda: ckpt.load(run.folder / "ovpm.pt"))  # stage 1 only: no DVPM yet
    stored = torch.load(run.dem, weights_only=True)
    pair = ckpt.load(run.dem)
    torch.manual_seed(99)
    other_ovpm, _ = build_pair(pair.config)  # the DVPM below was trained on another OVPM
    mismatched = ckpt.save(
        tmp / "mismatched.pt", pair.config, other_ovpm, pair.dvpm, ovpm_fingerprint=pair.ovpm_fingerprint
    )
    collect(lambda: ckpt.load(mismatched))
    (tmp / "junk.pt").write_bytes(b"not a checkpoint")
    collect(lambda: ckpt.load(tmp / "junk.pt"))
    collect(lambda: ckpt.load(flipped(run.dem, tmp / "flipped.pt", run.dem.stat().st_size // 2)))
    torch.save({k: v for k, v in stored.items() if k != "ovpm"}, tmp / "no_ovpm.pt")
    collect(lambda: ckpt.load(tmp / "no_ovpm.pt"))
    torch.save(dict(stored, format="stream-dem/1"), tmp / "old.pt")
    collect(lambda: ckpt.load(tmp / "old.pt"))
    collect(
        lambda: ckpt.load_sealed(
            flipped(run.folder / "ovpm.state.pt", tmp / "state.pt", 100),
            "resumable training state",
            "delete it and rerun the same `python -m stream train` command",
        )
    )
    return messages


def test_refusals_suggest_only_commands_that_exist(run, tmp_path):
    # Finding 3: the mismatched-pair refusal suggested `train --stage dvpm --resume RUN_DIR` (no --resume).
    messages = refusal_messages(run, tmp_path)
    suggested = {c for m in messages for c in re.findall(r"`(python -m stream [^`]*)`", m)}
    assert any("--stage dvpm" in c for c in suggested)  # the mismatched pair and the stage-1 file
    assert not any("--resume" in m for m in messages)
    parser = build_parser()
    helps: dict[str, str] = {}
    for command in sorted(suggested):
        argv = command.split()[3:]
        if len(argv) > 1:
            parser.parse_args(argv)  # every flag and value of the suggestion parses (SystemExit otherwise)
        sub = argv[0]
        if sub not in helps:
            done = subprocess.run(
                [sys.executable, "-m", "stream", sub, "--help"], capture_output=True, text=True, cwd=REPO, timeout=120
            )
            assert done.returncode == 0, done.stderr
            helps[sub] = done.stdout
        for flag in (a for a in argv if a.startswith("--")):
            assert flag in helps[sub], f"{command}: {flag} is not an option of `{sub}`"


# --------------------------------------------------------------------------------------------
# The cache follows the label files


def test_corrected_labels_are_used_and_the_rebuild_is_said(run, tmp_path, capsys):
    # Finding 4: after correcting AU4 labels, the cache returned the old ones and evaluate did not change.
    data, cache = tmp_path / "DISFAPlus", tmp_path / "cache"
    shutil.copytree(run.data, data)
    shutil.copytree(run.cache, cache)
    common = dataset_arguments(data, cache, run.detector)
    settings = PrepareSettings(detector=run.detector, keyframe_threshold=None)
    size = ckpt.load(run.dem).config.input_size

    def evaluate_all(out: str) -> dict:
        assert evaluate(common, run.dem, tmp_path / out) == 0
        return json.loads((tmp_path / out / "dem_eval.json").read_text())["by_m"]["0"]["metrics"]

    before = evaluate_all("before")
    assert "changed" not in capsys.readouterr().err  # a copied cache stays valid: its keys are contents, not paths
    trial = data / "Labels" / "SN001" / "A1_AU1_TrailNo_1"
    (trial / "AU4.txt").write_text(
        "SN001 A1_AU1_TrailNo_1 AU4\nFrame   Intensity\n" + "".join(f"{f:03d}.jpg  5\n" for f in range(FRAMES))
    )

    after = evaluate_all("after")
    err = capsys.readouterr().err
    assert "labels of SN001/A1_AU1_TrailNo_1 changed since they were cached (AU4.txt): cache entry rebuilt" in err
    assert after["mae"]["AU4"] != before["mae"]["AU4"]
    assert after["mae"]["AU12"] == before["mae"]["AU12"]  # only what changed changes

    loaded = load_dataset(data, size, cache, settings)
    rows = loaded.video == "SN001/A1_AU1_TrailNo_1"
    assert rows.any() and (loaded.labels[rows][:, :, AU_NAMES.index("AU4")] == 5).all()
    assert "changed" not in capsys.readouterr().err  # rebuilt once, then current

    (data / "Images" / "SN003" / "B2_AU6_TrailNo_2" / "005.jpg").unlink()
    fewer = load_dataset(data, size, cache, settings)
    assert (
        "images of SN003/B2_AU6_TrailNo_2 changed since they were cached: half-faces prepared again"
        in capsys.readouterr().err
    )
    assert len(fewer) == len(loaded) - 1


# --------------------------------------------------------------------------------------------
# Which model spoke


def test_model_info_names_the_checkpoint_training_set_and_held_out_figures(run):
    est = build_estimator("dem", checkpoint=str(run.folder), device="cpu")
    info = est.model_info()
    json.dumps(info, allow_nan=False)  # report-ready
    stored = torch.load(run.dem, weights_only=True)
    split = json.loads((run.folder / "split.json").read_text())

    assert info["estimator"] == "dem" and info["proxy"] is False
    assert info["checkpoint"] == str(run.dem.resolve())
    assert info["fingerprint"] == stored["sha256"] and re.fullmatch(r"[0-9a-f]{64}", info["fingerprint"])
    assert info["preset"] == "light, input_scale 0.125, width 0.0625"
    ts = info["training_set"]
    assert ts["name"] == "DISFAPlus" and ts["split"] == "video"
    assert ts["held_out_keyframes"] == len(split["test"]) > 0
    assert ts["train_keyframes"] + ts["held_out_keyframes"] == ts["keyframes"] and ts["videos"] == 4
    held = info["held_out"]
    assert held["keyframes"] == len(split["test"]) and set(held["by_m"]) == {"0", "2"}
    assert all(0 <= held["by_m"][m]["accuracy"] <= 1 and held["by_m"][m]["mae"] >= 0 for m in ("0", "2"))
    assert info["epochs"] == {"ovpm": 1, "dvpm": 1}
    assert info["fingerprint"][:12] in info["summary"] and "DISFAPlus" in info["summary"]

    # The fingerprint names the weights, not the file: the same models in memory give the same one.
    same = DemEstimator(est.ovpm, est.dvpm, "cpu")
    assert same.model_info()["fingerprint"] == info["fingerprint"]
    assert same.model_info()["checkpoint"] is None and same.model_info()["training_set"] is None


def test_a_nearly_constant_model_output_is_flagged(run):
    est = build_estimator("dem", checkpoint=str(run.dem), device="cpu")
    data = load_dataset(
        run.data, est.config.input_size, run.cache, PrepareSettings(detector=run.detector, keyframe_threshold=None)
    )
    with torch.no_grad():  # an "under-trained" pair: uniform class probabilities, every AU reads 2.5
        for layer in (est.ovpm.trunk.classifier[-1], est.dvpm.head[-1]):
            layer.weight.zero_()
            layer.bias.zero_()
    codes = [est.encode_halves(data.images[i], i) for i in range(len(data))]
    values = np.stack(
        [
            (lambda e: np.stack([e.left, e.right]))(est.estimate(c, codes[max(0, i - 2) : i]))
            for i, c in enumerate(codes)
        ]
    )
    assert values.shape == (len(data), 2, 12) and np.allclose(values, 2.5, atol=1e-3)

    warning = est.constant_output_warning(values)
    assert warning and "nearly constant" in warning and f"across {len(data)} keyframes" in warning
    assert constant_output_warning(data.labels.astype(float)) is None  # the labelled intensities do move


def test_constant_output_warning_in_numbers():
    rng = np.random.default_rng(0)
    flat = 2.5 + rng.normal(0, 0.02, size=(40, 2, 12))
    assert "nearly constant" in constant_output_warning(flat)
    moving = flat.copy()
    moving[:, 1, AU_NAMES.index("AU12")] = np.linspace(0, 3, 40)  # one smile on the patient's right is enough
    assert constant_output_warning(moving) is None
    assert constant_output_warning(flat[:4]) is None  # too few keyframes to judge
    with_gaps = flat.copy()
    with_gaps[::3] = np.nan  # keyframes without an estimate are ignored
    assert "nearly constant" in constant_output_warning(with_gaps)
    twitch = flat.copy()
    twitch[:, 1, AU_NAMES.index("AU12")] += np.linspace(0, 0.2, 40)  # below one quarter step: still constant
    assert "widest: AU12 right" in constant_output_warning(twitch)
