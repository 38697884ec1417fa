"""One folder per paper: ``papers/<p>/`` holds its network and rules (``model.py``), loss, training protocols
(``train.py``), split lists (``splits/``), tables and figures (``experiment.py``), the paper's numbers as data
(``reported.csv``) and a README. Importing this package registers every paper's methods and rules.

Each paper's ``__init__.py`` declares a :class:`Paper`; :data:`PAPERS` maps names to them. Folders whose name
starts with ``_`` (``_template``) are not papers.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paper:
    """What the rest of the repository needs to know about a paper (the conformance test checks each field)."""

    name: str  # folder name, results/<name>/, the method name of its network
    number: str  # the project's paper id (spec ../shared/specs/<number>_*)
    title: str
    methods: tuple[str, ...]  # methods it registers (``python -m fusion_core methods``)
    convention: str  # the metric convention of its tables (``python -m fusion_core conventions``)
    notebooks: tuple[str, ...]  # notebooks/<name>.ipynb that reproduce it
    splits: tuple[str, ...]  # split / image-list files in splits/<role>.txt

    @property
    def folder(self) -> Path:
        return Path(__file__).resolve().parent / self.name


def _discover() -> dict[str, Paper]:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        if module.ispkg and not module.name.startswith("_"):
            paper = importlib.import_module(f"{__name__}.{module.name}").PAPER
            if paper.name != module.name:
                raise ValueError(f"papers/{module.name}: PAPER.name is '{paper.name}'")
            found[paper.name] = paper
    return found


PAPERS: dict[str, Paper] = _discover()
