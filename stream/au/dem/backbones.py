"""The OVPM's backbones split into stages, and what ties them to ImageNet.

VGG keeps torchvision's layer indices and ResNet-50 / MobileNetV3 torchvision's module names, so a
user's torchvision ImageNet state dict loads (``load_imagenet``); ``to_input`` applies the ImageNet
normalisation those weights expect. Apart from ``models`` so that the OVPM/DVPM wiring reads on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from stream.au.dem.config import DemConfig

if TYPE_CHECKING:
    from stream.au.dem.models import OVPM

# Stage layouts of torchvision's VGG ("M" = max pool ends a stage), so that a user's ImageNet file loads.
_VGG_LAYOUTS: dict[str, list[int | str]] = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}


def scaled_channels(c: int, w: float) -> int:
    """``c`` channels scaled by the width multiplier ``w`` (at least 4); the DVPM uses it too."""
    return max(4, int(round(c * w)))


def vgg_head(cin: int, width: float, n_out: int) -> nn.Sequential:
    """torchvision's VGG classifier (after a 7x7 pool, same indices), its 4096 hidden units scaled by ``width``."""
    hidden = scaled_channels(4096, width)
    return nn.Sequential(
        nn.Linear(cin * 49, hidden),
        nn.ReLU(True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(True),
        nn.Dropout(0.5),
        nn.Linear(hidden, n_out),
    )


class VGGTrunk(nn.Module):
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
            cout = scaled_channels(int(v), width)
            layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.ReLU(inplace=True))
            cin, convs = cout, convs + 1
        self.features = nn.Sequential(*layers)
        self.head_kind = head
        if head == "vgg":
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = vgg_head(cin, width, n_out)
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


class TorchvisionTrunk(nn.Module):
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


def build_trunk(config: DemConfig, n_out: int) -> VGGTrunk | TorchvisionTrunk:
    if config.backbone.startswith("vgg"):
        return VGGTrunk(config.backbone, config.width, config.batch_norm, config.head, n_out)
    return TorchvisionTrunk(config.backbone, config.width, n_out)


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
