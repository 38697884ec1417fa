"""Run the notebooks under a profile and keep the books: run manifests, MANIFEST.csv, the scoreboard.

``make reproduce [PROFILE=eval|quick|full] [NB=didfuse]`` calls :func:`run_notebooks`. Each notebook
``notebooks/NN_<name>.ipynb`` is executed with papermill (``profile`` and ``verify`` injected), the
executed copy goes to ``results/<paper>/`` (figures stripped from it: they are separate PNGs; so are
papermill's per-cell timestamps), with ``run_<notebook>.json`` beside it. For ``eval``/``full`` every
file the run produced is listed in ``results/MANIFEST.csv`` with its sha256, and all ``fidelity.json``
files are gathered into ``results/README.md``. ``quick`` runs write under ``build/quick/`` and leave
``results/`` alone.

Results are byte-stable where the computation is: every writer leaves a file with unchanged content
untouched (:func:`fusion_core.io.atomic_write`), and the run-dependent facts — when a run started,
how long it took, on which host and commit — live only in the run manifests ``run_<notebook>.json``,
which are a log of the last run, not results: they are not listed in ``MANIFEST.csv`` (nothing to
verify) and ``results/README.md`` only points to them. A rerun that computes the same numbers
therefore changes only the run manifests.

``python -m fusion_core.reproduce refresh notebooks/X.ipynb`` re-executes a committed notebook in place
under ``quick`` so that its ``nbval-check-output`` cells hold the outputs ``make test`` compares.

Each notebook is paired by jupytext with a percent script of the same name (``notebooks/X.py``,
``notebooks/jupytext.toml``): one source in two files, the script for review and editing, the notebook for
the outputs. ``python -m fusion_core.reproduce sync`` (``make sync``) brings every pair together; a run or
refresh refuses a pair whose cells disagree (:func:`check_pair`) before executing anything.
"""
from __future__ import annotations

import ast
import csv
import datetime as dt
import hashlib
import io as _io
import os
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Sequence

from .data import REPO_ROOT, data_root
from .io import atomic_write, sha256_file, write_json, write_text
from .report import RESULTS_ROOT, collect_fidelity, results_dir, to_markdown

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
MANIFEST = RESULTS_ROOT / "MANIFEST.csv"
MANIFEST_FIELDS = ["path", "sha256", "bytes", "notebook", "profile"]
OUTSIDE = "(outside a notebook)"  # the notebook column of a file a run found already written, e.g. by a command

# Notebooks that are not a paper's → their results folder; a paper's notebooks are listed by its
# ``Paper.notebooks`` (fusion_core/papers/<p>/__init__.py), so adding a paper does not touch this file.
SHARED_NOTEBOOKS = {"00": "datasets", "98": "classical", "99": "metrics"}
PACKAGES = ["torch", "numpy", "scipy", "pandas", "kornia", "pytorch-msssim", "PyWavelets", "opencv-python-headless",
            "scikit-image", "matplotlib", "papermill"]


def result_folders() -> dict[str, str]:
    """Notebook stem prefix or full stem → results folder: the shared notebooks' numbers and each paper's notebooks."""
    from .papers import PAPERS

    return {**SHARED_NOTEBOOKS, **{stem: paper.name for paper in PAPERS.values() for stem in paper.notebooks}}


def paper_of(notebook: Path) -> str:
    """The results folder of ``notebooks/<stem>.ipynb``: its paper (``Paper.notebooks``) or a shared notebook's."""
    folders = result_folders()
    stem = Path(notebook).stem
    if stem in folders:
        return folders[stem]
    if stem[:2] in SHARED_NOTEBOOKS:
        return SHARED_NOTEBOOKS[stem[:2]]
    known = sorted({name for name in folders.values()})
    raise ValueError(f"{notebook}: not a notebook of any paper (Paper.notebooks in fusion_core/papers/<p>/__init__.py) "
                     f"and its name does not start with one of {sorted(SHARED_NOTEBOOKS)}; results folders: {known}")


