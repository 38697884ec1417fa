"""Every paper folder has the shape CONTRIBUTING's "Adding a paper" describes (one check per promise).

Each check is a function of a :class:`Paper` that raises ``AssertionError`` naming the paper and the problem;
the tests run it over :data:`fusion_core.papers.PAPERS`, and ``test_each_check_fails_on_a_broken_paper`` shows
that each one fails on a copy of ``papers/_template/`` that keeps none of the promises.
"""
from __future__ import annotations

import ast
import importlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from fusion_core import data, methods, report
from fusion_core.metrics.conventions import get_convention
from fusion_core.papers import PAPERS, Paper

NOTEBOOKS = data.REPO_ROOT / "notebooks"
TEMPLATE = Path(__file__).resolve().parents[1] / "fusion_core" / "papers" / "_template"
# The parameter cell every paper notebook starts with, so `make reproduce PARAMS=...` means the same everywhere.
COMMON_PARAMETERS = ("profile", "verify", "seed", "repeats", "device", "threads")
README_SECTIONS = ("What is reproduced", "What is substituted", "Commands")

papers = pytest.mark.parametrize("paper", list(PAPERS.values()), ids=list(PAPERS))


# --------------------------------------------------------------------------- the checks

def check_methods(paper: Paper) -> None:
    missing = [m for m in paper.methods if m not in methods.method_names()]
    assert paper.methods and not missing, f"{paper.name}: methods {missing or '(none declared)'} not registered in METHODS"


def check_convention(paper: Paper) -> None:
    """The convention is a table of :mod:`fusion_core.metrics.conventions` or one of its aliases (res2netfuse → li)."""
    try:
        get_convention(paper.convention)
    except ValueError as exc:
        raise AssertionError(f"{paper.name}: {exc}") from None


def is_image_list(entries: list[str]) -> bool:
    """Image lists name one picture per line (``skimage:<name>``, ``<dataset>/<stem>/<side>``); splits name pairs."""
    return all(e.startswith("skimage:") or e.count("/") == 2 for e in entries)


def check_splits(paper: Paper) -> None:
    """Each split loads its pairs; each image list loads, and its first and last picture decode."""
    for role in paper.splits:
        try:
            entries = data.load_image_list(paper.name, role)
            if is_image_list(entries):
                for spec in (entries[0], entries[-1]):
                    data.natural_image(spec)
            else:
                assert data.load_split(paper.name, role), f"{data.split_path(paper.name, role)}: no pair"
        except data.DataError as exc:
            raise AssertionError(f"{paper.name}: split '{role}' does not load: {exc}") from None


def check_reported(paper: Paper) -> None:
    try:
        frame = report.load_reported(paper.name)
    except (FileNotFoundError, ValueError) as exc:
        raise AssertionError(f"{paper.name}: {exc}") from None
    assert len(frame), f"{paper.folder / 'reported.csv'}: no row (the paper's numbers go there as data)"
    assert frame["value"].notna().all(), f"{paper.folder / 'reported.csv'}: rows without a value"


def parameter_cell(notebook: Path) -> set[str]:
    """Names the first cell assigns, after checking that it is tagged ``parameters`` (parsed, not executed)."""
    cells = json.loads(notebook.read_text())["cells"]
    first = cells[0] if cells else {}
    assert "parameters" in first.get("metadata", {}).get("tags", []), f"{notebook}: first cell is not tagged parameters"
    source = "".join(first["source"]) if isinstance(first["source"], list) else first["source"]
    return {target.id for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Assign, ast.AnnAssign))
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)}


def check_notebooks(paper: Paper, folder: Path = NOTEBOOKS) -> None:
    assert paper.notebooks, f"{paper.name}: declares no notebook"
    for name in paper.notebooks:
        notebook, script = folder / f"{name}.ipynb", folder / f"{name}.py"
        assert notebook.is_file() and script.is_file(), f"{notebook}: missing, or its paired script {script.name}"
        missing = [p for p in COMMON_PARAMETERS if p not in parameter_cell(notebook)]
        assert not missing, f"{notebook}: parameter cell lacks {missing} (common schema {list(COMMON_PARAMETERS)})"
        # results_dir reads the parameters of the notebook that calls it (non-default ones go to build/params/, bad
        # ones stop the run): called from a helper module instead, neither happens and the canonical folder is written
        code = [c for c in json.loads(notebook.read_text())["cells"][1:] if c["cell_type"] == "code"]
        calls = [c for c in code if "report.results_dir(" in "".join(c["source"])]
        assert calls, f"{notebook}: no cell calls report.results_dir(...) itself (a helper cannot see the parameters)"


def check_readme(paper: Paper) -> None:
    readme = paper.folder / "README.md"
    assert readme.is_file(), f"{readme}: missing"
    headings = {line.lstrip("#").strip().lower() for line in readme.read_text().splitlines() if line.startswith("## ")}
    missing = [s for s in README_SECTIONS if s.lower() not in headings]
    assert not missing, f"{readme}: lacks the sections {missing}"


