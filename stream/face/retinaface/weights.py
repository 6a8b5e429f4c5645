"""RetinaFace weights as data, and loading them into the network.

The weights are not code: a file path, an http(s) URL (downloaded once into a cache, checksummed) or
a name from ``KNOWN_WEIGHTS``, resolved by ``stream.weights``. Files from the internet are pickles,
so they are read with ``weights_only``; which backbone a state dict belongs to is read from its keys,
and which training settings (``CONFIGS``) go with it, from its checksum when known (``variant_of``),
because two public files share one name and one layout but need different anchors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from stream.errors import WeightsError
from stream.face.retinaface.network import CONFIGS, RetinaFace, build_retinaface
from stream.weights import WeightsSpec, cache_dir, resolve, sha256_of

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