def find_notebooks(only: str | None = None) -> list[Path]:
    books = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]*.ipynb"))
    if only:
        books = [b for b in books if only in b.stem or only == paper_of(b)]
        if not books:
            raise ValueError(f"no notebook in {NOTEBOOK_DIR} matches '{only}'")
    return books


class NotebookPairError(ValueError):
    """A notebook and its paired script (jupytext) disagree, or one of the two is missing."""


def paired_script(notebook: Path) -> Path:
    """``notebooks/X.ipynb`` → ``notebooks/X.py``, its jupytext pair (percent format)."""
    return Path(notebook).with_suffix(".py")


def _shown(path: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else str(path)


def _cells(path: Path) -> list[tuple[str, str, list[str]]]:
    import jupytext

    return [(c.cell_type, c.source, list(c.metadata.get("tags", []))) for c in jupytext.read(path).cells]


def pair_difference(notebook: Path) -> str | None:
    """What first differs between a notebook and its paired script, read both with jupytext: a missing file,
    or the first cell whose type, source or tags differ, or the cell count. None when they agree.

    Outputs, ids and other metadata are not compared: outputs live only in the notebook."""
    notebook, script = Path(notebook), paired_script(notebook)
    for path in (notebook, script):
        if not path.is_file():
            return f"{_shown(path)} is missing"
    ours, theirs = _cells(notebook), _cells(script)
    for index, (a, b) in enumerate(zip(ours, theirs)):
        for field, x, y in zip(("type", "source", "tags"), a, b):
            if x == y:
                continue
            where = ""
            if field == "source":  # show the first line that differs, not the whole cell
                x, y = x.splitlines() + [""], y.splitlines() + [""]
                line = next(i for i, (u, v) in enumerate(zip(x, y)) if u != v)
                where, x, y = f" (line {line + 1})", x[line], y[line]
            return (f"cell {index} ({a[0]}) differs in its {field}{where}: "
                    f"{x!r:.100} in the notebook, {y!r:.100} in the script")
    if len(ours) != len(theirs):
        return f"{notebook.name} has {len(ours)} cells, {script.name} has {len(theirs)}"
    return None


def check_pair(notebook: Path) -> None:
    """Raise :class:`NotebookPairError` unless the notebook and its paired script hold the same cells."""
    difference = pair_difference(notebook)
    if difference:
        raise NotebookPairError(f"{_shown(notebook)} and {_shown(paired_script(notebook))} disagree: {difference}; "
                                "run `make sync` (the newer file wins) before running the notebook")


def _stable_id(cell, index: int, taken: set[str]) -> str:
    salt = 0
    while True:
        text = f"{index}\n{cell.cell_type}\n{cell.source}\n{salt}".encode()
        candidate = hashlib.sha256(text).hexdigest()[:8]
        if candidate not in taken:
            return candidate
        salt += 1


def sync_pair(path: Path) -> Path:
    """``jupytext --sync`` one pair (``path``: the notebook or its script; the newer file's cells win, the
    notebook keeps its outputs). A cell new to the notebook gets an id derived from its place and source
    instead of jupytext's random one, so that syncing the same script twice, anywhere, writes the same bytes.
    Returns the notebook's path."""
    import nbformat
    from jupytext.cli import jupytext as jupytext_cli

    notebook = Path(path).with_suffix(".ipynb")
    script = paired_script(notebook)
    kept = {c.get("id") for c in nbformat.read(notebook, as_version=4).cells} if notebook.is_file() else set()
    jupytext_cli(["--sync", "--quiet", str(notebook if notebook.is_file() else script)])
    nb = nbformat.read(notebook, as_version=4)
    taken = {c.get("id") for c in nb.cells if c.get("id") in kept}
    fresh = [(i, c) for i, c in enumerate(nb.cells) if c.get("id") not in kept]
    for index, cell in fresh:
        cell["id"] = _stable_id(cell, index, taken)
        taken.add(cell["id"])
    if fresh:
        with atomic_write(notebook, "w") as handle:
            nbformat.write(nb, handle)
        os.utime(script)  # the script stays the newer file, as jupytext's contents manager expects
    return notebook


def notebook_pairs() -> list[Path]:
    """Every notebook of ``notebooks/`` that has a notebook or a script (``NN_name.ipynb`` / ``NN_name.py``)."""
    stems = {p.stem for pattern in ("[0-9][0-9]*.ipynb", "[0-9][0-9]*.py") for p in NOTEBOOK_DIR.glob(pattern)}
    return [NOTEBOOK_DIR / f"{stem}.ipynb" for stem in sorted(stems)]


def git_sha() -> str:
    """``<sha>[-dirty]`` of the working tree (:func:`fusion_core.train.git_commit`), ``unknown`` outside git."""
    from .train import git_commit

    commit = git_commit()
    return (commit["git_sha"] + ("-dirty" if commit["git_dirty"] else "")) if commit["git_sha"] else "unknown"


def device_description() -> str:
    import torch

    from .train import cpu_model

    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {cpu_model()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def is_run_manifest(path: str | Path) -> bool:
    """``run_<notebook>.json``: the log of a notebook's last run (times, host, commit), not a result."""
    name = Path(path).name
    return name.startswith("run_") and name.endswith(".json")


def _clean(nb) -> None:
    """Drop what differs run to run but is not a result: embedded images (figures live as PNG files),
    papermill's timestamps, durations and paths (cell and notebook metadata) and the random id papermill
    gives the cell it injects (the other cells keep their ids from the committed notebook)."""
    papermill = nb.metadata.get("papermill")
    if papermill is not None:  # keep the injected parameters, drop start/end/duration/paths/environment
        nb.metadata["papermill"] = {k: v for k, v in papermill.items() if k == "parameters"}
    for cell in nb.cells:
        if "injected-parameters" in cell.metadata.get("tags", []) and "id" in cell:
            cell["id"] = "injected-parameters"
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and any(k.startswith("image/") for k in data):
                output["data"] = {"text/plain": "<figure saved as PNG; image stripped from the stored notebook>"}


def strip_images(notebook_path: Path, destination: Path | None = None) -> None:
    """Clean an executed notebook (:func:`_clean`) and write it to ``destination`` (default: in place),
    atomically; an unchanged result leaves the destination file untouched."""
    import nbformat

    nb = nbformat.read(notebook_path, as_version=4)
    _clean(nb)
    with atomic_write(destination or notebook_path, "w") as handle:
        nbformat.write(nb, handle)


def _execute(notebook: Path, output: Path, parameters: dict) -> None:
    """Run ``notebook`` with papermill and store its cleaned copy at ``output`` (rewritten only if it changed)."""
    import papermill

    with tempfile.TemporaryDirectory(prefix="fusion_core_nb_") as scratch:
        executed = Path(scratch) / notebook.name
        try:
            papermill.execute_notebook(str(notebook), str(executed), parameters=parameters, cwd=str(NOTEBOOK_DIR),
                                       progress_bar=False, kernel_name="python3")
        finally:  # a failed run keeps its executed copy (with the traceback) in results/, as before
            if executed.is_file():
                strip_images(executed, output)


def _read_manifest() -> list[dict]:
    if not MANIFEST.is_file():
        return []
    with open(MANIFEST, newline="") as handle:
        return list(csv.DictReader(handle))


def _write_manifest(rows: list[dict]) -> None:
    rows = [r for r in rows if not is_run_manifest(r["path"])]
    buffer = _io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=MANIFEST_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["path"]))
    write_text(MANIFEST, buffer.getvalue())


