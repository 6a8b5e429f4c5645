"""``python -m stream train`` and ``python -m stream evaluate`` for the DEM (the CLI calls these).

A run folder holds everything of one training run::

    RUN_DIR/ovpm.pt            stage 1 result (an OVPM without DVPM; not usable for analysis alone)
    RUN_DIR/ovpm.state.pt      resumable OVPM state (model, optimiser, scheduler, epoch, history)
    RUN_DIR/dvpm-<fp>.state.pt resumable DVPM state, tied to the OVPM fingerprint <fp>
    RUN_DIR/dem.pt             the matched pair: pass it to --checkpoint
    RUN_DIR/split.json         pre-processing settings and the held-out (test) keyframes

Rerunning the same command resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from stream.config import AnalysisConfig
from stream.errors import StreamError, exit_code

if TYPE_CHECKING:
    from stream.au.dem.data import HalfFaceSet, PrepareSettings
    from stream.au.dem.models import DVPM, OVPM


def _ms(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated helper counts like 0,1,2,4,8, got {text!r}"
        ) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"helper counts must be >= 0, got {text!r}")
    return values


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("dataset (DISFA+ layout, docs/dem.md)")
    g.add_argument(
        "--data",
        required=True,
        help="dataset folder: Images/<subject>/<trial>/*.jpg and Labels/<subject>/<trial>/AU<n>.txt",
    )
    g.add_argument("--cache", default=None, help="folder for prepared half-faces (default DATA/.stream_cache)")
    g.add_argument("--detector", default="mtcnn", help="face detector used for pre-processing (default mtcnn)")
    g.add_argument(
        "--keyframe-threshold",
        type=float,
        default=AnalysisConfig.keyframe_threshold,
        help="keyframe filter threshold in grey levels (default %(default)s, as for analysis)",
    )
    g.add_argument("--no-keyframe-filter", action="store_true", help="use every frame with a face, not only keyframes")
    g.add_argument("--seed", type=int, default=0, help="seed of splits, shuffles, pairs and helper draws (default 0)")
    g.add_argument("--device", default=None, help="torch device (default: CUDA when available, else CPU)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser)
    parser.add_argument("--out", required=True, help="run folder (created; rerun to resume)")
    m = parser.add_argument_group("model")
    m.add_argument(
        "--preset",
        default="default",
        choices=["default", "paper", "light"],
        help="default: VGG-19 at 512x256 with light DVPM; paper: faithful full DVPM; light: CPU 128x64",
    )
    m.add_argument("--backbone", default=None, choices=["vgg19", "vgg16", "resnet50", "mobilenet_v3_large"])
    m.add_argument("--input-scale", type=float, default=None, help="input size = 512x256 x scale")
    m.add_argument("--width", type=float, default=None, help="OVPM channel multiplier")
    m.add_argument("--imagenet", default=None, help="torchvision ImageNet state-dict file to initialise the OVPM")
    t = parser.add_argument_group("training (paper defaults)")
    t.add_argument("--stage", default="all", choices=["all", "ovpm", "dvpm"], help="train both (default) or one stage")
    t.add_argument(
        "--split",
        default="frame",
        choices=["frame", "subject", "video"],
        help="8:2 split over keyframes (paper) or whole subjects/videos (no identity leakage)",
    )
    t.add_argument("--train-fraction", type=float, default=0.8)
    t.add_argument("--epochs", type=int, default=30, help="OVPM epochs (default 30)")
    t.add_argument("--dvpm-epochs", type=int, default=30, help="DVPM epochs (default 30)")
    t.add_argument("--lr", type=float, default=1e-4, help="initial learning rate (paper 1e-4)")
    t.add_argument("--gamma", type=float, default=0.98, help="exponential decay per epoch (paper 0.98)")
    t.add_argument("--batch-size", type=int, default=64, help="OVPM batch (paper 64)")
    t.add_argument("--dvpm-batch-size", type=int, default=16, help="DVPM batch (paper 16)")
    t.add_argument(
        "--max-pairs", type=int, default=80_000, help="DVPM training pairs, same-video, no duplicates (paper ~78,400)"
    )


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser)
    parser.add_argument("--checkpoint", required=True, help="dem.pt (or its run folder)")
    parser.add_argument(
        "--subset",
        default="test",
        choices=["test", "all"],
        help="test: the held-out keyframes recorded in the run's split.json (default); all: every keyframe",
    )
    parser.add_argument("--m", type=_ms, default=[0, 1, 2, 4, 8], help="helper counts (default 0,1,2,4,8)")
    parser.add_argument(
        "--out", default=None, help="folder for dem_eval.md/.json and dem_figure6.svg (default: the run folder)"
    )


def _prepare_settings(args: argparse.Namespace) -> PrepareSettings:
    from stream.au.dem.data import PrepareSettings

    return PrepareSettings(
        detector=args.detector, keyframe_threshold=None if args.no_keyframe_filter else args.keyframe_threshold
    )


def run_train(args: argparse.Namespace) -> int:
    try:
        return _train(args)
    except StreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


def _train(args: argparse.Namespace) -> int:
    import torch

    from stream.au.dem import checkpoint as ckpt
    from stream.au.dem.data import load_dataset
    from stream.au.dem.models import build_pair, load_imagenet, preset
    from stream.au.dem.train import TrainSettings, settings_record, train_dvpm, train_ovpm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = not args.no_progress
    ovpm_file = out / "ovpm.pt"
    if ovpm_file.is_file():
        config, _, earlier = ckpt.load_ovpm(ovpm_file)  # a run keeps its architecture (verified like any checkpoint)
        preset_name = earlier.get("preset", args.preset)
    else:
        config = preset(args.preset, backbone=args.backbone, input_scale=args.input_scale, width=args.width)
        preset_name = args.preset
    prepare = _prepare_settings(args)
    data = load_dataset(args.data, config.input_size, args.cache, prepare, progress=progress)
    train, test = data.split(args.train_fraction, by=args.split, seed=args.seed)
    (out / "split.json").write_text(
        json.dumps(
            {
                "data": str(Path(args.data).resolve()),
                "prepare": prepare.key(),
                "split": args.split,
                "seed": args.seed,
                "train_fraction": args.train_fraction,
                "test": [[str(v), str(f)] for v, f in zip(test.video, test.frame)],
            },
            indent=1,
        )
    )
    print(
        f"{len(train)} training and {len(test)} held-out keyframes ({args.split} split), "
        f"model input {config.input_size}",
        file=sys.stderr,
    )

    if args.stage in ("all", "ovpm"):
        torch.manual_seed(args.seed)
        ovpm, _ = build_pair(config)
        state = out / "ovpm.state.pt"
        if args.imagenet and not state.is_file():
            skipped = load_imagenet(ovpm, args.imagenet)
            print(f"ImageNet initialisation from {args.imagenet}; {len(skipped)} tensors left fresh", file=sys.stderr)
        s1 = TrainSettings(args.epochs, args.lr, args.gamma, args.batch_size, args.seed)
        history = train_ovpm(ovpm, train, s1, val=test, state_path=state, progress=progress, device=args.device)
        record = settings_record(
            s1, history, prepare=prepare.key(), preset=preset_name, data=_dataset_record(args, data, train, test)
        )
        ckpt.save(ovpm_file, config, ovpm.cpu(), None, ovpm_record=record)
        print(f"OVPM written to {ovpm_file}", file=sys.stderr)
    if args.stage in ("all", "dvpm"):
        if not ovpm_file.is_file():
            print(f"error: {ovpm_file} not found: train the OVPM first (--stage ovpm or all)", file=sys.stderr)
            return 2
        config, ovpm, ovpm_record = ckpt.load_ovpm(ovpm_file)
        fp = ckpt.fingerprint(ovpm, config)
        _, dvpm = build_pair(config)
        s2 = TrainSettings(args.dvpm_epochs, args.lr, args.gamma, args.dvpm_batch_size, args.seed)
        history = train_dvpm(
            ovpm,
            dvpm,
            train,
            s2,
            val=test,
            max_pairs=args.max_pairs,
            state_path=out / f"dvpm-{fp[:12]}.state.pt",
            progress=progress,
            device=args.device,
        )
        held_out = _held_out_record(ovpm, dvpm, test, args)
        path = ckpt.save(
            out / "dem.pt",
            config,
            ovpm.cpu(),
            dvpm.cpu(),
            ovpm_record=ovpm_record,
            dvpm_record=settings_record(s2, history, max_pairs=args.max_pairs, held_out=held_out),
        )
        print(f"DEM pair written to {path}: analyse with --estimator dem --checkpoint {path}", file=sys.stderr)
    return 0


def _dataset_record(args: argparse.Namespace, data: HalfFaceSet, train: HalfFaceSet, test: HalfFaceSet) -> dict:
    """What a report says about the training set: name and size, and how it was split."""
    return {
        "name": Path(args.data).resolve().name,
        "keyframes": len(data),
        "videos": len(set(data.video)),
        "subjects": len(set(data.subject)),
        "train_keyframes": len(train),
        "held_out_keyframes": len(test),
        "split": args.split,
        "train_fraction": args.train_fraction,
        "seed": args.seed,
    }


def _held_out_record(ovpm: OVPM, dvpm: DVPM, test: HalfFaceSet, args: argparse.Namespace) -> dict | None:
    """The pair's figures on the held-out keyframes at m = 0 and at the analysis default m, kept in dem.pt."""
    from stream.au.dem.estimator import DemEstimator
    from stream.au.dem.evaluate import evaluate

    if len(test) == 0:
        return None
    ms = sorted({0, AnalysisConfig.helpers})
    est = DemEstimator(ovpm, dvpm, args.device)
    result = evaluate(est, test, ms, seed=args.seed)
    by_m = {str(m): {k: result["by_m"][m]["metrics"][k]["mean"] for k in ("accuracy", "mae", "icc", "pcc")} for m in ms}
    return {"keyframes": result["keyframes"], "videos": result["videos"], "split": args.split, "by_m": by_m}


