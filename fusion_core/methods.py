"""The method registry: every fusion method, classical or learned, under one name.

A method is registered as a *builder*::

    @METHODS.register("average")
    def build(weights=None, rule=None, device="cpu") -> Fuser: ...

and the built ``Fuser`` maps ``(ir, vis)`` — float tensors N×1×H×W in [0, 1] on ``device`` — to the
fused N×1×H×W tensor in [0, 1]. Colour is handled outside the method (Y of YCbCr is fused, CbCr
re-attached by :func:`fusion_core.fuse.fuse_pairs`). Learned methods take ``weights`` (a checkpoint
file or folder) and a fusion ``rule`` name; classical ones reject options they do not use.

What a user (the ``methods`` table, ``compare``) needs to know about a method is data next to its
builder: :func:`describe` records a :class:`MethodInfo` (kind, paper, fusion rules, default weights and
why); classical methods without one are described from their module docstring.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple, Protocol

import torch

from .registry import Registry


class Fuser(Protocol):
    def __call__(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor: ...


MethodBuilder = Callable[..., Fuser]
METHODS: Registry[MethodBuilder] = Registry("method")

COLOUR_Y = "Y fused, CbCr kept"  # Y of full-range BT.601 YCbCr fused, the visible image's CbCr re-attached


class DefaultWeights(NamedTuple):
    """The checkpoint a learned method loads when no ``--weights`` is given, and why that one."""

    path: Path
    reason: str
    obtain: str = ""  # how to get the file where a checkout does not have it (e.g. not committed: tree-size limit)


@dataclass(frozen=True)
class MethodInfo:
    """What the ``methods`` table (and a ``compare`` run's provenance) says about a method."""

    name: str
    kind: str  # "classical" | "learned"
    paper: str
    rules: tuple[str, ...] = ()  # fusion rules a learned method accepts (``--rule``), default first
    colour: str = COLOUR_Y
    default_weights: Callable[[], DefaultWeights] | None = field(default=None, compare=False)


_INFO: dict[str, MethodInfo] = {}


def describe(name: str, kind: str, paper: str, rules=(), colour: str = COLOUR_Y,
             default_weights: Callable[[], DefaultWeights] | None = None) -> MethodInfo:
    """Record what a registered method is (call it next to ``@METHODS.register``)."""
    info = MethodInfo(name, kind, paper, tuple(rules), colour, default_weights)
    _INFO[name] = info
    return info


def no_options(name: str, weights=None, rule=None) -> None:
    """Classical methods take no weights or fusion rule: say so instead of silently ignoring them."""
    if weights is not None:
        raise ValueError(f"method '{name}' takes no --weights")
    if rule is not None:
        raise ValueError(f"method '{name}' takes no --rule")


def build_method(name: str, weights=None, rule=None, device: str = "cpu") -> Fuser:
    _load_all()
    return METHODS[name](weights=weights, rule=rule, device=device)


def method_names() -> list[str]:
    _load_all()
    return list(METHODS)


def method_info(name: str) -> MethodInfo:
    """The method's :class:`MethodInfo`; a classical method without one is described from its module docstring."""
    _load_all()
    builder = METHODS[name]  # KeyError listing the known names
    if name in _INFO:
        return _INFO[name]
    return MethodInfo(name, "classical", _citation(_module_doc(builder)))


def resolve_weights(name: str, weights=None) -> tuple[object, str | None]:
    """(weights to load, a sentence for the log) — the method's documented default when ``weights`` is None."""
    info = method_info(name)
    if weights is not None:
        return weights, (f"weights {weights} (--weights)" if info.kind == "learned" else None)
    if info.default_weights is None:
        return None, None
    default = info.default_weights()
    if not default.path.exists():
        raise FileNotFoundError(f"{default.path}: method '{name}' got no --weights and its default weights are not in "
                                f"this checkout" + (f"; {default.obtain}" if default.obtain else ""))
    return default.path, f"weights {default.path} (default: {default.reason})"


def _citation(doc: str) -> str:
    """'Kumar 2015'-style short citation from the first docstring paragraph that quotes a title:
    'A. Author and B. Other, "Title", Journal 1(2), 3–4, 2015.' → 'Author et al. 2015'."""
    for paragraph in re.split(r"\n\s*\n", doc):
        text = " ".join(paragraph.split())
        if '"' not in text:
            continue
        authors, _, rest = text.partition('"')
        year = re.search(r"\b(?:19|20)\d\d\b", rest.partition('"')[2])
        names = [n for n in re.split(r",| and | & ", authors.split("(e.g.")[-1]) if n.strip()]
        if year and names:
            return f"{names[0].split()[-1]}{' et al.' if len(names) > 1 else ''} {year.group()}"
    return "baseline"


def _module_doc(builder, depth: int = 3) -> str:
    """Docstring of the module that defines the method, looking through the closures of shared wrappers."""
    module = sys.modules.get(getattr(builder, "__module__", None) or "")
    if module is not None and not module.__name__.rsplit(".", 1)[-1].startswith("_"):
        return module.__doc__ or ""
    for cell in (getattr(builder, "__closure__", None) or ()) if depth else ():
        if callable(cell.cell_contents) and (doc := _module_doc(cell.cell_contents, depth - 1)):
            return doc
    return ""


def _load_all() -> None:
    # Importing the packages registers their methods (one file per classical method, papers/<p>/model.py).
    from . import classical, papers  # noqa: F401


SPEED_TABLE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fuse_speed_cpu.csv"


def measured_seconds(path: Path | None = None) -> dict[str, float]:
    """Seconds per 640×480 pair by method, from the last ``benchmarks/fuse_speed.py`` run (empty when absent)."""
    import csv

    path = SPEED_TABLE if path is None else path
    if not path.is_file():
        return {}
    with open(path, newline="") as handle:
        return {row["method"]: float(row["s_per_pair"]) for row in csv.DictReader(handle)
                if row.get("s_per_pair") and "(" not in row["method"]}


def method_table() -> str:
    """The ``methods`` command's table: one line per method, then where the defaults and times come from."""
    seconds = measured_seconds()
    rows = [("method", "kind", "paper", "default weights", "fusion rules (default first)", "colour", "s/pair")]
    reasons = []
    for name in method_names():
        info = method_info(name)
        weights = "-"
        if info.default_weights is not None:
            default = info.default_weights()
            weights = default.path.name if default.path.suffix else "authors' released"
            reasons.append(f"  {name}: {default.path} — {default.reason}")
            if not default.path.exists():
                weights = f"none here ({weights} not committed)"
                reasons[-1] += f"; NOT in this checkout: {default.obtain or 'pass --weights'}"
        speed = f"{seconds[name]:.2f}" if name in seconds else "not measured"
        rows.append((name, info.kind, info.paper, weights, ", ".join(info.rules) or "-", info.colour, speed))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += ["", "colour: Y of full-range BT.601 YCbCr is fused; the visible image's CbCr is re-attached",
              "default weights (learned methods; --weights overrides):", *reasons,
              f"s/pair: wall seconds to fuse one 640×480 pair on this project's CPU, from {SPEED_TABLE.name} "
              "(python benchmarks/fuse_speed.py)"]
    return "\n".join(lines)