def _record(out_dir: Path, since: float, notebook: Path, profile: str) -> None:
    # *.partial.csv: raw files a background job is still filling (they are renamed when complete).
    # Files the run rewrote with the same bytes kept their mtime (io.atomic_write) and their row.
    files = [p for p in out_dir.rglob("*") if p.is_file() and not p.name.endswith(".partial.csv")
             and not is_run_manifest(p)]
    rows = {r["path"]: r for r in _read_manifest() if not r["path"].endswith(".partial.csv")}
    # A rerun of a notebook replaces its rows; files it no longer writes drop out of the manifest.
    rows = {k: r for k, r in rows.items() if r["notebook"] != notebook.name or (REPO_ROOT / k).is_file()}
    for path in files:
        rel = path.relative_to(REPO_ROOT).as_posix()
        digest = sha256_file(path)
        if path.stat().st_mtime >= since - 1:
            owner = notebook.name
        elif rel not in rows or rows[rel]["sha256"] != digest:
            # Written outside a notebook run (e.g. raw files re-scored by a paper's experiment command) and read by
            # this one: the manifest holds the folder the results were built from, so such a file is listed with
            # its current hash rather than left stale (verify would fail) or unlisted (verify could not see it).
            owner = rows[rel]["notebook"] if rel in rows else OUTSIDE
        else:
            continue
        rows[rel] = {"path": rel, "sha256": digest, "bytes": path.stat().st_size, "notebook": owner,
                     "profile": profile}
    _write_manifest(list(rows.values()))


