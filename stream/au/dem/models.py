"""OVPM and DVPM, the two networks of the Difference Ensemble Method (paper section 3).

OVPM (original value prediction model): half-face -> 12 AUs x 6 intensity classes (0..5), and the
intermediate feature maps F^(k) after each stage k of its backbone.

DVPM (difference value prediction model): the stage-wise differences ΔF^(k) = F_i^(k) - F_j^(k) ->
12 AUs x 11 classes (ΔY = -5..5). Its stage k fuses ΔF^(k) with its own running activation at the same
depth, so shallow OVPM features enter shallow DVPM positions and deep ones deep positions::

    z_1 = P_1(ΔF^(1))
    z_k = T_k(z_{k-1}) (+) P_k(ΔF^(k))        k = 2..l
    ΔY  = head(z_l)

``P_k`` is a 1x1 convolution (OVPM channels -> DVPM channels), ``T_k`` a few blocks of the backbone's
family followed by pooling to ΔF^(k)'s grid, (+) an addition (``fusion="add"``) or a concatenation
followed by a 1x1 convolution (``fusion="concat"``).

Features are cached per keyframe (the helper cache), so their size matters: ``feature_grid`` caps
the spatial size of each cached F^(k) by average pooling. Average pooling is linear, so the pooled
difference is the difference of the pooled features: subtracted elements still mean the same thing
element by element, which is the paper's requirement. ``feature_grid=None`` keeps full-resolution
maps (the paper-faithful reading, memory-hungry).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stream.au.dem.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    TorchvisionTrunk,
    VGGTrunk,
    build_trunk,
    load_imagenet,
    scaled_channels,
    to_input,
    vgg_head,
)
from stream.au.dem.config import BACKBONES, PAPER_SIZE, PRESETS, DemConfig, preset
from stream.aus import N_AUS

# Re-exported: the configuration and the ImageNet helpers are imported from here by callers and tests.
__all__ = [
    "BACKBONES",
    "DVPM",
    "DVPM_CLASSES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OVPM",
    "OVPM_CLASSES",
    "PAPER_SIZE",
    "PRESETS",
    "DemConfig",
    "build_pair",
    "expected_difference",
    "expected_intensity",
    "load_imagenet",
    "preset",
    "to_input",
]

OVPM_CLASSES = 6  # intensities 0..5
DVPM_CLASSES = 11  # differences -5..5


# --------------------------------------------------------------------------------------------
# OVPM


class OVPM(nn.Module):
    """Half-face (B, 3, H, W), ImageNet-normalised -> logits (B, 12, 6) and features [F^(1), ..., F^(l)]."""

    def __init__(self, config: DemConfig) -> None:
        super().__init__()
        self.config = config.validate()
        self.trunk: VGGTrunk | TorchvisionTrunk = build_trunk(config, N_AUS * OVPM_CLASSES)

    @property
    def stage_channels(self) -> list[int]:
        return list(self.trunk.stage_channels)

    @property
    def stage_convs(self) -> list[int]:
        return list(self.trunk.stage_convs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = self.trunk.stages(x)
        logits = self.trunk.classify(feats[-1]).view(-1, N_AUS, OVPM_CLASSES)
        return logits, feats

    def cached_features(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """F^(k) as the helper cache keeps them: average-pooled to at most ``feature_grid``."""
        grid = self.config.feature_grid
        if grid is None:
            return list(feats)
        out = []
        for f in feats:
            h, w = f.shape[-2:]
            th, tw = min(h, grid[0]), min(w, grid[1])
            out.append(f if (th, tw) == (h, w) else F.adaptive_avg_pool2d(f, (th, tw)))
        return out

    def feature_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of each cached F^(k) for this configuration's input size."""
        h, w = self.config.input_size
        with torch.no_grad():
            was = self.training
            self.eval()
            p = next(self.parameters())
            _, feats = self(torch.zeros(1, 3, h, w, device=p.device, dtype=p.dtype))
            self.train(was)
        return [tuple(f.shape[1:]) for f in self.cached_features(feats)]  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# DVPM


