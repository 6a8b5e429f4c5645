"""DEM cost per keyframe: OVPM and DVPM timed apart, for several m, with and without the helper cache.

Weights are random (time does not depend on their values), inputs random half-faces. With the cache
a keyframe costs one OVPM pass (both halves) plus one DVPM pass over m helpers x 2 sides; the naive
scheme re-runs the OVPM on every helper (one batched pass over (1 + m) x 2 halves) before the DVPM.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from stream.au.dem.estimator import DemEstimator
from stream.au.dem.models import build_pair, preset, to_input
from stream.config import AnalysisConfig


def _interleaved_ms(jobs: dict[str, Callable[[], object]], repeats: int, sync: Callable[[], None]) -> dict[str, float]:
    """Median milliseconds of each job over ``repeats`` rounds that run every job once, after a warm-up round."""
    samples: dict[str, list[float]] = {k: [] for k in jobs}
    for round_ in range(max(1, repeats) + 1):
        for key, fn in jobs.items():
            t0 = time.perf_counter()
            fn()
            sync()
            if round_:  # round 0 warms up the allocator, kernels and lazy initialisation
                samples[key].append((time.perf_counter() - t0) * 1000.0)
    return {k: float(statistics.median(v)) for k, v in samples.items()}


def bench_dem(
    light: bool,
    ms: list[int],
    repeats: int,
    device: str | None = None,
    naive_ms: list[int] | None = None,
    seed: int = 0,
) -> dict:
    """Figures for ``python -m stream bench --dem``.

    ``light``: the CPU configuration (preset "light") instead of the paper's resolution (preset "default").
    ``naive_ms``: helper counts for which the uncached scheme is timed too (default: m = 2 when asked for).
    """
    name = "light" if light else "default"
    config = preset(name)
    torch.manual_seed(seed)
    ovpm, dvpm = build_pair(config)
    est = DemEstimator(ovpm, dvpm, device)
    sync = torch.cuda.synchronize if est.device.type == "cuda" else (lambda: None)
    rng = np.random.default_rng(seed)
    h, w = config.input_size
    halves = rng.integers(0, 256, size=(2, h, w, 3), dtype=np.uint8)
    n_helpers = max(ms) if ms else 0
    helpers = [est.encode_halves(rng.integers(0, 256, size=(2, h, w, 3), dtype=np.uint8), i) for i in range(n_helpers)]
    current = est.encode_halves(halves, 10_000)

    # Interleaved rounds (every m once per round) so that load from other processes hits all m alike.
    jobs: dict[str, Callable[[], object]] = {"ovpm": lambda: est.encode_halves(halves, 10_000)}
    for m in ms:
        jobs[f"dvpm{m}"] = partial(est.difference, current, helpers[:m]) if m else (lambda: None)
        jobs[f"total{m}"] = partial(lambda chosen: est.estimate(est.encode_halves(halves, 10_000), chosen), helpers[:m])
    times = _interleaved_ms(jobs, repeats, sync)
    rows = [
        {"m": m, "ovpm_ms": times["ovpm"], "dvpm_ms": times[f"dvpm{m}"] if m else 0.0, "total_ms": times[f"total{m}"]}
        for m in ms
    ]
    base = next((r["total_ms"] for r in rows if r["m"] == 0), times["ovpm"])
    for r in rows:
        r["ratio_to_m0"] = r["total_ms"] / base

    naive = []
    for m in naive_ms if naive_ms is not None else [m for m in ms if m == 2]:
        batch = torch.from_numpy(np.repeat(halves[None], 1 + m, axis=0).reshape(-1, h, w, 3))

        @torch.inference_mode()
        def uncached(m: int = m, batch: torch.Tensor = batch) -> None:
            # No cache: OVPM on the current keyframe and on every helper again, then the DVPM.
            logits, feats = est.ovpm(to_input(batch.to(est.device)))
            cached = [f.to(est.cache_dtype) for f in est.ovpm.cached_features(feats)]
            deltas = [
                (c[:2].unsqueeze(0).float() - c[2:].view(m, 2, *c.shape[1:]).float()).flatten(0, 1) for c in cached
            ]
            est.dvpm(deltas)

        t = _interleaved_ms(
            {"naive": uncached, "m0": lambda: est.estimate(est.encode_halves(halves, 10_000), [])}, repeats, sync
        )
        naive.append({"m": m, "total_ms": t["naive"], "ratio_to_m0": t["naive"] / t["m0"]})

    per_keyframe = current.nbytes
    defaults = AnalysisConfig()
    held = min(defaults.buffer_max_keyframes, max(1, defaults.buffer_max_bytes // per_keyframe))
    shapes = ovpm.feature_shapes()
    return {
        "configuration": name,
        "config": config.as_dict(),
        "input_size": list(config.input_size),
        "device": str(est.device),
        "torch_threads": torch.get_num_threads(),
        "repeats": repeats,
        "ovpm_params": sum(p.numel() for p in ovpm.parameters()),
        "dvpm_params": sum(p.numel() for p in dvpm.parameters()),
        "rows": rows,
        "naive": naive,
        "cache": {
            "bytes_per_keyframe": per_keyframe,
            "dtype": str(est.cache_dtype).removeprefix("torch."),
            "feature_shapes": [list(s) for s in shapes],
            "buffer_keyframes_at_default_bounds": int(held),
            "peak_bytes_at_default_bounds": int(held * per_keyframe),
        },
    }


def format_bench(result: dict) -> str:
    """Markdown table of one ``bench_dem`` result."""
    c = result["cache"]
    lines = [
        f"DEM, {result['configuration']} configuration: input {result['input_size'][0]}x{result['input_size'][1]}, "
        f"{result['config']['backbone']} width {result['config']['width']}, device {result['device']}, "
        f"{result['torch_threads']} torch thread(s), median of {result['repeats']}.",
        f"OVPM {result['ovpm_params'] / 1e6:.2f} M parameters, DVPM {result['dvpm_params'] / 1e6:.2f} M.",
        "",
        "| m | OVPM ms | DVPM ms | ms per keyframe | x m=0 |",
        "|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['m']} | {r['ovpm_ms']:.1f} | {r['dvpm_ms']:.1f} | {r['total_ms']:.1f} | {r['ratio_to_m0']:.2f} |"
        )
    for r in result["naive"]:
        lines.append(f"| {r['m']} (naive, no cache) | - | - | {r['total_ms']:.1f} | {r['ratio_to_m0']:.2f} |")
    lines += [
        "",
        f"Helper cache: {c['bytes_per_keyframe'] / 1024:.1f} KiB per keyframe ({c['dtype']}); "
        f"at the default buffer bounds {c['buffer_keyframes_at_default_bounds']} keyframes, "
        f"peak {c['peak_bytes_at_default_bounds'] / 2**20:.1f} MiB.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - manual use: python -m stream.au.dem.bench [--paper]
    import sys

    torch.set_num_threads(int(next((a.split("=")[1] for a in sys.argv if a.startswith("--threads=")), "1")))
    paper = "--paper" in sys.argv
    print(format_bench(bench_dem(light=not paper, ms=[0, 1, 2, 4, 8], repeats=3 if paper else 20)))
