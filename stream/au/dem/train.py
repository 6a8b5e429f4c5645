"""Training of the OVPM (stage 1) and of the DVPM on the frozen OVPM's features (stage 2).

Paper section 3: cross-entropy on intensity classes (OVPM: 0..5, DVPM: ΔY + 5 in 0..10), initial
learning rate 1e-4 with exponential decay 0.98 per epoch, batch 64 (OVPM) and 16 (DVPM). The
optimiser is not named in the paper; we use Adam. DVPM pairs are frames of the same video, each
unordered pair at most once, oriented at random.

Everything is seeded: shuffles use ``seed + epoch``, so a run resumed from its state file continues
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stream.au.dem.checkpoint import load_sealed, save_sealed
from stream.au.dem.data import HalfFaceSet
from stream.au.dem.models import DVPM, DVPM_CLASSES, OVPM, expected_difference, expected_intensity, to_input
from stream.device import torch_device
from stream.errors import InputError
from stream.progress import Progress


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 30
    lr: float = 1e-4  # paper
    gamma: float = 0.98  # paper: exponential decay per epoch
    batch_size: int = 64  # paper: 64 for the OVPM, 16 for the DVPM
    seed: int = 0
    weight_decay: float = 0.0


def _optimiser(
    model: torch.nn.Module, s: TrainSettings
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=s.lr, weight_decay=s.weight_decay)
    return opt, torch.optim.lr_scheduler.ExponentialLR(opt, gamma=s.gamma)


def _resume(
    state_path: Path | None,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[dict]]:
    if state_path is None or not state_path.is_file():
        return 0, []
    state = load_sealed(
        state_path,
        "resumable training state",
        "delete it and rerun the same `python -m stream train` command to train that stage from the start",
    )
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    return int(state["epoch"]), list(state["history"])


def _save_state(
    state_path: Path | None,
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    history: list[dict],
) -> None:
    if state_path is None:
        return
    save_sealed(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "epoch": epoch,
            "history": history,
        },
        state_path,
    )


# --------------------------------------------------------------------------------------------
# OVPM


@torch.no_grad()
def predict_ovpm(
    ovpm: OVPM, data: HalfFaceSet, batch_size: int = 64, device: str | torch.device | None = None
) -> np.ndarray:
    """Expected intensities (N, 2, 12) for every half-face of ``data``."""
    dev = torch_device(device)
    ovpm.to(dev).eval()
    halves = data.images.reshape(-1, *data.images.shape[2:])
    out = []
    for a in range(0, len(halves), batch_size):
        x = to_input(torch.from_numpy(halves[a : a + batch_size]).to(dev))
        out.append(expected_intensity(ovpm(x)[0]).cpu())
    return torch.cat(out).numpy().reshape(len(data), 2, -1)


def train_ovpm(
    ovpm: OVPM,
    train: HalfFaceSet,
    settings: TrainSettings = TrainSettings(),
    val: HalfFaceSet | None = None,
    state_path: str | Path | None = None,
    progress: bool = False,
    device: str | torch.device | None = None,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict[str, Any]]:
    """Cross-entropy on both half-faces of every training frame. Returns the per-epoch history."""
    dev = torch_device(device)
    torch.manual_seed(settings.seed)
    ovpm.to(dev)
    opt, sched = _optimiser(ovpm, settings)
    start, history = _resume(Path(state_path) if state_path else None, ovpm, opt, sched)
    halves = torch.from_numpy(train.images.reshape(-1, *train.images.shape[2:]))
    labels = torch.from_numpy(train.labels.reshape(len(halves), -1).astype(np.int64))
    n = len(halves)
    for epoch in range(start, settings.epochs):
        torch.manual_seed(settings.seed + epoch)
        ovpm.train()
        order = torch.randperm(n, generator=torch.Generator().manual_seed(settings.seed + epoch))
        bar = Progress(f"ovpm epoch {epoch + 1}/{settings.epochs}", n, progress)
        total = 0.0
        for a in range(0, n, settings.batch_size):
            idx = order[a : a + settings.batch_size]
            if len(idx) < 2:  # batch norm needs 2
                continue
            logits, _ = ovpm(to_input(halves[idx].to(dev)))
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[idx].to(dev).reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            bar.update(a + len(idx), f"loss {float(loss.detach()):.3f}")
        sched.step()
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": total / n, "lr": sched.get_last_lr()[0]}
        if val is not None and len(val):
            pred = predict_ovpm(ovpm, val, device=dev)
            row["val_accuracy"] = float((np.rint(pred) == val.labels).mean())
            row["val_mae"] = float(np.abs(pred - val.labels).mean())
            ovpm.to(dev)
        history.append(row)
        bar.close(" ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        _save_state(Path(state_path) if state_path else None, ovpm, opt, sched, epoch + 1, history)
        if on_epoch:
            on_epoch(row)
    ovpm.eval()
    return history


# --------------------------------------------------------------------------------------------
# DVPM


def same_video_pairs(video: np.ndarray, max_pairs: int | None, seed: int) -> np.ndarray:
    """(P, 2) frame-index pairs (i, j), i != j, same video, no unordered pair twice, random orientation.

    With ``max_pairs`` below the number of available pairs, a uniform sample of them (seeded).
    """
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(video == v) for v in np.unique(video)]
    groups = [g for g in groups if len(g) >= 2]
    total = sum(len(g) * (len(g) - 1) // 2 for g in groups)
    if total == 0:
        return np.zeros((0, 2), dtype=np.int64)
    if max_pairs is None or max_pairs >= total:
        rows = []
        for g in groups:
            iu = np.triu_indices(len(g), 1)
            rows.append(np.stack([g[iu[0]], g[iu[1]]], axis=1))
        pairs = np.concatenate(rows)
    else:
        # Sample pair indices without replacement in the flattened per-video upper triangles.
        sizes = np.array([len(g) * (len(g) - 1) // 2 for g in groups])
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        flat = np.sort(rng.choice(total, size=max_pairs, replace=False))
        rows = []
        for gi, g in enumerate(groups):
            sel = flat[(flat >= offsets[gi]) & (flat < offsets[gi + 1])] - offsets[gi]
            if len(sel) == 0:
                continue
            iu = np.triu_indices(len(g), 1)
            rows.append(np.stack([g[iu[0][sel]], g[iu[1][sel]]], axis=1))
        pairs = np.concatenate(rows)
    flip = rng.random(len(pairs)) < 0.5
    pairs[flip] = pairs[flip][:, ::-1]
    return pairs[rng.permutation(len(pairs))]


class FeatureBank:
    """OVPM cached features of every frame of a set, computed once (as the helper cache would hold them).

    Falls back to recomputing per batch when the whole set would exceed ``max_bytes``.
    """

    def __init__(
        self,
        ovpm: OVPM,
        data: HalfFaceSet,
        device: torch.device,
        dtype: torch.dtype = torch.float16,
        max_bytes: int = 4 << 30,
        batch_size: int = 32,
        progress: bool = False,
    ) -> None:
        self.ovpm, self.data, self.device, self.dtype = ovpm.eval(), data, device, dtype
        per_frame = 2 * sum(int(np.prod(s)) for s in ovpm.feature_shapes()) * torch.empty(0, dtype=dtype).element_size()
        self.bank: list[torch.Tensor] | None = None
        if per_frame * len(data) <= max_bytes:
            chunks: list[list[torch.Tensor]] = []
            bar = Progress("ovpm features", len(data), progress)
            for a in range(0, len(data), batch_size):
                chunks.append(self._compute(np.arange(a, min(a + batch_size, len(data)))))
                bar.update(min(a + batch_size, len(data)))
            bar.close()
            self.bank = [torch.cat([c[k] for c in chunks]) for k in range(len(chunks[0]))] if chunks else None

    @torch.no_grad()
    def _compute(self, frames: np.ndarray) -> list[torch.Tensor]:
        halves = self.data.images[frames].reshape(-1, *self.data.images.shape[2:])
        _, feats = self.ovpm(to_input(torch.from_numpy(halves).to(self.device)))
        return [f.to(self.dtype).view(len(frames), 2, *f.shape[1:]) for f in self.ovpm.cached_features(feats)]

    def get(self, frames: np.ndarray) -> list[torch.Tensor]:
        """Per stage (len(frames), 2, C, H, W) in the cache dtype."""
        if self.bank is not None:
            idx = torch.as_tensor(frames, device=self.bank[0].device)
            return [b[idx] for b in self.bank]
        return self._compute(frames)


def _dvpm_batch(
    bank: FeatureBank, data: HalfFaceSet, pairs: np.ndarray, dev: torch.device
) -> tuple[list[torch.Tensor], torch.Tensor]:
    fi, fj = bank.get(pairs[:, 0]), bank.get(pairs[:, 1])
    deltas = [(a.float() - b.float()).flatten(0, 1) for a, b in zip(fi, fj)]  # (2B, C, H, W)
    dy = data.labels[pairs[:, 0]] - data.labels[pairs[:, 1]]  # (B, 2, 12)
    target = torch.from_numpy(dy.reshape(-1, dy.shape[-1]).astype(np.int64) + DVPM_CLASSES // 2).to(dev)
    return deltas, target


@torch.no_grad()
def dvpm_accuracy(
    dvpm: DVPM, bank: FeatureBank, data: HalfFaceSet, pairs: np.ndarray, dev: torch.device, batch_size: int = 64
) -> dict[str, float]:
    dvpm.eval()
    hits, err, n = 0.0, 0.0, 0
    for a in range(0, len(pairs), batch_size):
        deltas, target = _dvpm_batch(bank, data, pairs[a : a + batch_size], dev)
        logits = dvpm(deltas)
        hits += float((logits.argmax(-1) == target).float().sum())
        err += float((expected_difference(logits) - (target.float() - DVPM_CLASSES // 2)).abs().sum())
        n += target.numel()
    return {"accuracy": hits / max(n, 1), "mae": err / max(n, 1)}


def train_dvpm(
    ovpm: OVPM,
    dvpm: DVPM,
    train: HalfFaceSet,
    settings: TrainSettings = TrainSettings(batch_size=16),
    val: HalfFaceSet | None = None,
    max_pairs: int | None = 80_000,
    state_path: str | Path | None = None,
    progress: bool = False,
    device: str | torch.device | None = None,
    cache_dtype: torch.dtype = torch.float16,
) -> list[dict[str, Any]]:
    """Cross-entropy on ΔY = Y_i - Y_j from ΔF of the frozen OVPM, both sides of each pair."""
    dev = torch_device(device)
    torch.manual_seed(settings.seed)
    ovpm.to(dev).eval()
    for p in ovpm.parameters():
        p.requires_grad_(False)
    dvpm.to(dev)
    bank = FeatureBank(ovpm, train, dev, cache_dtype, progress=progress)
    val_bank = FeatureBank(ovpm, val, dev, cache_dtype) if val is not None and len(val) else None
    pairs = same_video_pairs(train.video, max_pairs, settings.seed)
    if len(pairs) == 0:
        raise InputError(
            "no DVPM training pairs: every video of the training set has fewer than 2 keyframes: "
            "add videos with more frames, or lower the keyframe threshold"
        )
    val_pairs = (
        same_video_pairs(val.video, max_pairs and max_pairs // 4, settings.seed + 1)
        if val_bank is not None and val is not None
        else None
    )
    opt, sched = _optimiser(dvpm, settings)
    start, history = _resume(Path(state_path) if state_path else None, dvpm, opt, sched)
    for epoch in range(start, settings.epochs):
        torch.manual_seed(settings.seed + epoch)
        dvpm.train()
        order = np.random.default_rng(settings.seed + epoch).permutation(len(pairs))
        bar = Progress(f"dvpm epoch {epoch + 1}/{settings.epochs}", len(pairs), progress)
        total = 0.0
        for a in range(0, len(order), settings.batch_size):
            batch = pairs[order[a : a + settings.batch_size]]
            deltas, target = _dvpm_batch(bank, train, batch, dev)
            logits = dvpm(deltas)
            loss = F.cross_entropy(logits.reshape(-1, DVPM_CLASSES), target.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
            bar.update(a + len(batch), f"loss {float(loss.detach()):.3f}")
        sched.step()
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": total / len(pairs),
            "pairs": int(len(pairs)),
            "lr": sched.get_last_lr()[0],
        }
        if val_bank is not None and val is not None and val_pairs is not None and len(val_pairs):
            row.update({f"val_{k}": v for k, v in dvpm_accuracy(dvpm, val_bank, val, val_pairs, dev).items()})
        history.append(row)
        bar.close(" ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
        _save_state(Path(state_path) if state_path else None, dvpm, opt, sched, epoch + 1, history)
    dvpm.eval()
    return history


def settings_record(settings: TrainSettings, history: list[dict], **extra: Any) -> dict[str, Any]:
    """What a checkpoint records about its training (plain types only)."""
    return {"settings": asdict(settings), "history": history, **extra}
