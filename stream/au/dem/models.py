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

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stream.aus import N_AUS
from stream.errors import ConfigError

OVPM_CLASSES = 6  # intensities 0..5
DVPM_CLASSES = 11  # differences -5..5
PAPER_SIZE = (512, 256)  # half-face height, width (paper section 2, step 3)

# Stage layouts of torchvision's VGG ("M" = max pool ends a stage), so that a user's ImageNet file loads.
_VGG_LAYOUTS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
BACKBONES = ("vgg19", "vgg16", "resnet50", "mobilenet_v3_large")


@dataclass(frozen=True)
class DemConfig:
    """Architecture of an OVPM/DVPM pair. Saved inside every checkpoint."""

    backbone: str = "vgg19"  # one of BACKBONES (paper Table 4; VGG-19 is the paper's choice)
    input_scale: float = 1.0  # model input = (512, 256) x scale; 0.25 gives 128x64 for CPU use
    width: float = 1.0  # channel multiplier of the OVPM (1.0 = torchvision layout, ImageNet-loadable)
    batch_norm: bool = False  # VGG only: torchvision's vgg*_bn layout
    head: str = "vgg"  # VGG only: "vgg" = torchvision's 7x7-pool + 4096-4096 FC head; "pool" = global pool + linear
    dvpm_width: float = 0.25  # DVPM channels per stage, relative to the OVPM stage's channels
    dvpm_blocks: int = 1  # blocks per DVPM stage; 0 = as many as the OVPM stage has convs (paper-faithful)
    dvpm_head: str = "pool"  # "pool" = global pool + 256 + linear; "vgg" = VGG FC head (paper-faithful)
    fusion: str = "add"  # "add" or "concat" (concat + 1x1)
    feature_grid: tuple[int, int] | None = (32, 16)  # max cached H, W per stage; None = full resolution

    @property
    def input_size(self) -> tuple[int, int]:
        return (max(16, round(PAPER_SIZE[0] * self.input_scale)), max(8, round(PAPER_SIZE[1] * self.input_scale)))

    def validate(self) -> DemConfig:
        problems = []
        if self.backbone not in BACKBONES:
            problems.append(f"unknown backbone {self.backbone!r}; choose one of {', '.join(BACKBONES)}")
        if not 0 < self.input_scale <= 2:
            problems.append(f"input_scale must be in (0, 2], got {self.input_scale}")
        if self.width <= 0 or self.dvpm_width <= 0:
            problems.append(f"width multipliers must be > 0, got width={self.width}, dvpm_width={self.dvpm_width}")
        if self.backbone == "resnet50" and self.width != 1.0:
            problems.append(
                "resnet50 has no width multiplier: use width=1.0 (or mobilenet_v3_large / vgg for a narrow model)"
            )
        if self.head not in ("vgg", "pool") or self.dvpm_head not in ("vgg", "pool"):
            problems.append(f"heads must be 'vgg' or 'pool', got head={self.head!r}, dvpm_head={self.dvpm_head!r}")
        if self.fusion not in ("add", "concat"):
            problems.append(f"fusion must be 'add' or 'concat', got {self.fusion!r}")
        if self.dvpm_blocks < 0:
            problems.append(f"dvpm_blocks must be >= 0, got {self.dvpm_blocks}")
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["feature_grid"] = list(self.feature_grid) if self.feature_grid else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown DEM configuration keys {sorted(unknown)}")
        d = dict(d)
        if d.get("feature_grid") is not None:
            d["feature_grid"] = tuple(d["feature_grid"])
        return cls(**d).validate()


# Named configurations. "default": paper backbone and resolution, light DVPM on pooled features.
# "paper": the faithful reading of Figure 5 (full-resolution ΔF, VGG-19-deep DVPM with FC head).
# "light": a CPU configuration (128x64 input, quarter width).
PRESETS: dict[str, DemConfig] = {
    "default": DemConfig(),
    "paper": DemConfig(dvpm_width=1.0, dvpm_blocks=0, dvpm_head="vgg", feature_grid=None),
    "light": DemConfig(input_scale=0.25, width=0.25, head="pool", batch_norm=True, dvpm_width=0.5, feature_grid=(8, 4)),
}


def preset(name: str, **overrides: Any) -> DemConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown DEM preset {name!r}; choose one of {', '.join(PRESETS)}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}).validate()


def _ch(c: int, w: float) -> int:
    return max(4, int(round(c * w)))


# --------------------------------------------------------------------------------------------
# Backbones split into stages


class _VGGTrunk(nn.Module):
    """torchvision's VGG ``features``/``classifier`` layout (same indices), optionally narrowed."""

    def __init__(self, name: str, width: float, batch_norm: bool, head: str, n_out: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        self.stage_ends: list[int] = []
        self.stage_channels: list[int] = []
        self.stage_convs: list[int] = []
        cin, convs = 3, 0
        for v in _VGG_LAYOUTS[name]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
                self.stage_ends.append(len(layers))
                self.stage_channels.append(cin)
                self.stage_convs.append(convs)
                convs = 0
                continue
            cout = _ch(int(v), width)
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            cin, convs = cout, convs + 1
        self.features = nn.Sequential(*layers)
        self.head_kind = head
        if head == "vgg":
            hidden = _ch(4096, width)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(
                nn.Linear(cin * 49, hidden),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(hidden, hidden),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(hidden, n_out),
            )
        else:
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(cin, n_out))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, start = [], 0
        for end in self.stage_ends:
            for layer in self.features[start:end]:
                x = layer(x)
            out.append(x)
            start = end
        return out

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(x), 1))


