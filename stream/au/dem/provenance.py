"""Which model spoke: a DEM checkpoint described for reports and dashboards, and a warning when a
model's output barely moves over a clip.

A report made with a trained estimator is only as good as the model behind it, so it names the model
(its content hash), the preset, the training set and the held-out figures recorded at training time.
An under-trained model tends to predict the class prior for every input: the expected intensity then
sits near one value (about 2.5 for a flat prior) whatever the face does, and every symptom statistic
computed from it is meaningless. ``constant_output_warning`` catches that shape of output. Both
functions are pure: plain values in, plain JSON-ready values out.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from stream.au.dem.models import PRESETS, DemConfig
from stream.aus import AU_NAMES

# An intensity spread (5th to 95th percentile over a clip) below this, in every AU on both sides, is
# "nearly constant". One intensity step is 1.0; a healthy face doing the guided exercises moves its
# brows, lids or lip corners by one step or more, so 0.25 leaves a wide margin for a working model.
CONSTANT_SPREAD = 0.25
MIN_KEYFRAMES = 5  # fewer keyframes say nothing about whether the output moves


def describe(
    config: DemConfig,
    *,
    sha256: str,
    ovpm_fingerprint: str,
    path: str | None = None,
    ovpm_record: dict[str, Any] | None = None,
    dvpm_record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The model behind a ``dem`` estimate, as a JSON-ready dict (see ``DemEstimator.model_info``)."""
    ovpm_record, dvpm_record = ovpm_record or {}, dvpm_record or {}
    preset = _preset(config, ovpm_record.get("preset"))
    data = ovpm_record.get("data")
    training_set = (
        None
        if not isinstance(data, dict)
        else {
            k: data.get(k)
            for k in ("name", "keyframes", "videos", "subjects", "train_keyframes", "held_out_keyframes", "split")
        }
    )
    held = dvpm_record.get("held_out")
    held_out = (
        None
        if not isinstance(held, dict)
        else {
            "keyframes": held.get("keyframes"),
            "videos": held.get("videos"),
            "split": held.get("split"),
            "by_m": {
                str(m): {k: _finite(v) for k, v in figures.items()} for m, figures in (held.get("by_m") or {}).items()
            },
        }
    )
    info: dict[str, Any] = {
        "estimator": "dem",
        "proxy": False,
        "checkpoint": path,
        "fingerprint": sha256,
        "ovpm_fingerprint": ovpm_fingerprint,
        "preset": preset,
        "backbone": config.backbone,
        "input_size": list(config.input_size),
        "epochs": {"ovpm": len(ovpm_record.get("history") or []), "dvpm": len(dvpm_record.get("history") or [])},
        "training_set": training_set,
        "held_out": held_out,
    }
    info["summary"] = summary_line(info)
    return info


def summary_line(info: dict[str, Any]) -> str:
    """One sentence for a report header, e.g. 'DEM model 1a2b3c4d5e6f (preset light), trained on ...'."""
    parts = [f"DEM model {info['fingerprint'][:12]}"]
    if info.get("preset"):
        parts[0] += f" (preset {info['preset']})"
    ts = info.get("training_set")
    if ts and ts.get("name"):
        parts.append(
            f"trained on {ts['name']} ({ts.get('train_keyframes')} of {ts.get('keyframes')} keyframes, "
            f"{ts.get('videos')} videos)"
        )
    else:
        parts.append("training set not recorded")
    ho = info.get("held_out")
    if ho and ho.get("by_m"):
        m = max(ho["by_m"], key=int)
        f = ho["by_m"][m]
        parts.append(
            f"held out {ho.get('keyframes')} keyframes: accuracy {_fmt(f.get('accuracy'), 2)}, "
            f"MAE {_fmt(f.get('mae'), 2)}, ICC {_fmt(f.get('icc'), 2)} at m = {m}"
        )
    else:
        parts.append("no held-out figures recorded")
    return "; ".join(parts)


def constant_output_warning(
    values: np.ndarray, *, min_spread: float = CONSTANT_SPREAD, min_keyframes: int = MIN_KEYFRAMES
) -> str | None:
    """A warning when every AU series of a clip stays nearly constant, else None.

    ``values``: (T, 2, 12) AU intensities over T keyframes (patient's left, right), or (T, K) series.
    Nearly constant: the 5th-95th percentile spread of every series is below ``min_spread``. NaN rows
    (no estimate) are ignored; with fewer than ``min_keyframes`` estimates there is nothing to judge.
    """
    v = np.asarray(values, dtype=float)
    if v.ndim < 2:
        raise ValueError(f"values must be (keyframes, ...) AU series, got shape {v.shape}")
    v = v.reshape(len(v), -1)
    v = v[np.isfinite(v).all(axis=1)]
    if len(v) < min_keyframes:
        return None
    lo, hi = np.percentile(v, [5, 95], axis=0)
    spread = hi - lo
    if spread.max() >= min_spread:
        return None
    widest = int(np.argmax(spread))
    name = _series_name(widest, v.shape[1])
    return (
        f"the AU model's output is nearly constant over this clip: across {len(v)} keyframes every AU stays "
        f"within a spread of {spread.max():.2f} intensity steps (widest: {name}), values between "
        f"{v.min():.1f} and {v.max():.1f}; an under-trained checkpoint reads every face this way, so do not "
        "read symptoms from these numbers unless the face truly did not move"
    )


def _series_name(index: int, k: int) -> str:
    if k == 2 * len(AU_NAMES):
        return f"{AU_NAMES[index % len(AU_NAMES)]} {'left' if index < len(AU_NAMES) else 'right'}"
    return f"series {index}"


def _preset(config: DemConfig, name: Any) -> str | None:
    """The recorded preset name, with the settings that differ from it (e.g. 'light, input_scale 0.125')."""
    if not isinstance(name, str) or name not in PRESETS:
        same = [n for n, c in PRESETS.items() if c == config]
        return same[0] if same else None
    base = PRESETS[name].as_dict()
    changed = [f"{k} {v}" for k, v in config.as_dict().items() if base.get(k) != v]
    return name if not changed else f"{name}, {', '.join(changed)}"


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _fmt(value: Any, digits: int) -> str:
    return "n/a" if not isinstance(value, (int, float)) else f"{value:.{digits}f}"
