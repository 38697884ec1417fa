"""Store the committed PNG figures with the same pixels in fewer bytes, as ``io.save_figure`` now writes them.

    python tools/compact_figures.py [--dry-run]

Every PNG git tracks is decoded and re-encoded by :func:`fusion_core.io.compact_png` (an opaque RGBA figure as
RGB, PIL's optimised deflate). A file is rewritten only where the pixels decode identically (RGBA compared) and
the bytes shrink; its row in ``results/MANIFEST.csv`` gets the new sha256 and size, so ``make verify`` holds.
A later notebook run writes the same bytes for the same figure (``save_figure`` ends in the same encoder).
"""
from __future__ import annotations

import argparse
import io as _io
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from fusion_core import io
from fusion_core.reproduce import REPO_ROOT, _read_manifest, _write_manifest


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="report the savings, write nothing")
    args = parser.parse_args(argv)
    tracked = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "*.png"], capture_output=True, text=True,
                             check=True).stdout.split()
    manifest = {row["path"]: row for row in _read_manifest()}
    before = after = changed = 0
    for name in tracked:
        path = REPO_ROOT / name
        old = path.read_bytes()
        image = Image.open(path)
        new = io.compact_png(image)
        same = np.array_equal(np.asarray(Image.open(path).convert("RGBA")),
                              np.asarray(Image.open(_io.BytesIO(new)).convert("RGBA")))
        if not same:
            raise SystemExit(f"{name}: re-encoding would change pixels; nothing written for it")
        if len(new) >= len(old):
            continue
        before, after, changed = before + len(old), after + len(new), changed + 1
        if not args.dry_run:
            with io.atomic_write(path, "wb") as handle:
                handle.write(new)
            if name in manifest:
                manifest[name]["sha256"], manifest[name]["bytes"] = io.sha256_file(path), str(len(new))
    if changed and not args.dry_run:
        _write_manifest(list(manifest.values()))
    print(f"{changed} of {len(tracked)} figures {'would shrink' if args.dry_run else 'rewritten'}: "
          f"{before} → {after} bytes ({before - after} saved)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
