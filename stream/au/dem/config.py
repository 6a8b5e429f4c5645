"""DEM architecture as data: ``DemConfig``, its validation and the named presets.

Apart from the networks (``models``) because a configuration travels on its own: it is saved in
every checkpoint, hashed into the model's name and described in provenance records, and none of
this needs torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from stream.errors import ConfigError

PAPER_SIZE = (512, 256)  # half-face height, width (paper section 2, step 3)
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
