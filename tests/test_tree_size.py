"""The tracked tree stays small enough to travel: a GPU machine receives a copy limited to 64 MiB,
and carried wheels need room next to it (project rule: ≤ 40 MiB tracked)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT = 40 * 2**20


def tracked_bytes() -> tuple[int, list[tuple[int, str]]]:
    """Total size of the tracked files present in the working tree (``git ls-files | du -cb``) and the largest ten."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"not a git checkout ({exc.__class__.__name__})")
    sizes = [(path.stat().st_size, name) for name in listing.stdout.decode().split("\0") if name
             for path in [REPO / name] if path.is_file()]
    return sum(size for size, _ in sizes), sorted(sizes, reverse=True)[:10]


def test_tracked_tree_is_at_most_40_mib():
    total, largest = tracked_bytes()
    listing = "\n".join(f"{size / 2**20:6.2f} MiB  {name}" for size, name in largest)
    assert total <= LIMIT, (f"tracked tree is {total / 2**20:.1f} MiB (> 40 MiB); commit checkpoints as weights "
                            f"only (tools/slim_checkpoints.py) and only those the eval profile needs. Largest:\n{listing}")
