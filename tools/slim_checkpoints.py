"""Rewrite full training checkpoints as weights only (fp32 state dict), updating each manifest.

    python tools/slim_checkpoints.py checkpoints/*/*.pt
    python tools/slim_checkpoints.py --fp16 checkpoints/didfuse/*.pt     # then store the weights in float16
    python tools/slim_checkpoints.py --fp16 --delta-of checkpoints/savf/savf_reduced_seed0.pt checkpoints/savf/savf_reduced_nocam_seed0.pt
    python tools/slim_checkpoints.py --xz $(git ls-files 'checkpoints/*.pt')     # store them as xz (lossless)

The results key the raw per-image files record stays in the manifest (``checksum``) when slimming, so
committed raw results remain valid; the full state moves to ``NAME.resume.pt`` (ignored by git). See
:func:`fusion_core.train.slim_checkpoint`. ``--fp16`` halves the bytes again
(:func:`fusion_core.train.publish_fp16`): the weights change (rounded to float16), so does ``checksum``,
and every raw file computed from the fp32 weights becomes stale and is recomputed by the engine. ``--delta-of BASE``
then keeps only the tensors that differ from BASE's (:func:`fusion_core.train.publish_delta`: an ablation row that
trains one part on frozen parts copied from BASE stores that part alone; loading puts BASE's tensors back). ``--xz``
last stores each file as an xz stream of its bytes (:func:`fusion_core.train.publish_xz`): lossless, so ``checksum``
and every raw file stay valid; every loader of the package reads both forms.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from fusion_core.train import publish_delta, publish_fp16, publish_xz, slim_checkpoint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="NAME.pt files (NAME.resume.pt files are skipped)")
    parser.add_argument("--fp16", action="store_true", help="also store the weights in float16 (new checksum)")
    parser.add_argument("--delta-of", metavar="BASE", help="then store only what differs from the weights file BASE")
    parser.add_argument("--xz", action="store_true", help="last, store the file as xz (lossless, same checksum)")
    args = parser.parse_args(argv)
    total_before = total_after = 0
    for name in args.paths:
        path = Path(name)
        if path.name.endswith(".resume.pt"):
            continue
        before, after = slim_checkpoint(path)
        if args.fp16:
            after = publish_fp16(path).stat().st_size
        if args.delta_of:
            after = publish_delta(path, args.delta_of).stat().st_size
        if args.xz:
            after = publish_xz(path).stat().st_size
        total_before, total_after = total_before + before, total_after + after
        print(f"{path}: {before / 1e6:.2f} MB → {after / 1e6:.2f} MB")
    print(f"total {total_before / 1e6:.1f} MB → {total_after / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