class _TorchvisionTrunk(nn.Module):
    """ResNet-50 / MobileNetV3-Large from torchvision, module names kept, split at each downsampling."""

    def __init__(self, name: str, width: float, n_out: int) -> None:
        super().__init__()
        import torchvision

        if name == "resnet50":
            self.net = torchvision.models.resnet50(weights=None)
            self.net.fc = nn.Linear(self.net.fc.in_features, n_out)
            self.stage_modules = [
                nn.Sequential(self.net.conv1, self.net.bn1, self.net.relu, self.net.maxpool, self.net.layer1),
                self.net.layer2,
                self.net.layer3,
                self.net.layer4,
            ]
            self.stage_channels = [256, 512, 1024, 2048]
            self.stage_convs = [3, 4, 6, 3]
        else:
            self.net = torchvision.models.mobilenet_v3_large(weights=None, width_mult=width)
            last = self.net.classifier[-1]
            self.net.classifier[-1] = nn.Linear(last.in_features, n_out)
            feats = self.net.features
            cuts = [(0, 2), (2, 4), (4, 7), (7, 13), (13, len(feats))]
            self.stage_modules = [nn.Sequential(*feats[a:b]) for a, b in cuts]
            self.stage_channels = [_out_channels(feats[b - 1]) for _, b in cuts]
            self.stage_convs = [b - a for a, b in cuts]
        self.name = name

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage in self.stage_modules:
            x = stage(x)
            out.append(x)
        return out

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        if self.name == "resnet50":
            return self.net.fc(torch.flatten(self.net.avgpool(x), 1))
        return self.net.classifier(torch.flatten(self.net.avgpool(x), 1))


def _out_channels(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def _trunk(config: DemConfig, n_out: int) -> _VGGTrunk | _TorchvisionTrunk:
    if config.backbone.startswith("vgg"):
        return _VGGTrunk(config.backbone, config.width, config.batch_norm, config.head, n_out)
    return _TorchvisionTrunk(config.backbone, config.width, n_out)


# --------------------------------------------------------------------------------------------
# OVPM


class OVPM(nn.Module):
    """Half-face (B, 3, H, W), ImageNet-normalised -> logits (B, 12, 6) and features [F^(1), ..., F^(l)]."""

    def __init__(self, config: DemConfig) -> None:
        super().__init__()
        self.config = config.validate()
        self.trunk: _VGGTrunk | _TorchvisionTrunk = _trunk(config, N_AUS * OVPM_CLASSES)

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
        widths = [_ch(c, config.dvpm_width) for c in feature_channels]
        stages = []
        for k, (cf, cw) in enumerate(zip(feature_channels, widths)):
            blocks = config.dvpm_blocks or stage_convs[k]
            stages.append(_DVPMStage(family, widths[k - 1] if k else None, cf, cw, max(1, blocks), config.fusion))
        self.stages = nn.ModuleList(stages)
        last = widths[-1]
        if config.dvpm_head == "vgg":
            hidden = _ch(4096, config.dvpm_width)
            self.pool = nn.AdaptiveAvgPool2d((7, 7))
            self.head = nn.Sequential(
                nn.Linear(last * 49, hidden),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(hidden, hidden),
                nn.ReLU(True),
                nn.Dropout(0.5),
                nn.Linear(hidden, N_AUS * DVPM_CLASSES),
            )
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


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_input(halves: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) RGB at the model's input size -> normalised float (B, 3, H, W)."""
    x = halves.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def load_imagenet(ovpm: OVPM, path: str) -> list[str]:
    """Initialise the OVPM trunk from a user's torchvision ImageNet state-dict file.

    Tensors whose name and shape match are copied (the convolution stack, and the first two FC layers
    for VGG's head); the rest (the AU output layer, narrowed layers) keep their fresh values.
    Returns the names that were *not* loaded.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    prefix = "trunk." if ovpm.config.backbone.startswith("vgg") else "trunk.net."
    own = ovpm.state_dict()
    loaded = {}
    for key, value in state.items():
        ours = prefix + key
        if ours in own and own[ours].shape == value.shape:
            loaded[ours] = value
    if not any(v.dim() == 4 for v in loaded.values()):  # not a single convolution matched
        raise ValueError(
            f"{path} shares no layer with a {ovpm.config.backbone} at width {ovpm.config.width}: "
            "is it a torchvision ImageNet state dict of the same backbone (width 1.0)?"
        )
    own.update(loaded)
    ovpm.load_state_dict(own)
    return sorted(set(own) - set(loaded))
