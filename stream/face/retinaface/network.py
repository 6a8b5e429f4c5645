"""The RetinaFace network and its per-variant settings, in the module layout of biubug6's weights.

Architecture only: building a network needs no file and no download. Module names follow biubug6's
Pytorch_Retinaface (``body``, ``fpn``, ``ssh1``, ``ClassHead`` ...) so that his published state dicts
load unchanged (``stream.face.retinaface.weights``); the anchor settings in ``RetinaFaceConfig`` are
read by ``stream.face.retinaface.anchors`` to decode what the heads predict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from stream.errors import ConfigError

# --------------------------------------------------------------------------------------------------
# Configuration of each variant (data, not code)


@dataclass(frozen=True)
class RetinaFaceConfig:
    """Widths, activations and anchors of one RetinaFace variant (biubug6's ``cfg_mnet`` / ``cfg_re50``)."""

    name: str
    backbone: str  # "mobilenet0.25" or "resnet50": decides the state-dict layout
    in_channel: int  # the FPN inputs have 2x, 4x and 8x this many channels
    out_channel: int  # FPN/SSH width
    leaky: float  # LeakyReLU slope in the MobileNet body, FPN and SSH (0: plain ReLU)
    min_sizes: tuple[tuple[int, ...], ...] = ((16, 32), (64, 128), (256, 512))  # anchor sides in pixels, per level
    steps: tuple[int, ...] = (8, 16, 32)  # feature stride per level
    variance: tuple[float, float] = (0.1, 0.2)  # SSD-style encoding variances (centre, size)
    clip: bool = False  # clip prior boxes to the image


CONFIGS: dict[str, RetinaFaceConfig] = {
    # biubug6/Pytorch_Retinaface, the paper's re-implementation: mobilenet0.25_Final.pth and Resnet50_Final.pth.
    "mobilenet0.25": RetinaFaceConfig("mobilenet0.25", "mobilenet0.25", in_channel=32, out_channel=64, leaky=0.1),
    "resnet50": RetinaFaceConfig("resnet50", "resnet50", in_channel=256, out_channel=256, leaky=0.0),
    # biubug6/Face-Detector-1MB-with-landmark ships a file of the same name and the same tensor shapes,
    # but trained with plain ReLUs and smaller anchors (for 300 px training crops). Loaded with the
    # settings above it finds boxes about 1.6x too large; only its checksum tells the two apart.
    "mobilenet0.25-1mb": RetinaFaceConfig(
        "mobilenet0.25-1mb",
        "mobilenet0.25",
        in_channel=32,
        out_channel=64,
        leaky=0.0,
        min_sizes=((10, 20), (32, 64), (128, 256)),
    ),
}


# --------------------------------------------------------------------------------------------------
# Network (module names follow biubug6 so that his state dicts load unchanged)


def _conv_bn(inp: int, oup: int, stride: int = 1, leaky: float | None = 0.0, kernel: int = 3) -> nn.Sequential:
    """Conv (no bias) + BN, then LeakyReLU unless ``leaky`` is None (LeakyReLU(0) is a ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(oup)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


def _conv_dw(inp: int, oup: int, stride: int, leaky: float) -> nn.Sequential:
    """MobileNet depthwise-separable block: 3x3 depthwise, then 1x1 pointwise."""
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False),
        nn.BatchNorm2d(inp),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False),
        nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class _Body(nn.ModuleDict):
    """Runs its children in order, returning the outputs of ``returned`` (as torchvision's IntermediateLayerGetter)."""

    def __init__(self, children: Mapping[str, nn.Module], returned: tuple[str, ...]) -> None:
        super().__init__(children)
        self.returned = returned

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for name, module in self.items():
            x = module(x)
            if name in self.returned:
                outputs.append(x)
        return outputs


def _mobilenet_025_body(leaky: float) -> _Body:
    # MobileNet-V1 at width 0.25; the classifier of the ImageNet model is never run, so it is not built.
    stages = {
        "stage1": nn.Sequential(
            _conv_bn(3, 8, 2, leaky=leaky),
            _conv_dw(8, 16, 1, leaky),
            _conv_dw(16, 32, 2, leaky),
            _conv_dw(32, 32, 1, leaky),
            _conv_dw(32, 64, 2, leaky),
            _conv_dw(64, 64, 1, leaky),
        ),
        "stage2": nn.Sequential(_conv_dw(64, 128, 2, leaky), *(_conv_dw(128, 128, 1, leaky) for _ in range(5))),
        "stage3": nn.Sequential(_conv_dw(128, 256, 2, leaky), _conv_dw(256, 256, 1, leaky)),
    }
    return _Body(stages, returned=("stage1", "stage2", "stage3"))


def _resnet50_body() -> _Body:
    import torchvision

    resnet = torchvision.models.resnet50(weights=None)
    children = dict(resnet.named_children())
    kept = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return _Body({name: children[name] for name in kept}, returned=("layer2", "layer3", "layer4"))


class _FPN(nn.Module):
    def __init__(self, in_channels: list[int], out_channels: int, leaky: float) -> None:
        super().__init__()
        self.output1 = _conv_bn(in_channels[0], out_channels, leaky=leaky, kernel=1)
        self.output2 = _conv_bn(in_channels[1], out_channels, leaky=leaky, kernel=1)
        self.output3 = _conv_bn(in_channels[2], out_channels, leaky=leaky, kernel=1)
        self.merge1 = _conv_bn(out_channels, out_channels, leaky=leaky)
        self.merge2 = _conv_bn(out_channels, out_channels, leaky=leaky)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out1, out2, out3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[-2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[-2:], mode="nearest"))
        return [out1, out2, out3]


class _SSH(nn.Module):
    """Context module: parallel 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) receptive fields, concatenated."""

    def __init__(self, in_channel: int, out_channel: int, leaky: float) -> None:
        super().__init__()
        quarter = out_channel // 4
        self.conv3X3 = _conv_bn(in_channel, out_channel // 2, leaky=None)
        self.conv5X5_1 = _conv_bn(in_channel, quarter, leaky=leaky)
        self.conv5X5_2 = _conv_bn(quarter, quarter, leaky=None)
        self.conv7X7_2 = _conv_bn(quarter, quarter, leaky=leaky)
        self.conv7x7_3 = _conv_bn(quarter, quarter, leaky=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch5 = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(branch5), self.conv7x7_3(self.conv7X7_2(branch5))], dim=1)
        return F.relu(out)


class _Head(nn.Module):
    """1x1 conv predicting ``per_anchor`` numbers for each anchor; output (N, H*W*anchors, per_anchor)."""

    def __init__(self, in_channels: int, anchors: int, per_anchor: int) -> None:
        super().__init__()
        self.per_anchor = per_anchor
        self.conv1x1 = nn.Conv2d(in_channels, anchors * per_anchor, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.per_anchor)


class RetinaFace(nn.Module):
    """Backbone -> FPN (3 levels) -> SSH -> class/box/landmark heads.

    ``forward`` takes a (N, 3, H, W) float BGR image with the mean subtracted and returns
    box offsets (N, P, 4), face/background probabilities (N, P, 2) and landmark offsets (N, P, 10),
    one row per prior box of ``prior_boxes(cfg, H, W)``.
    """

    def __init__(self, cfg: RetinaFaceConfig) -> None:
        super().__init__()
        if cfg.backbone not in ("mobilenet0.25", "resnet50"):
            raise ValueError(f"unknown RetinaFace backbone {cfg.backbone!r}; choose mobilenet0.25 or resnet50")
        self.cfg = cfg
        self.body = _mobilenet_025_body(cfg.leaky) if cfg.backbone == "mobilenet0.25" else _resnet50_body()
        width, leaky = cfg.out_channel, cfg.leaky
        self.fpn = _FPN([cfg.in_channel * 2, cfg.in_channel * 4, cfg.in_channel * 8], width, leaky)
        self.ssh1, self.ssh2, self.ssh3 = (_SSH(width, width, leaky) for _ in range(3))
        anchors = [len(sizes) for sizes in cfg.min_sizes]
        self.ClassHead = nn.ModuleList([_Head(width, a, 2) for a in anchors])
        self.BboxHead = nn.ModuleList([_Head(width, a, 4) for a in anchors])
        self.LandmarkHead = nn.ModuleList([_Head(width, a, 10) for a in anchors])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = self.fpn(self.body(x))
        features = [self.ssh1(levels[0]), self.ssh2(levels[1]), self.ssh3(levels[2])]
        loc = torch.cat([head(f) for head, f in zip(self.BboxHead, features)], dim=1)
        logits = torch.cat([head(f) for head, f in zip(self.ClassHead, features)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features)], dim=1)
        return loc, F.softmax(logits, dim=-1), landmarks


def build_retinaface(variant: str) -> RetinaFace:
    """A randomly initialised RetinaFace of a variant named in ``CONFIGS``."""
    if variant not in CONFIGS:
        raise ConfigError(f"unknown RetinaFace variant {variant!r}; choose one of {', '.join(CONFIGS)}")
    return RetinaFace(CONFIGS[variant])
