"""Build a notebook from a list of (kind, source, tags) cells: `build(path, cells)`.

Used to author the committed notebooks from plain Python so they stay reviewable; after building,
`make notebook NB=<name>` executes them in place under the quick profile.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

PARAMETERS = '''import os
profile = os.environ.get("FUSION_PROFILE", "eval")  # quick | eval | full
verify = "sample"  # eval: re-fuse a fixed sample ("sample") or everything ("all")
seed = 0'''


def build(path: str | Path, cells: list[tuple], parameters: str = PARAMETERS) -> Path:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (fusion_core)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    for kind, source, *tags in cells:
        meta = {"tags": list(tags[0])} if tags else {}
        nb.cells.append(new_markdown_cell(source, metadata=meta) if kind == "md" else new_code_cell(source, metadata=meta))
    path = Path(__file__).resolve().parents[1] / path  # paths are relative to the repository root
    nbformat.write(nb, path)
    return path
