"""Operations on a time-ordered keyframe series that both kinds of verdict need.

Region verdicts and synkinesis tests smooth the same series, resample it by blocks over time (so
that an interval keeps the autocorrelation of movement) and count separate stretches of movement;
one module holds those so that neither verdict module depends on the other.

Pure: arrays in, arrays or counts out; no I/O.
"""

from __future__ import annotations

import math

import numpy as np


def running_median(values: np.ndarray, width: int) -> np.ndarray:
    """Centred running median along axis 0 (keyframes), the ends using what exists."""
    n = len(values)
    if width <= 1 or n < 3:
        return values
    half = width // 2
    padded = np.concatenate([values[:1].repeat(half, axis=0), values, values[-1:].repeat(half, axis=0)])
    windows = np.stack([padded[k : k + n] for k in range(2 * half + 1)])
    return np.median(windows, axis=0)


def block_indices(m: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, m) indices of moving-block resamples of a series of m, blocks of about sqrt(m)."""
    block = max(1, min(m, int(math.ceil(math.sqrt(m)))))
    n_blocks = int(math.ceil(m / block))
    starts = rng.integers(0, m - block + 1, size=(n_boot, n_blocks))
    return (starts[:, :, None] + np.arange(block)[None, None, :]).reshape(n_boot, -1)[:, :m]


def count_episodes(mask: np.ndarray) -> int:
    """Separate runs of True in a time-ordered mask."""
    if not mask.any():
        return 0
    m = mask.astype(np.int8)
    return int(m[0] + np.count_nonzero(np.diff(m) == 1))
