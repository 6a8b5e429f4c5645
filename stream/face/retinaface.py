"""RetinaFace face detector (Deng et al., CVPR 2020) in the layout of the public biubug6/Pytorch_Retinaface weights.

Two backbones share the detection head: MobileNet-0.25 (``mobilenet0.25_Final.pth``, 1.7 MB, fast on CPU)
and ResNet-50 (``Resnet50_Final.pth``, 105 MB, more accurate). Architecture code lives here; the weights
are data: a file path, an http(s) URL (downloaded once into a cache, checksummed) or a name from
``KNOWN_WEIGHTS``. Which backbone a state dict belongs to is read from its keys; which training settings
(``CONFIGS``) go with it, from its checksum when known (see ``variant_of``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stream.device import torch_device
from stream.errors import ConfigError, WeightsError
from stream.face.detect import FaceDetector, downscale_for_detection, register_detector
from stream.types import Face
from stream.weights import WeightsSpec, cache_dir, resolve, sha256_of

# --------------------------------------------------------------------------------------------------
# Configuration and known weights (data, not code)


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


# The original pre-processing: BGR pixels as floats minus this mean, no scaling.
PREPROCESSING: Mapping[str, object] = {"colour_order": "BGR", "mean": (104.0, 117.0, 123.0), "scale": 1.0}

# Preference order when no weights are named: the first one found in the cache is used. ``config`` is
# the key of CONFIGS the file was trained with.
KNOWN_WEIGHTS: tuple[WeightsSpec, ...] = (
    # biubug6 publishes his files on Google Drive only, without checksums; facexlib mirrors them as
    # GitHub release assets. Pass ``weights_sha256`` to pin the copy you trust.
    WeightsSpec(
        name="retinaface-mobilenet0.25",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_mobilenet0.25_Final.pth",
        sha256=None,
        config="mobilenet0.25",
        preprocessing=PREPROCESSING,
    ),
    WeightsSpec(
        name="retinaface-resnet50",
        url="https://github.com/xinntao/facexlib/releases/download/v0.1.0/detection_Resnet50_Final.pth",
        sha256=None,
        config="resnet50",
        preprocessing=PREPROCESSING,
    ),
    # The checksum was measured on the copy in the project's shared test data (MIT licence).
    WeightsSpec(
        name="retinaface-mobilenet0.25-1mb",
        url="https://github.com/biubug6/Face-Detector-1MB-with-landmark/raw/"
        "2b075657aef954b9426f938ac7fce100b6910fe6/weights/mobilenet0.25_Final.pth",
        sha256="ed6fa7d45a5179f03cb5ce82c73b0c6711372968e53782e88395acee88d319e1",
        config="mobilenet0.25-1mb",
        preprocessing=PREPROCESSING,
    ),
)


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


# --------------------------------------------------------------------------------------------------
# Prior boxes and decoding (SSD encoding with variances)


def prior_boxes(cfg: RetinaFaceConfig, height: int, width: int) -> torch.Tensor:
    """(P, 4) anchors as (cx, cy, w, h) in fractions of the image, in the order the heads emit them:
    level, then row, then column, then anchor size."""
    priors = []
    for sizes, step in zip(cfg.min_sizes, cfg.steps):
        rows, cols = -(-height // step), -(-width // step)  # ceil: a stride-s conv with padding keeps partial cells
        cy, cx = torch.meshgrid(
            (torch.arange(rows, dtype=torch.float32) + 0.5) * step / height,
            (torch.arange(cols, dtype=torch.float32) + 0.5) * step / width,
            indexing="ij",
        )
        level = torch.empty(rows, cols, len(sizes), 4)
        level[..., 0] = cx[..., None]
        level[..., 1] = cy[..., None]
        level[..., 2] = torch.tensor([s / width for s in sizes])
        level[..., 3] = torch.tensor([s / height for s in sizes])
        priors.append(level.reshape(-1, 4))
    out = torch.cat(priors)
    return out.clamp_(0.0, 1.0) if cfg.clip else out


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor, variance: tuple[float, float]) -> torch.Tensor:
    """(P, 4) offsets -> (P, 4) boxes x1, y1, x2, y2 in fractions of the image."""
    centre = priors[:, :2] + loc[:, :2] * variance[0] * priors[:, 2:]
    size = priors[:, 2:] * torch.exp(loc[:, 2:] * variance[1])
    return torch.cat([centre - size / 2, centre + size / 2], dim=1)


def decode_landmarks(pre: torch.Tensor, priors: torch.Tensor, variance: tuple[float, float]) -> torch.Tensor:
    """(P, 10) offsets -> (P, 5, 2) points x, y in fractions of the image."""
    offsets = pre.reshape(-1, 5, 2)
    return priors[:, None, :2] + offsets * variance[0] * priors[:, None, 2:]


# --------------------------------------------------------------------------------------------------
# Weights: resolve (path / URL / known name / cache), download, verify, load


def _how_to_get_weights() -> str:
    known = "; ".join(f"--weights {k.name} downloads {k.url}" for k in KNOWN_WEIGHTS)
    return (
        "pass --weights PATH to a biubug6 RetinaFace state dict (mobilenet0.25_Final.pth or Resnet50_Final.pth "
        f"from github.com/biubug6/Pytorch_Retinaface), or a URL or known name to download once into {cache_dir()} "
        f"(needs internet: {known}); or choose --detector mtcnn, which needs no download"
    )


def resolve_weights(spec: str | os.PathLike[str] | None, sha256: str | None = None) -> Path:
    """The local file for RetinaFace weights: a file path, a URL, a name from ``KNOWN_WEIGHTS``, or None
    (a known file already in the cache); see ``stream.weights.resolve``."""
    return resolve(
        spec, known=KNOWN_WEIGHTS, sha256=sha256, what="RetinaFace weights", how_to_get=_how_to_get_weights()
    )


# Keys that tell the two backbones apart.
_BACKBONE_MARKERS = {"mobilenet0.25": "body.stage1.0.0.weight", "resnet50": "body.layer4.0.conv1.weight"}


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a saved state dict (legacy or zip format), with any DataParallel ``module.`` prefix removed."""
    try:
        # weights_only: a .pth from the internet is a pickle; never let it run code.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike
        raise WeightsError(f"cannot read {path} as a PyTorch state dict ({type(exc).__name__}: {exc})") from exc
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]  # a training checkpoint wrapping the weights
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a state dict of tensors")
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in loaded.items()}