def run_evaluate(args: argparse.Namespace) -> int:
    try:
        return _evaluate(args)
    except StreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_code(exc)


def _evaluate(args: argparse.Namespace) -> int:
    from stream.au.dem.data import load_dataset
    from stream.au.dem.estimator import build_dem
    from stream.au.dem.evaluate import evaluate, figure6_svg, format_tables
    from stream.errors import InputError

    est = build_dem(checkpoint=args.checkpoint, device=args.device)
    run_dir = Path(args.checkpoint) if Path(args.checkpoint).is_dir() else Path(args.checkpoint).parent
    data = load_dataset(
        args.data, est.config.input_size, args.cache, _prepare_settings(args), progress=not args.no_progress
    )
    if args.subset == "test":
        split_file = run_dir / "split.json"
        if not split_file.is_file():
            raise InputError(
                f"{split_file} not found: pass --subset all, or evaluate a checkpoint inside its run folder"
            )
        split = json.loads(split_file.read_text())
        if split.get("prepare") != _prepare_settings(args).key():
            raise InputError(
                f"pre-processing flags differ from the training run's ({split.get('prepare')}): use the same "
                "--detector/--keyframe-threshold/--no-keyframe-filter as for training"
            )
        wanted = {(v, f) for v, f in split["test"]}
        rows = [i for i, (v, f) in enumerate(zip(data.video, data.frame)) if (str(v), str(f)) in wanted]
        if not rows:
            raise InputError(f"none of the {len(wanted)} held-out keyframes of {split_file} is in {args.data}")
        data = data.subset(np.array(rows))
    result = evaluate(est, data, args.m, seed=args.seed, progress=not args.no_progress)
    out = Path(args.out) if args.out else run_dir
    out.mkdir(parents=True, exist_ok=True)
    table = format_tables(result)
    (out / "dem_eval.md").write_text(table)
    (out / "dem_eval.json").write_text(
        json.dumps(result, indent=1, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o))
    )
    (out / "dem_figure6.svg").write_text(figure6_svg(result))
    print(table.split("\n\nPer AU")[0])
    print(f"written: {out / 'dem_eval.md'}, {out / 'dem_eval.json'}, {out / 'dem_figure6.svg'}", file=sys.stderr)
    return 0