def check_protocols(train_module) -> None:
    protocols = getattr(train_module, "PROTOCOLS", {})
    assert "quick" in protocols, f"{train_module.__name__}: PROTOCOLS {sorted(protocols)} has no 'quick' protocol"


def check_quick_training_fuses(paper: Paper, train_module, out: Path, pair: data.PairImages) -> None:
    """The quick protocol trains, and the paper's first method fuses a real pair with the checkpoint it wrote."""
    checkpoint, history = train_module.train_model(protocol="quick", seed=0, out=out, progress=False)
    assert Path(checkpoint).is_file() and len(history), f"{paper.name}: quick training wrote no checkpoint"
    fused = methods.build_method(paper.methods[0], weights=checkpoint)(pair.ir, pair.vis)
    assert fused.shape == pair.ir.shape, f"{paper.name}: fused {tuple(fused.shape)} for a {tuple(pair.ir.shape)} pair"
    assert torch.isfinite(fused).all() and 0 <= fused.min() and fused.max() <= 1, f"{paper.name}: fused outside [0, 1]"


# --------------------------------------------------------------------------- over every paper

def test_papers_are_discovered_and_the_template_is_not_one():
    assert {"didfuse", "res2netfuse"} <= set(PAPERS) and not any(n.startswith("_") for n in PAPERS)


@papers
def test_methods_are_registered(paper):
    check_methods(paper)


@papers
def test_convention_exists(paper):
    check_convention(paper)


@papers
def test_splits_load(paper, data_root):
    check_splits(paper)


@papers
def test_reported_numbers_load(paper):
    check_reported(paper)


@papers
def test_notebooks_are_paired_and_start_with_the_common_parameters(paper):
    check_notebooks(paper)


@papers
def test_readme_has_the_three_sections(paper):
    check_readme(paper)


@papers
def test_train_declares_a_quick_protocol(paper):
    check_protocols(importlib.import_module(f"fusion_core.papers.{paper.name}.train"))


@pytest.fixture(scope="module")
def small_pair(data_root) -> data.PairImages:
    images = data.load_pair(data.list_pairs("tno40")[0])
    crop = (slice(None), slice(None), slice(64, 192), slice(64, 192))
    return data.PairImages(images.pair, images.ir[crop], images.vis[crop], None)


@pytest.mark.slow
@papers
def test_quick_protocol_trains_and_the_method_fuses_with_its_checkpoint(paper, small_pair, tmp_path):
    check_quick_training_fuses(paper, importlib.import_module(f"fusion_core.papers.{paper.name}.train"),
                               tmp_path, small_pair)


# --------------------------------------------------------------------------- the template and the checks themselves

def test_the_template_imports_and_registers_nothing():
    before = (set(methods.method_names()), set(importlib.import_module("fusion_core.rules").RULES))
    for module in ("", ".model", ".loss", ".train", ".experiment"):
        importlib.import_module(f"fusion_core.papers._template{module}")
    assert (set(methods.method_names()), set(importlib.import_module("fusion_core.rules").RULES)) == before
    check_protocols(importlib.import_module("fusion_core.papers._template.train"))


def test_each_check_fails_on_a_broken_paper(tmp_path, monkeypatch):
    """A copy of the template, declared but not filled in: no method, an unknown convention, a split that is
    not there, no reported row, a notebook whose parameter cell lacks `device`, a README without its sections."""
    root = tmp_path / "papers"
    shutil.copytree(TEMPLATE, root / "broken")
    (root / "broken" / "README.md").write_text("# broken\n\n## Commands\n")
    monkeypatch.setattr(data, "PAPERS_DIR", root)
    monkeypatch.setattr(report, "PAPERS_ROOT", root)
    monkeypatch.setattr(Paper, "folder", property(lambda self: root / self.name))
    cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [], "execution_count": None,
            "source": "profile = 'eval'\nverify = 'sample'\nseed = 0\nrepeats = None\nthreads = 1\n"}
    (tmp_path / "90_broken.ipynb").write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4,
                                                          "nbformat_minor": 5}))
    (tmp_path / "90_broken.py").write_text("# %% tags=[\"parameters\"]\n" + cell["source"])
    broken = Paper(name="broken", number="000", title="broken", methods=("broken",), convention="broken",
                   notebooks=("90_broken",), splits=("val",))
    checks = {"methods": lambda: check_methods(broken), "convention": lambda: check_convention(broken),
              "splits": lambda: check_splits(broken), "reported": lambda: check_reported(broken),
              "notebooks": lambda: check_notebooks(broken, tmp_path), "readme": lambda: check_readme(broken),
              "protocols": lambda: check_protocols(type("train", (), {"PROTOCOLS": {"paper": None}}))}
    accepted = []
    for name, check in checks.items():
        try:
            check()
        except AssertionError:
            continue
        accepted.append(name)
    assert not accepted, f"checks that accept the broken paper: {accepted}"
    (tmp_path / "90_broken.ipynb").unlink()
    with pytest.raises(AssertionError, match="missing"):
        check_notebooks(broken, tmp_path)
