"""Rewrite full training checkpoints as weights only (fp32 state dict), updating each manifest.

    python tools/slim_checkpoints.py checkpoints/*/*.pt

The results key the raw per-image files record stays in the manifest (``checksum``), so committed raw
results remain valid; the full state moves to ``NAME.resume.pt`` (ignored by git). See
:func:`fusion_core.train.slim_checkpoint`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from fusion_core.train import slim_checkpoint


def main(paths: list[str]) -> int:
    total_before = total_after = 0
    for name in paths:
        path = Path(name)
        if path.name.endswith(".resume.pt"):
            continue
        before, after = slim_checkpoint(path)
        total_before, total_after = total_before + before, total_after + after
        print(f"{path}: {before / 1e6:.2f} MB → {after / 1e6:.2f} MB")
    print(f"total {total_before / 1e6:.1f} MB → {total_after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
