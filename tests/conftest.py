"""Shared fixtures. Real material comes from ../shared/data (tests only; the product never needs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

torch_threads = os.environ.get("STREAM_TEST_THREADS")
if torch_threads:
    import torch

    torch.set_num_threads(int(torch_threads))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("STREAM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test material not found at {SHARED_DATA} (set STREAM_SHARED_DATA)")
    return SHARED_DATA
