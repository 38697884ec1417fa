"""The tracked tree stays small enough to travel: a GPU machine receives a copy limited to 64 MiB,
and carried wheels need room next to it (project rule: ≤ 40 MiB tracked)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LIMIT = 40 * 2**20


def _tracked(*patterns: str) -> list[str]:
    """The tracked paths (``git ls-files``, optionally limited to ``patterns``); skips outside a git checkout."""
    try:
        listing = subprocess.run(["git", "ls-files", "-z", *patterns], cwd=REPO, capture_output=True, check=True,
                                 timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"not a git checkout ({exc.__class__.__name__})")
    return [name for name in listing.stdout.decode().split("\0") if name]


def tracked_bytes() -> tuple[int, list[tuple[int, str]]]:
    """Total size of the tracked files present in the working tree (``git ls-files | du -cb``) and the largest ten."""
    sizes = [(path.stat().st_size, name) for name in _tracked() for path in [REPO / name] if path.is_file()]
    return sum(size for size, _ in sizes), sorted(sizes, reverse=True)[:10]


def test_tracked_tree_is_at_most_40_mib():
    total, largest = tracked_bytes()
    listing = "\n".join(f"{size / 2**20:6.2f} MiB  {name}" for size, name in largest)
    assert total <= LIMIT, (f"tracked tree is {total / 2**20:.1f} MiB (> 40 MiB); commit checkpoints as weights "
                            f"only (tools/slim_checkpoints.py) and only those the eval profile needs. Largest:\n{listing}")


def test_committed_checkpoints_are_stored_as_xz_with_a_manifest_that_matches():
    """Every committed weights file is published (xz, tools/slim_checkpoints.py --xz) and its manifest names the
    stored file's sha256 and size, so the results key (``checksum``) is the manifest's."""
    import json

    from fusion_core.io import XZ_MAGIC, sha256_file

    checkpoints = _tracked("checkpoints/*.pt")
    assert checkpoints
    for name in checkpoints:
        path = REPO / name
        manifest = json.loads(path.with_suffix(".json").read_text())
        assert path.read_bytes()[:6] == XZ_MAGIC, f"{name}: not stored as xz (tools/slim_checkpoints.py --xz)"
        assert manifest["sha256"] == sha256_file(path) and manifest["bytes"] == path.stat().st_size, name
        assert manifest["stored_as"] == "xz" and len(manifest["checksum"]) == 16, name


def test_every_learned_method_has_its_default_weights_committed():
    """``fuse --method M`` without --weights works in a fresh clone for every learned method: its default is a
    tracked file, or the authors' released weights the data root ships (DIDFuse also has a tracked fallback)."""
    from fusion_core import methods

    tracked = {REPO / name for name in _tracked("checkpoints")}
    learned = [name for name in methods.method_names() if methods.method_info(name).kind == "learned"]
    assert {"didfuse", "res2netfuse", "msfam", "nestfuse", "amfe", "savf"} <= set(learned)
    for name in learned:
        default = methods.method_info(name).default_weights()
        if name == "didfuse":  # the released weights when found, else the committed reference checkpoint
            from fusion_core.papers.didfuse.model import REFERENCE_CHECKPOINT
            assert REFERENCE_CHECKPOINT.resolve() in tracked
            continue
        if not default.path.resolve().is_relative_to(REPO):  # released weights the data root ships (MFEIF)
            assert default.path.exists(), f"{name}: default weights {default.path} not found"
            continue
        assert default.path.resolve() in tracked, f"{name}: default weights {default.path} are not committed"