def write_scoreboard(runs: list[dict] | None = None) -> Path:
    """``results/README.md``: one row per paper from its fidelity.json, then each notebook's profile and run manifest.

    No times or commits here (they change with every run): those are in the run manifests it links.
    """
    import json

    board = collect_fidelity()
    lines = [
        "# Results scoreboard",
        "",
        "Generated by `make reproduce`; do not edit. `cells`: reported numbers we also computed (same or",
        "substitute data); `within_5pct`: of those, how many are within ±5 % of the paper; `sign_agree`",
        "/`sign_total`: ablation differences (full − variant) with the paper's sign. Substitutes are listed",
        "per paper; every table in `results/<paper>/` names its profile, repeats, device and data.",
        "`reading`: where a paper's tables can be read in more than one way, what each row counts; the row",
        "without brackets is the paper's headline reading and says why.",
        "",
    ]
    if len(board):
        board = board.assign(substitutes=board["substitutes"].map(lambda s: "; ".join(s or [])))
        lines.append(to_markdown(board))
    else:
        lines.append("No paper has produced a fidelity summary yet.\n")
    lines += ["## Runs", "", "When each notebook last ran, for how long, on which device and commit, with which package",
              "versions: its run manifest.", "", "| notebook | profile | run manifest |", "|---|---|---|"]
    for path in sorted(RESULTS_ROOT.glob("*/run_*.json")):
        run = json.loads(path.read_text())
        rel = path.relative_to(RESULTS_ROOT).as_posix()
        lines.append(f"| {run['notebook']} | {run['profile']} | [{rel}]({rel}) |")
    return write_text(RESULTS_ROOT / "README.md", "\n".join(lines) + "\n")


