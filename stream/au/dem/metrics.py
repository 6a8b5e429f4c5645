"""AU intensity metrics of the paper's Table 5 and Figure 6, pure numpy.

Inputs are (n, A) arrays: n rated items (half-faces), A action units. Every function returns one value
per AU; ``summary`` adds the means.
"""

from __future__ import annotations

import numpy as np

from stream.aus import AU_NAMES


def accuracy(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Share of items whose rounded prediction equals the integer label (the paper's raw-value accuracy)."""
    return (np.rint(np.clip(pred, 0, 5)) == label).mean(axis=0)


def mae(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    return np.abs(pred - label).mean(axis=0)


def pcc(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Pearson correlation per AU; 0 where either side is constant (undefined)."""
    p = pred - pred.mean(axis=0)
    t = label - label.mean(axis=0)
    den = np.sqrt((p**2).sum(axis=0) * (t**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (p * t).sum(axis=0) / den
    return np.where(den > 0, r, 0.0)


def icc31(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """ICC(3,1) (Shrout & Fleiss: two-way mixed, consistency, single rater), prediction and label as 2 raters.

    ICC(3,1) = (MS_rows - MS_error) / (MS_rows + (k - 1) MS_error) with k = 2 raters.
    """
    y = np.stack([pred, label], axis=-1).astype(float)  # (n, A, k)
    n, _, k = y.shape
    grand = y.mean(axis=(0, 2), keepdims=True)
    row_means = y.mean(axis=2, keepdims=True)
    col_means = y.mean(axis=0, keepdims=True)
    ss_rows = k * ((row_means - grand) ** 2).sum(axis=(0, 2))
    ss_cols = n * ((col_means - grand) ** 2).sum(axis=(0, 2))
    ss_total = ((y - grand) ** 2).sum(axis=(0, 2))
    ss_err = ss_total - ss_rows - ss_cols
    ms_rows = ss_rows / max(n - 1, 1)
    ms_err = ss_err / max((n - 1) * (k - 1), 1)
    den = ms_rows + (k - 1) * ms_err
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (ms_rows - ms_err) / den
    return np.where(den > 0, out, 0.0)


def summary(pred: np.ndarray, label: np.ndarray) -> dict[str, dict[str, float]]:
    """{"accuracy"|"mae"|"icc"|"pcc": {AU name: value, ..., "mean": value}}."""
    pred = np.asarray(pred, dtype=float)
    label = np.asarray(label, dtype=float)
    if pred.shape != label.shape or pred.ndim != 2:
        raise ValueError(f"predictions {pred.shape} and labels {label.shape} must both be (n, AUs)")
    names = AU_NAMES if pred.shape[1] == len(AU_NAMES) else tuple(f"AU#{i}" for i in range(pred.shape[1]))
    out = {}
    for key, fn in (("accuracy", accuracy), ("mae", mae), ("icc", icc31), ("pcc", pcc)):
        values = fn(pred, label)
        out[key] = {name: float(v) for name, v in zip(names, values)}
        out[key]["mean"] = float(np.mean(values))
    return out
