"""Shared fixtures: the real data root (tests that need it skip, with the reason, only when it is absent)."""
from __future__ import annotations

import pytest

from fusion_core import data


@pytest.fixture(scope="session")
def data_root():
    try:
        return data.data_root()
    except data.DataError as exc:
        pytest.skip(f"real data not available: {exc}")


@pytest.fixture(scope="session")
def didfuse_training_pairs():
    """DIDFuse's training split (what the quick trainer reads); skips with the reason when it is missing."""
    try:
        return data.load_split("didfuse", "train")
    except data.DataError as exc:
        pytest.skip(f"training data missing: {exc}")