def parse_params(items: Sequence[str]) -> dict:
    """``["repeats=25", "protocol=paper"]`` → ``{"repeats": 25, "protocol": "paper"}``.

    Values are Python literals where they parse as one (numbers, None, lists, quoted strings), else strings.
    """
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ValueError(f"notebook parameter '{item}' is not NAME=VALUE")
        try:
            params[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[key.strip()] = value
    return params


def run_notebooks(profile: str = "eval", only: str | None = None, verify: str = "sample",
                  params: dict | None = None) -> int:
    """Execute the notebooks (``only``: names or papers containing it); ``params`` are extra notebook parameters."""
    books = find_notebooks(only)
    for notebook in books:  # all pairs agree, or nothing runs
        check_pair(notebook)
    failures = []
    for notebook in books:
        paper = paper_of(notebook)
        out_dir = results_dir(paper, profile)
        started, t0 = dt.datetime.now(dt.timezone.utc), time.time()
        parameters = {"profile": profile, "verify": verify, **(params or {})}
        print(f"[{profile}] {notebook.name} → {out_dir.relative_to(REPO_ROOT)}", flush=True)
        output = out_dir / notebook.name
        try:
            _execute(notebook, output, parameters)
        except Exception as exc:  # a failed notebook must not stop the others; reported at the end
            failures.append(f"{notebook.name}: {exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            print(f"  FAILED: {failures[-1]}", flush=True)
            continue
        minutes = (time.time() - t0) / 60
        write_json(out_dir / f"run_{notebook.stem}.json", {
            "notebook": notebook.name, "paper": paper, "profile": profile, "parameters": parameters,
            "git_sha": git_sha(), "device": device_description(), "start": started.isoformat(timespec="seconds"),
            "end": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "minutes": round(minutes, 2),
            "packages": package_versions(), "data_root": str(data_root()),
        })
        print(f"  done in {minutes:.1f} min", flush=True)
        if profile != "quick":
            _record(out_dir, t0, notebook, profile)
    if profile != "quick":
        write_scoreboard()
        _record_file(RESULTS_ROOT / "README.md", "runner", profile)
    if failures:
        print("notebooks that failed:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    return 0


def _record_file(path: Path, notebook: str, profile: str) -> None:
    rows = {r["path"]: r for r in _read_manifest()}
    rel = path.relative_to(REPO_ROOT).as_posix()
    rows[rel] = {"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size, "notebook": notebook,
                 "profile": profile}
    _write_manifest(list(rows.values()))


def verify_manifest() -> int:
    """Every file in results/MANIFEST.csv exists and has the recorded sha256."""
    rows = _read_manifest()
    if not rows:
        print(f"error: {MANIFEST} is missing or empty; run `make reproduce` first", file=sys.stderr)
        return 1
    problems = []
    for row in rows:
        path = REPO_ROOT / row["path"]
        if not path.is_file():
            problems.append(f"{row['path']}: missing")
        elif sha256_file(path) != row["sha256"]:
            problems.append(f"{row['path']}: sha256 differs from the manifest")
    for problem in problems:
        print(problem)
    print(f"{len(rows) - len(problems)}/{len(rows)} files match {MANIFEST.relative_to(REPO_ROOT)}")
    return 1 if problems else 0


def refresh_notebook(path: Path, timeout: int = 1800) -> None:
    """Execute a committed notebook in place under the quick profile (its stored outputs become the nbval reference).

    Refuses a notebook whose paired script disagrees (:func:`check_pair`), and syncs the script afterwards
    (same cells; the outputs stay in the notebook only)."""
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    check_pair(path)
    nb = nbformat.read(path, as_version=4)
    os.environ["FUSION_PROFILE"] = "quick"
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nb.metadata.pop("papermill", None)
    _clean(nb)
    with atomic_write(path, "w") as handle:
        nbformat.write(nb, handle)
    sync_pair(path)


def main(argv: Sequence[str]) -> int:
    if len(argv) >= 2 and argv[0] == "refresh":
        for name in argv[1:]:  # every pair is checked before the first one executes
            check_pair(Path(name))
        for name in argv[1:]:
            print(f"refreshing {name} under the quick profile", flush=True)
            refresh_notebook(Path(name))
        return 0
    if argv[:1] == ["sync"]:
        for path in [Path(a) for a in argv[1:]] or notebook_pairs():
            sync_pair(path)
            print(f"in sync: {_shown(path.with_suffix('.ipynb'))} = {_shown(paired_script(path))}", flush=True)
        return 0
    print("usage: python -m fusion_core.reproduce refresh notebooks/NN_name.ipynb ...\n"
          "       python -m fusion_core.reproduce sync [notebooks/NN_name.ipynb ...]   (all pairs by default)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except NotebookPairError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2)
