"""RetinaFace's prior boxes (anchors) and the SSD-style decoding of box and landmark offsets.

The heads predict offsets relative to a fixed grid of anchors, one row per anchor; turning them into
boxes and points in image fractions is pure tensor maths, kept apart from the network so that it can
be checked on hand-made numbers (tests/test_retinaface.py). The detector scales the results to pixels
and removes overlapping boxes with torchvision's NMS (``stream.face.retinaface.detector``).
"""

from __future__ import annotations

import torch

from stream.face.retinaface.network import RetinaFaceConfig


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
