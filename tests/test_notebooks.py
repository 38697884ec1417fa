"""Each notebook and its jupytext script (notebooks/NN_name.ipynb + NN_name.py) are one source.

Read only, nothing executes: the pairs exist both ways, hold the same cells (type, source, tags), start
with the `parameters` cell, and a disagreeing pair is refused before anything runs.
"""
from __future__ import annotations

import shutil

import nbformat
import pytest

from fusion_core import reproduce
from fusion_core.reproduce import NOTEBOOK_DIR, NotebookPairError

NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]*.ipynb"))
EXAMPLE = NOTEBOOK_DIR / "00_datasets.ipynb"


def test_every_notebook_has_its_script_and_every_script_its_notebook():
    notebooks = {p.stem for p in NOTEBOOKS}
    scripts = {p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]*.py")}
    assert notebooks, f"no notebook in {NOTEBOOK_DIR}"
    assert notebooks - scripts == set(), "notebooks without a paired script: run `make sync`"
    assert scripts - notebooks == set(), "scripts without a paired notebook: run `make sync`"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_script_hold_the_same_cells(notebook):
    assert reproduce.pair_difference(notebook) is None, reproduce.pair_difference(notebook)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_is_the_parameters_cell(notebook):
    first = nbformat.read(notebook, as_version=4).cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", []), notebook.name


@pytest.fixture
def pair_copy(tmp_path, monkeypatch):
    """00_datasets (notebook, script, jupytext.toml) in a scratch notebooks/ folder that reproduce looks into."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for path in (EXAMPLE, reproduce.paired_script(EXAMPLE), NOTEBOOK_DIR / "jupytext.toml"):
        shutil.copy2(path, folder / path.name)
    monkeypatch.setattr(reproduce, "NOTEBOOK_DIR", folder)
    return folder / EXAMPLE.name


def _edit_script(notebook, old, new):
    script = reproduce.paired_script(notebook)
    text = script.read_text()
    assert old in text
    script.write_text(text.replace(old, new, 1))


def test_an_edited_script_is_reported_at_its_first_differing_cell(pair_copy):
    _edit_script(pair_copy, "from fusion_core import data, io, report", "from fusion_core import data, report")
    assert reproduce.pair_difference(pair_copy).startswith("cell 2 (code) differs in its source (line 6)")


def test_an_edited_tag_is_reported(pair_copy):
    _edit_script(pair_copy, '# %% tags=["parameters"]', "# %%")
    assert reproduce.pair_difference(pair_copy).startswith("cell 0 (code) differs in its tags")


def test_a_missing_script_is_reported(pair_copy):
    reproduce.paired_script(pair_copy).unlink()
    assert reproduce.pair_difference(pair_copy).endswith("00_datasets.py is missing")


def test_a_disagreeing_pair_is_refused_before_anything_runs(pair_copy):
    _edit_script(pair_copy, "seed = 0", "seed = 1")
    before = pair_copy.read_bytes()
    with pytest.raises(NotebookPairError, match=r"00_datasets\.ipynb and .*00_datasets\.py disagree.*make sync"):
        reproduce.refresh_notebook(pair_copy)
    with pytest.raises(NotebookPairError, match="make sync"):
        reproduce.run_notebooks(profile="quick")
    assert pair_copy.read_bytes() == before


def test_sync_takes_the_newer_script_keeps_ids_and_outputs_and_gives_new_cells_stable_ids(pair_copy, tmp_path):
    original = nbformat.read(pair_copy, as_version=4)
    script = reproduce.paired_script(pair_copy)
    script.write_text(script.read_text() + '\n# %%\nprint("a new cell")\n')
    twin = tmp_path / "twin"
    shutil.copytree(pair_copy.parent, twin)

    reproduce.sync_pair(pair_copy)
    reproduce.sync_pair(twin / pair_copy.name)
    synced = nbformat.read(pair_copy, as_version=4)
    assert reproduce.pair_difference(pair_copy) is None
    assert [c.id for c in synced.cells[:-1]] == [c.id for c in original.cells]
    assert [c.get("outputs") for c in synced.cells[:-1]] == [c.get("outputs") for c in original.cells]
    assert synced.cells[-1].source == 'print("a new cell")'
    assert pair_copy.read_bytes() == (twin / pair_copy.name).read_bytes(), "a new cell's id depends on the run"
    synced_bytes = pair_copy.read_bytes()
    reproduce.sync_pair(pair_copy)
    assert pair_copy.read_bytes() == synced_bytes