def backbone_of(state: Mapping[str, torch.Tensor], source: str | os.PathLike[str] = "state dict") -> str:
    """Which RetinaFace backbone a (prefix-free) state dict is for, or ``WeightsError``."""
    for backbone, marker in _BACKBONE_MARKERS.items():
        if marker in state:
            return backbone
    sample = ", ".join(list(state)[:3]) or "none"
    raise WeightsError(
        f"{source} is not a RetinaFace state dict in the biubug6 layout: expected a key "
        f"{_BACKBONE_MARKERS['mobilenet0.25']!r} (MobileNet-0.25, mobilenet0.25_Final.pth) or "
        f"{_BACKBONE_MARKERS['resnet50']!r} (ResNet-50, Resnet50_Final.pth); its {len(state)} keys start with {sample}"
    )


def variant_of(path: str | os.PathLike[str], state: Mapping[str, torch.Tensor], requested: str | None = None) -> str:
    """The ``CONFIGS`` key to run the weights in ``path`` with: ``requested`` if given and compatible, else the
    variant its checksum is known under, else the biubug6/Pytorch_Retinaface settings for its backbone."""
    backbone = backbone_of(state, path)
    if requested is not None:
        if requested not in CONFIGS:
            raise WeightsError(f"unknown RetinaFace variant {requested!r}; choose one of {', '.join(CONFIGS)}")
        if CONFIGS[requested].backbone != backbone:
            raise WeightsError(
                f"{path} holds a {backbone} RetinaFace, but variant {requested!r} needs {CONFIGS[requested].backbone}"
            )
        return requested
    digest = sha256_of(Path(path))
    return next((k.config for k in KNOWN_WEIGHTS if k.sha256 == digest), backbone)


