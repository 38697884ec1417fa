"""Notebook parameters: one clear error for a bad value, and a results folder of its own for non-default ones.

A notebook's ``parameters`` cell is the contract: its values are the *canonical* parameters, and only
they write ``results/<paper>/``. :func:`fusion_core.report.results_dir` calls :func:`redirect` with the
calling notebook's variables, so a notebook run with other values (papermill ``-p``/``-y``, or
``python -m fusion_core sweep --notebook``) writes to ``build/params/<profile>/<paper>/<k>-<v>_…/``
instead, and says so (under ``eval``, which only reads raw per-image results, its ``raw*`` folders link to
the canonical ones); a value of the wrong type stops the run at once with one message naming the
parameter, its default and what was given (papermill's ``-p`` passes text: ``-p qualitative_pairs "['02']"``
is a string; use ``-y "qualitative_pairs: ['02']"``).

Run knobs choose how the canonical tables are produced, which the tables record, and may take any
valid value without leaving the canonical folder: ``profile`` (quick | eval | full), ``verify``
(sample | all), ``threads`` (≥ 1), ``device`` (cpu | cuda), ``protocol`` (None | quick | reduced | paper:
which trained checkpoints a table reads, recorded in its caption).

Types come from the defaults: an int default takes an int, a float default an int or float, a string a
string, a list a list (of the default's element type), None anything (but ``repeats``: None or an int ≥ 1).
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

from .data import REPO_ROOT

PARAMS_ROOT = REPO_ROOT / "build" / "params"
RUN_KNOBS = {
    "profile": ("quick", "eval", "full"),
    "verify": ("sample", "all"),
    "device": ("cpu", "cuda"),
    "protocol": (None, "quick", "reduced", "paper"),
    "threads": None,  # an int ≥ 1
}


class ParameterError(ValueError):
    """A notebook parameter of the wrong type or value (one message for all of them)."""


@lru_cache(maxsize=None)
def _defaults_of(path: str, mtime: float) -> dict:
    """The values a notebook's ``parameters`` cell assigns (executed alone, as papermill would before injecting)."""
    cells = json.loads(Path(path).read_text())["cells"]
    cell = next((c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    source = "".join(cell["source"])
    namespace: dict = {}
    exec(compile(source, f"{path}:parameters", "exec"), namespace)  # the repo's own notebook: trusted code
    names = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)]
    return {name: namespace[name] for name in names}


def notebook_defaults(paper: str) -> dict[str, dict]:
    """``{notebook name: {parameter: default}}`` for every committed notebook of ``paper``."""
    from .reproduce import NOTEBOOK_DIR, paper_of

    found = {}
    for path in sorted(NOTEBOOK_DIR.glob("[0-9][0-9]*.ipynb")):
        try:
            if paper_of(path) != paper:
                continue
        except ValueError:
            continue
        found[path.name] = _defaults_of(str(path), path.stat().st_mtime)
    return found


def _kind(default) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        inner = f" of {_kind(default[0]).split(' ', 1)[-1]}s" if default and not isinstance(default[0], (list, tuple)) else ""
        return f"a list{inner}"
    if isinstance(default, dict):
        return "a mapping"
    return "any value"


def _fits(value, default) -> bool:
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return False
        if default and not all(_fits(d, default[0]) for d in default):  # a record, e.g. (top, left, h, w, "ur")
            return len(value) == len(default) and all(_fits(v, d) for v, d in zip(value, default))
        return not default or all(_fits(v, default[0]) for v in value)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True


def _problem(name: str, value, default) -> str | None:
    if name in RUN_KNOBS:
        choices = RUN_KNOBS[name]
        if choices is None:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
            return None if ok else f"{name}={value!r}: expected an integer ≥ 1"
        return None if value in choices else f"{name}={value!r}: expected one of {', '.join(map(repr, choices))}"
    if name == "repeats":
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)
        return None if ok else f"repeats={value!r}: expected None or an integer ≥ 1"
    if _fits(value, default):
        if isinstance(value, int) and not isinstance(value, bool) and value < 0 and "seed" in name:
            return f"{name}={value!r}: a seed is ≥ 0"
        return None
    hint = ""
    if isinstance(value, str) and not isinstance(default, str):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = None
        if parsed is not None and _fits(parsed, default):
            hint = f" (papermill -p passes text: give it as YAML, -y \"{name}: {value}\")"
    return f"{name}={value!r}: expected {_kind(default)} like the default {default!r}, got {type(value).__name__}{hint}"


def check(paper: str, values: dict) -> tuple[dict, str | None]:
    """Validate a notebook's parameter ``values``; returns (parameters that differ from the defaults, notebook).

    The notebook is the committed one of ``paper`` whose parameter names are all in ``values``; with
    several, the one with the most parameters (a notebook with only the common ones is a candidate for
    every run of its paper and must not hide another's extras), then the one whose defaults differ least.
    ``({}, None)`` when no notebook matches: not a notebook run. Raises :class:`ParameterError` listing
    every bad value.
    """
    candidates = {name: d for name, d in notebook_defaults(paper).items() if d and set(d) <= set(values)}
    if not candidates:
        return {}, None
    differences = {notebook: {k: values[k] for k, d in defaults.items() if k not in RUN_KNOBS and values[k] != d}
                   for notebook, defaults in candidates.items()}
    notebook = min(differences, key=lambda n: (-len(candidates[n]), len(differences[n])))
    problems = []
    for name, default in candidates[notebook].items():
        problem = _problem(name, values[name], default)
        if problem:
            problems.append(problem)
    if problems:
        raise ParameterError(f"notebook parameters of '{paper}': " + "; ".join(problems))
    return differences[notebook], notebook


def slug(parameters: dict) -> str:
    """``{"repeats": 2, "pairs": [0, 1]}`` → ``pairs-0,1_repeats-2``: a folder name made of the parameters (sorted)."""
    parts = []
    for key in sorted(parameters):
        value = parameters[key]
        text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else json.dumps(value) \
            if isinstance(value, dict) else str(value)
        parts.append(f"{key}-{re.sub(r'[^A-Za-z0-9.,+-]+', '', text) or 'x'}")
    name = "_".join(parts)
    if len(name) > 100:
        name = name[:80] + "_" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return name


def redirect(paper: str, profile: str, canonical: Path, values: dict | None, echo=print) -> Path:
    """The folder a run writes: ``canonical`` for the canonical parameters, else one named by the others."""
    if not values:
        return canonical
    changed, notebook = check(paper, values)
    if not changed:
        return canonical
    path = PARAMS_ROOT / profile / paper / slug(changed)
    if profile == "eval":  # eval reads the committed raw per-image results and writes none: link them, read-only use
        path.mkdir(parents=True, exist_ok=True)
        for raw in sorted(canonical.glob("raw*")):
            if raw.is_dir() and not (path / raw.name).exists():
                (path / raw.name).symlink_to(raw, target_is_directory=True)
    echo(f"non-default parameters ({', '.join(f'{k}={v!r}' for k, v in sorted(changed.items()))}) of {notebook}: "
         f"writing to {path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path}, not {canonical}")
    return path