def _block(family: str, cin: int, cout: int) -> nn.Module:
    """One DVPM trunk block in the style of the backbone family."""
    if family.startswith("vgg"):
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
        )
    if family == "resnet50":
        return _ResidualBlock(cin, cout)
    return _InvertedResidual(cin, cout)


class _ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.skip = (
            nn.Identity() if cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int = 4) -> None:
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.Hardswish(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.Hardswish(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.residual = cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class _DVPMStage(nn.Module):
    def __init__(self, family: str, cin: int | None, cfeat: int, cout: int, blocks: int, fusion: str) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(cfeat, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.trunk = None
        if cin is not None:
            layers = [_block(family, cin, cout)] + [_block(family, cout, cout) for _ in range(blocks - 1)]
            self.trunk = nn.Sequential(*layers)
        self.fusion = fusion
        self.fuse = nn.Conv2d(2 * cout, cout, 1) if (fusion == "concat" and cin is not None) else None

    def forward(self, z: torch.Tensor | None, delta: torch.Tensor) -> torch.Tensor:
        d = self.project(delta)
        if z is None or self.trunk is None:
            return F.relu(d)
        z = self.trunk(z)
        if z.shape[-2:] != d.shape[-2:]:
            # Deeper stage of the OVPM is coarser: pool like the backbone does between stages.
            z = F.adaptive_max_pool2d(z, d.shape[-2:])
        if self.fuse is not None:
            return F.relu(self.fuse(torch.cat([z, d], dim=1)))
        return F.relu(z + d)


class DVPM(nn.Module):
    """[ΔF^(1), ..., ΔF^(l)] (each (B, C_k, H_k, W_k)) -> logits (B, 12, 11) over ΔY = -5..5."""

    def __init__(self, config: DemConfig, feature_channels: list[int], stage_convs: list[int]) -> None:
        super().__init__()
        self.config = config.validate()
        family = config.backbone
        widths = [scaled_channels(c, config.dvpm_width) for c in feature_channels]
        stages = []
        for k, (cf, cw) in enumerate(zip(feature_channels, widths)):
            blocks = config.dvpm_blocks or stage_convs[k]
            stages.append(_DVPMStage(family, widths[k - 1] if k else None, cf, cw, max(1, blocks), config.fusion))
        self.stages = nn.ModuleList(stages)
        last = widths[-1]
        if config.dvpm_head == "vgg":
            self.pool = nn.AdaptiveAvgPool2d((7, 7))
            self.head = vgg_head(last, config.dvpm_width, N_AUS * DVPM_CLASSES)
        else:
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Sequential(
                nn.Linear(last, 256), nn.ReLU(True), nn.Dropout(0.2), nn.Linear(256, N_AUS * DVPM_CLASSES)
            )

    def forward(self, deltas: list[torch.Tensor]) -> torch.Tensor:
        if len(deltas) != len(self.stages):
            raise ValueError(f"DVPM expects {len(self.stages)} feature differences, got {len(deltas)}")
        z = None
        for stage, d in zip(self.stages, deltas):
            z = stage(z, d)
        assert z is not None
        return self.head(torch.flatten(self.pool(z), 1)).view(-1, N_AUS, DVPM_CLASSES)


def build_pair(config: DemConfig) -> tuple[OVPM, DVPM]:
    """A fresh (untrained) OVPM and the DVPM that fits its features."""
    ovpm = OVPM(config)
    dvpm = DVPM(config, ovpm.stage_channels, ovpm.stage_convs)
    return ovpm, dvpm


# --------------------------------------------------------------------------------------------
# Outputs as values


def expected_intensity(logits: torch.Tensor) -> torch.Tensor:
    """Expected value of the 6-class softmax: continuous intensity in [0, 5]."""
    classes = torch.arange(OVPM_CLASSES, device=logits.device, dtype=torch.float32)
    return (logits.float().softmax(-1) * classes).sum(-1)


def expected_difference(logits: torch.Tensor) -> torch.Tensor:
    """Expected value of the 11-class softmax: continuous ΔY in [-5, 5]."""
    classes = torch.arange(DVPM_CLASSES, device=logits.device, dtype=torch.float32) - (DVPM_CLASSES // 2)
    return (logits.float().softmax(-1) * classes).sum(-1)