def load_retinaface(path: str | os.PathLike[str], variant: str | None = None) -> RetinaFace:
    """A RetinaFace in eval mode with the weights in ``path``; see ``variant_of`` for how its settings are chosen."""
    state = read_state_dict(path)
    variant = variant_of(path, state, variant)
    with torch.device("meta"):  # no random init of tensors about to be replaced (ResNet-50: ~1 s saved)
        model = build_retinaface(variant)
    backbone = model.cfg.backbone
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        problems = [
            f"{label} {len(keys)} (e.g. {', '.join(keys[:3])})"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
            if keys
        ]
        raise WeightsError(
            f"{path} looks like a {backbone} RetinaFace but does not match the biubug6 {backbone} layout "
            f"({len(expected)} tensors): {'; '.join(problems)}"
        )
    model.load_state_dict(state, assign=True)
    return model.eval()


# --------------------------------------------------------------------------------------------------
# Detector


class RetinaFaceDetector(FaceDetector):
    """RetinaFace with the original pre-processing (BGR, mean 104/117/123 subtracted, no scaling).

    ``weights``: file path, http(s) URL, ``KNOWN_WEIGHTS`` name or None (see ``resolve_weights``);
    ``weights_sha256`` pins the file's checksum; ``variant`` forces a ``CONFIGS`` entry (default: see ``variant_of``).
    ``max_side``: larger images are downscaled so their longer side is this many pixels; points are scaled back.
    ``confidence``: minimum face probability; ``nms_iou``: overlap above which the weaker box is dropped.
    """

    name = "retinaface"
    MEAN_BGR = PREPROCESSING["mean"]

    def __init__(
        self,
        weights: str | os.PathLike[str] | None = None,
        device: str | None = None,
        max_side: int = 640,
        confidence: float = 0.6,
        nms_iou: float = 0.4,
        weights_sha256: str | None = None,
        variant: str | None = None,
    ) -> None:
        self.weights_path = resolve_weights(weights, sha256=weights_sha256)
        self.device = torch_device(device)
        self.model = load_retinaface(self.weights_path, variant).to(self.device)
        self.cfg = self.model.cfg
        self.max_side = max_side
        self.confidence = confidence
        self.nms_iou = nms_iou
        self._priors: tuple[tuple[int, int], torch.Tensor] | None = None  # video frames share one size

    def detect_all(self, image: np.ndarray) -> list[Face]:
        import torchvision

        small, back = downscale_for_detection(image, self.max_side, "RetinaFace")
        sh, sw = small.shape[:2]
        bgr = small[:, :, ::-1].astype(np.float32) - np.asarray(self.MEAN_BGR, dtype=np.float32)

        with torch.inference_mode():
            x = torch.from_numpy(bgr.transpose(2, 0, 1).copy()).unsqueeze(0).to(self.device)
            loc, probs, landmark_offsets = self.model(x)
            priors = self._priors_for(sh, sw)
            scores = probs[0, :, 1]
            keep = scores > self.confidence
            if not bool(keep.any()):
                return []
            loc, scores, landmark_offsets, priors = loc[0, keep], scores[keep], landmark_offsets[0, keep], priors[keep]
            size = torch.tensor([sw, sh], dtype=torch.float32, device=self.device)
            boxes = decode_boxes(loc, priors, self.cfg.variance) * size.repeat(2)
            points = decode_landmarks(landmark_offsets, priors, self.cfg.variance) * size
            kept = torchvision.ops.nms(boxes, scores, self.nms_iou)
            boxes = boxes[kept].double().cpu().numpy() * np.tile(back, 2)
            points = points[kept].double().cpu().numpy() * back
            scores_np = scores[kept].double().cpu().numpy()
        return [Face(box=b, landmarks=p, score=float(s)) for b, p, s in zip(boxes, points, scores_np)]

    def _priors_for(self, height: int, width: int) -> torch.Tensor:
        if self._priors is None or self._priors[0] != (height, width):
            self._priors = ((height, width), prior_boxes(self.cfg, height, width).to(self.device))
        return self._priors[1]


@register_detector("retinaface")
def _build(
    weights: str | None = None,
    device: str | None = None,
    max_side: int = 640,
    weights_sha256: str | None = None,
    variant: str | None = None,
) -> FaceDetector:
    return RetinaFaceDetector(
        weights=weights, device=device, max_side=max_side, weights_sha256=weights_sha256, variant=variant
    )
