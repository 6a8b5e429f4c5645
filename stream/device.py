"""Where the models run: the default written once.

``AnalysisConfig.device`` (and ``--device``) None means CUDA when this machine has it, else the CPU.
The MTCNN detector is the exception by design: it runs its NumPy port on the CPU unless a device is
named (stream/face/mtcnn.py says why).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def torch_device(device: str | torch.device | None = None) -> torch.device:
    """The torch device for ``device``; None: CUDA when available, else the CPU."""
    import torch  # here, so that importing the package does not import torch

    if device is not None and str(device):
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
