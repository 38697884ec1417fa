"""The notebook runner's bookkeeping: notebook → paper mapping, MANIFEST.csv recording and verification."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from fusion_core import reproduce


@pytest.fixture()
def sandbox(tmp_path, monkeypatch):
    monkeypatch.setattr(reproduce, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "MANIFEST", tmp_path / "results" / "MANIFEST.csv")
    out = tmp_path / "results" / "didfuse"
    out.mkdir(parents=True)
    return out


def test_notebook_names_map_to_result_folders():
    assert reproduce.paper_of(Path("01a_didfuse_table3_strategies.ipynb")) == "didfuse"
    assert reproduce.paper_of(Path("02b_res2netfuse_table3.ipynb")) == "res2netfuse"
    assert reproduce.paper_of(Path("99_metric_validation.ipynb")) == "metrics"
    with pytest.raises(ValueError, match="not a notebook of any paper"):
        reproduce.paper_of(Path("x_notes.ipynb"))
    assert reproduce.paper_of(Path("03_msfam.ipynb")) == "msfam"
    with pytest.raises(ValueError, match="not a notebook of any paper"):
        reproduce.paper_of(Path("03a_msfam_table1.ipynb"))  # a paper's notebook counts once its Paper lists it


def test_every_committed_notebook_has_a_parameters_cell_first():
    import nbformat

    books = reproduce.find_notebooks()
    assert books, "no notebooks found"
    for book in books:
        first = nbformat.read(book, as_version=4).cells[0]
        assert "parameters" in first.metadata.get("tags", []), f"{book.name}: first cell not tagged 'parameters'"
        assert "profile" in first.source, f"{book.name}: no profile parameter"


def test_recorded_files_verify_until_one_changes(sandbox, capsys):
    since = time.time()
    (sandbox / "table.csv").write_text("a,b\n1,2\n")
    (sandbox / "fig.png").write_bytes(b"\x89PNG fake")
    reproduce._record(sandbox, since, Path("01_didfuse.ipynb"), "eval")
    assert reproduce.verify_manifest() == 0
    (sandbox / "table.csv").write_text("a,b\n1,3\n")
    assert reproduce.verify_manifest() == 1
    assert "results/didfuse/table.csv: sha256 differs" in capsys.readouterr().out
    (sandbox / "fig.png").unlink()
    assert reproduce.verify_manifest() == 1
    assert "results/didfuse/fig.png: missing" in capsys.readouterr().out


def test_raw_files_still_being_filled_are_not_recorded(sandbox):
    since = time.time()
    (sandbox / "raw").mkdir()
    (sandbox / "raw" / "full_seed0_sum.partial.csv").write_text("stem\n01\n")
    (sandbox / "raw" / "full_seed0_sal-cam.csv").write_text("stem\n01\n")
    reproduce._record(sandbox, since, Path("01_didfuse.ipynb"), "eval")
    paths = [row["path"] for row in reproduce._read_manifest()]
    assert paths == ["results/didfuse/raw/full_seed0_sal-cam.csv"]


def test_files_written_outside_a_run_are_listed_with_their_current_hash(sandbox):
    """Raw files re-scored by a command before the notebook runs are what its tables are built from: a stale row
    (the bug that left 7 DIDFuse raw files failing verify) or no row at all is not acceptable."""
    import os

    since = time.time()
    (sandbox / "raw").mkdir()
    old, new = sandbox / "raw" / "a.csv", sandbox / "raw" / "b.csv"
    old.write_text("stem\n01\n")
    reproduce._record(sandbox, since, Path("01_didfuse.ipynb"), "eval")
    old.write_text("stem\n02\n")  # re-scored by a command
    new.write_text("stem\n03\n")  # written by a command, never listed
    for path in (old, new):
        os.utime(path, (1_000_000, 1_000_000))
    (sandbox / "table.csv").write_text("a\n1\n")
    reproduce._record(sandbox, time.time() - 0.5, Path("01b_didfuse_table4_ablation.ipynb"), "eval")
    rows = {row["path"]: row for row in reproduce._read_manifest()}
    assert rows["results/didfuse/raw/a.csv"]["notebook"] == "01_didfuse.ipynb"
    assert rows["results/didfuse/raw/b.csv"]["notebook"] == reproduce.OUTSIDE
    assert rows["results/didfuse/table.csv"]["notebook"] == "01b_didfuse_table4_ablation.ipynb"
    assert reproduce.verify_manifest() == 0


def test_missing_manifest_is_an_error(sandbox, capsys):
    assert reproduce.verify_manifest() == 1
    assert "missing or empty" in capsys.readouterr().err


def test_guarded_notebook_cells_store_no_stderr_or_errors():
    """nbval compares stderr too; warnings there carry per-run temp paths and make the check flaky."""
    import nbformat

    for book in reproduce.find_notebooks():
        for index, cell in enumerate(nbformat.read(book, as_version=4).cells):
            if "nbval-check-output" not in cell.metadata.get("tags", []):
                continue
            assert cell.get("outputs"), f"{book.name} cell {index}: guarded cell has no stored output"
            for output in cell["outputs"]:
                assert output.get("name") != "stderr" and output.get("output_type") != "error", \
                    f"{book.name} cell {index}: stored {output.get('name') or output.get('output_type')}"


def test_extra_notebook_parameters_parse_as_literals_or_strings():
    assert reproduce.parse_params(["repeats=25", "protocol=paper", "seeds=[0, 1]", "x=None", "name='a b'"]) == {
        "repeats": 25, "protocol": "paper", "seeds": [0, 1], "x": None, "name": "a b"}
    with pytest.raises(ValueError, match="'repeats' is not NAME=VALUE"):
        reproduce.parse_params(["repeats"])


def test_didfuse_notebooks_expose_repeats_and_protocol():
    import nbformat

    for book in reproduce.find_notebooks("didfuse"):
        source = nbformat.read(book, as_version=4).cells[0].source
        assert "repeats = None" in source and "protocol = None" in source, book.name


def test_run_manifests_are_not_recorded(sandbox):
    """run_<notebook>.json holds times and the host: a log of the run, not a result to verify."""
    since = time.time()
    (sandbox / "table.csv").write_text("a\n1\n")
    (sandbox / "run_01_didfuse.json").write_text('{"start": "now"}\n')
    reproduce._record(sandbox, since, Path("01_didfuse.ipynb"), "eval")
    assert [row["path"] for row in reproduce._read_manifest()] == ["results/didfuse/table.csv"]


def test_rewriting_the_same_bytes_leaves_the_file_and_manifest_untouched(sandbox):
    import os

    from fusion_core import io

    table = io.write_text(sandbox / "table.csv", "a\n1\n")
    os.utime(table, (1_000_000, 1_000_000))
    reproduce._record(sandbox, 0, Path("01_didfuse.ipynb"), "eval")
    manifest = reproduce.MANIFEST.read_bytes()
    since = time.time()
    io.write_text(table, "a\n1\n")  # a rerun with the same result
    assert table.stat().st_mtime == 1_000_000
    reproduce._record(sandbox, since, Path("01_didfuse.ipynb"), "eval")
    assert reproduce.MANIFEST.read_bytes() == manifest
    io.write_text(table, "a\n2\n")
    assert table.stat().st_mtime > 1_000_000


def test_executed_notebooks_keep_no_timestamps():
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["papermill"] = {"start_time": "2026-12-01T22:35:29", "duration": 3.2, "parameters": {"profile": "eval"},
                                "input_path": "/home/x/notebooks/a.ipynb"}
    nb.cells[0].metadata["papermill"] = {"start_time": "2026-12-01T22:35:29", "duration": 0.1}
    nb.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-12-01T22:35:29"}
    injected = nbformat.v4.new_code_cell("profile = 'eval'", metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(0, injected)
    kept = nb.cells[1].id
    reproduce._clean(nb)
    assert [cell.id for cell in nb.cells] == ["injected-parameters", kept]
    assert nb.metadata["papermill"] == {"parameters": {"profile": "eval"}}
    assert "papermill" not in nb.cells[1].metadata and "execution" not in nb.cells[1].metadata


def test_scoreboard_carries_no_times(tmp_path, monkeypatch):
    import json

    monkeypatch.setattr(reproduce, "RESULTS_ROOT", tmp_path)
    monkeypatch.setattr(reproduce, "collect_fidelity", lambda: __import__("pandas").DataFrame())
    (tmp_path / "didfuse").mkdir()
    (tmp_path / "didfuse" / "run_01_didfuse.json").write_text(json.dumps(
        {"notebook": "01_didfuse.ipynb", "profile": "eval", "start": "2026-12-01T22:35:29+00:00", "minutes": 3.0,
         "git_sha": "abc"}))
    text = reproduce.write_scoreboard().read_text()
    assert "| 01_didfuse.ipynb | eval | [didfuse/run_01_didfuse.json](didfuse/run_01_didfuse.json) |" in text
    assert "2026" not in text and "abc" not in text
