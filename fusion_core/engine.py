"""The raw-results engine: sources × data sets × rules → per-image metric rows, cached, resumable, verified.

Every table of every paper is built from raw per-image CSVs, one per (source, data set, fusion rule)::

    <out>/<source.raw_dir>/<role>/<source.key>[_<rule, + written ->].csv

A :class:`Source` turns a pair into fused images (a trained model, released weights or images, a classical
method); a :class:`DataSet` is a list of pairs under a role name (a split role ``test_tno`` or a data-set
name ``tno40``), optionally cropped. Each row records the ``checksum`` of the weights it came from, so

* a file is *complete* when it holds every pair of the set with the source's checksum, every requested metric
  column and (files written since the ``convention`` column exists) the requested metric convention, and is then
  read, never recomputed (background runs resume; unchanged content leaves the file untouched);
* a retrained model (another checksum) makes its old file stale: it is recomputed, not mixed in;
* while computing, rows go pair by pair to ``<file>.partial.csv`` (same checksum only is resumed), so an
  interrupt (Ctrl-C, a killed job) loses at most the pair in progress.

Verification (the eval profile): the stored files are read, a stated sample of each (source, set) is
re-fused (``"sample"``: the smallest pair; ``"all"``: every pair) and every metric is compared with
:func:`relative_difference` against :data:`VERIFY_RTOL`; one table with columns
``source, role, rule, stem, max_rel_diff, ok`` reports it.

    >>> from fusion_core import engine
    >>> tno = engine.DataSet.named("tno40", crop=(64, 64), max_pairs=2)
    >>> results = engine.collect([engine.method_source("average")], [tno], [None], metrics=["EN"],
    ...                          convention="didfuse", out="build/demo", compute=True)
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd
import torch

from . import data
from .evaluate import crop_images, quantise
from .io import sha256_file, write_csv

# Relative tolerance per metric for a re-fused pair (same code, same weights) against the committed raw files.
# The fused float32 output depends on the CPU's kernels: across two real CPUs (Intel CI, AMD EPYC) and emulated
# levels (tools/portability.py: native vs sse) at most 26 of 442k pixels moved, by 1 grey level, and the largest
# metric difference was 3.7e-5 (DIDFuse) / 1.4e-5 (Res2NetFuse); 1e-3 is 27x that, while another seed's weights
# move some metric of the same pair by >= 8 % and another rule by >= 100 %.
VERIFY_RTOL = 1e-3
VERIFY_POLICIES = ("sample", "all")
CHECK_COLUMNS = ["source", "role", "rule", "stem", "max_rel_diff", "ok"]
NO_RULE = "-"  # the rule column of sources without a fusion rule (classical methods, released images)

FuseFn = Callable[[data.PairImages, Sequence[str | None]], dict[str | None, torch.Tensor]]


@dataclass
class Source:
    """Something that turns a pair into fused images.

    ``fuse(images, rules)`` returns ``{rule: fused N×1×H×W in [0, 1]}``. ``rules`` is None for sources without
    a fusion rule (classical methods, images): their raw file has no rule suffix and their rows say rule
    ``"-"``; otherwise it is the tuple of rules the source accepts. ``checksum`` identifies the weights (the
    method name for a classical method, ``"files"`` for images): files computed from other weights are stale.
    ``labels`` are extra columns of every row (``variant``, ``seed``, ...), written after ``source``.
    """

    key: str
    method: str
    checksum: str
    fuse: FuseFn
    rules: tuple[str, ...] | None = None
    labels: dict = field(default_factory=dict)
    raw_dir: str = "raw"

    def wanted(self, rules: Sequence[str | None]) -> list[str | None]:
        """The rules this source is run with: ``[None]`` without rules, else ``rules`` (all accepted)."""
        if self.rules is None:
            return [None]
        wanted = [r for r in rules if r is not None]
        unknown = [r for r in wanted if r not in self.rules]
        if unknown:
            raise ValueError(f"source '{self.key}': rules {unknown} not among its rules {list(self.rules)}")
        return wanted


@dataclass(frozen=True)
class DataSet:
    """Pairs under a role name (the folder of their raw files), each cropped to its top-left ``crop`` window."""

    role: str
    pairs: tuple[data.Pair, ...]
    crop: tuple[int, int] | None = None

    @classmethod
    def named(cls, name: str, crop: tuple[int, int] | None = None, max_pairs: int | None = None) -> DataSet:
        """A whole data set of :func:`fusion_core.data.list_pairs` (role = its name), first ``max_pairs``."""
        return cls(name, tuple(data.list_pairs(name)[:max_pairs]), crop)

    @classmethod
    def split(cls, paper: str, role: str, crop: tuple[int, int] | None = None,
              max_pairs: int | None = None) -> DataSet:
        """A paper's split ``papers/<paper>/splits/<role>.txt`` (role = the split role), first ``max_pairs``."""
        return cls(role, tuple(data.load_split(paper, role)[:max_pairs]), crop)

    def images(self, pair: data.Pair) -> data.PairImages:
        return crop_images(data.load_pair(pair), self.crop)

    def sample(self, verify: str) -> list[data.Pair]:
        """The pairs a verification re-fuses: the smallest (pixels, then stem) for ``"sample"``, else all."""
        if verify not in VERIFY_POLICIES:
            raise ValueError(f"verify '{verify}' is not one of {', '.join(VERIFY_POLICIES)} (or None)")
        if verify == "all":
            return list(self.pairs)
        return [min(self.pairs, key=lambda p: (_pixels(data.check_pair(p)), p.stem))]


def _pixels(size: tuple[int, int]) -> int:
    return size[0] * size[1]


# --------------------------------------------------------------------------- sources

def weights_checksum(weights: str | Path) -> str:
    """16 hex digits naming the weights: a checkpoint's :func:`fusion_core.train.weights_checksum`; a folder
    (e.g. released weights) hashes the sha256 of its files in name order."""
    from .train import weights_checksum as checkpoint_checksum

    path = Path(weights)
    if path.is_file():
        return checkpoint_checksum(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.iterdir() if p.is_file()):
            digest.update(sha256_file(file).encode())
        return digest.hexdigest()[:16]
    raise FileNotFoundError(f"{path}: weights not found")


def method_source(method: str, weights=None, rules: Sequence[str] | None = None, device: str = "cpu") -> Source:
    """Any registered method as a source.

    Classical methods: key and checksum are the method name, no rules. Learned methods: ``weights`` or the
    method's documented default (:func:`fusion_core.methods.resolve_weights`), checksum of those weights,
    ``rules`` (default: every rule the method accepts). The method is built once per rule; a built fuser that
    exposes ``fuse_rules(ir, vis, rules) -> {rule: fused}`` encodes each pair once for all rules.
    """
    from .fuse import fuse_images
    from .methods import build_method, method_info, resolve_weights

    info = method_info(method)
    if info.kind != "learned":
        if rules:
            raise ValueError(f"method '{method}' takes no fusion rule (got {list(rules)})")
        fuser = build_method(method, device=device)
        return Source(method, method, method, lambda images, _: {None: fuse_images(fuser, images, device)})
    path, _ = resolve_weights(method, weights)
    if path is None:
        raise ValueError(f"method '{method}': no weights given and no default weights")
    rules = tuple(rules) if rules else info.rules
    fusers: dict[str, Callable] = {}

    def fuser_for(rule: str):
        if rule not in fusers:
            fusers[rule] = build_method(method, weights=path, rule=rule, device=device)
        return fusers[rule]

    def fuse(images: data.PairImages, wanted: Sequence[str | None]) -> dict[str | None, torch.Tensor]:
        joint = getattr(fuser_for(wanted[0]), "fuse_rules", None)
        if joint is not None:
            with torch.inference_mode():
                fused = joint(images.ir.to(device), images.vis.to(device), list(wanted))
            return {r: f.detach().float().cpu().clamp(0, 1) for r, f in fused.items()}
        return {rule: fuse_images(fuser_for(rule), images, device) for rule in wanted}

    key = method if weights is None else f"{method}_{Path(weights).stem}"
    return Source(key, method, weights_checksum(path), fuse, rules)


# --------------------------------------------------------------------------- raw files

def raw_path(out: str | Path, source: Source, role: str, rule: str | None) -> Path:
    """``<out>/<raw_dir>/<role>/<key>[_<rule>].csv`` with ``+`` written ``-`` (``sal+cam`` → ``sal-cam``)."""
    name = source.key if rule is None else f"{source.key}_{rule.replace('+', '-')}"
    return Path(out) / source.raw_dir / role / f"{name}.csv"


def partial_path(path: Path) -> Path:
    return path.with_suffix(".partial.csv")


def read_raw(path: str | Path) -> pd.DataFrame:
    """A raw file's rows (stem, checksum and rule as text: stems like ``01`` keep their zero)."""
    return pd.read_csv(path, dtype={"stem": str, "checksum": str, "rule": str})


def complete_rows(path: Path, pairs: Sequence[data.Pair], checksum: str | None, metrics: Sequence[str] = (),
                  convention: str | None = None) -> pd.DataFrame | None:
    """The file's rows when it holds exactly the set's pairs, all from the weights ``checksum``, with every column
    of ``metrics``, scored under ``convention`` (checked where the file records it: files from before the
    ``convention`` column are taken as they are, and the eval profile's re-fused sample still compares their
    values); None when it does not (or does not exist). One read: :func:`collect` keeps the frame.

    ``checksum`` None: any one checksum, the same on every row (the rows of weights that are not here to hash,
    e.g. a checkpoint too large to commit, read as committed)."""
    if not path.is_file():
        return None
    frame = read_raw(path)
    same_convention = convention is None or "convention" not in frame or bool((frame["convention"] == convention).all())
    same_weights = frame["checksum"].nunique() == 1 if checksum is None else bool((frame["checksum"] == checksum).all())
    complete = (len(frame) == len(pairs) and set(frame["stem"]) == {p.stem for p in pairs}
                and same_weights and set(metrics) <= set(frame.columns) and same_convention)
    return frame if complete else None


def is_complete(path: Path, pairs: Sequence[data.Pair], checksum: str, metrics: Sequence[str] = (),
                convention: str | None = None) -> bool:
    """Whether :func:`complete_rows` accepts the file."""
    return complete_rows(path, pairs, checksum, metrics, convention) is not None


def score_row(source: Source, role: str, rule: str | None, images: data.PairImages, fused: torch.Tensor,
              metrics: Sequence[str], convention: str) -> dict:
    """One raw row: the fused image quantised to 8 bits (as written to disk, as every paper scored it), scored."""
    from .metrics import score

    values = score(quantise(fused), images.ir, images.vis, metrics=list(metrics), convention=convention)
    return {"source": source.key, **source.labels, "rule": rule or NO_RULE, "role": role,
            "dataset": images.pair.dataset, "stem": images.pair.stem,
            **{name: float(value[0]) for name, value in values.items()}, "checksum": source.checksum,
            "convention": convention}


def compute(source: Source, dataset: DataSet, rules: Sequence[str | None], *, metrics: Sequence[str],
            convention: str, out: str | Path, log: Callable[[str], None] | None = None) -> list[Path]:
    """Fuse + score every pair of ``dataset`` with each rule; returns the raw files (one per rule).

    Complete files are left untouched. Missing ones are resumed from ``<file>.partial.csv`` (rows with the
    source's checksum only), written pair by pair, and renamed complete at the end; the source fuses a pair
    once for all the rules that still need it.
    """
    wanted = source.wanted(rules)
    pairs = list(dataset.pairs)
    paths = {rule: raw_path(out, source, dataset.role, rule) for rule in wanted}
    todo = [r for r in wanted if not is_complete(paths[r], pairs, source.checksum, metrics, convention)]
    rows: dict[str | None, list[dict]] = {}
    for rule in todo:
        partial = partial_path(paths[rule])
        kept = read_raw(partial).to_dict("records") if partial.is_file() else []
        rows[rule] = [r for r in kept if r["checksum"] == source.checksum and r.get("convention") == convention
                      and all(m in r for m in metrics)]
    for index, pair in enumerate(pairs):
        need = [r for r in todo if pair.stem not in {row["stem"] for row in rows[r]}]
        if not need:
            continue
        started = time.time()
        images = dataset.images(pair)
        fused = source.fuse(images, need)
        for rule in need:
            rows[rule].append(score_row(source, dataset.role, rule, images, fused[rule], metrics, convention))
            write_csv(partial_path(paths[rule]), pd.DataFrame(rows[rule]))
        if log:
            log(f"{source.key} {dataset.role} {pair.stem} ({index + 1}/{len(pairs)}) "
                f"{','.join(r or NO_RULE for r in need)}: {time.time() - started:.1f} s")
    order = {p.stem: i for i, p in enumerate(pairs)}
    for rule in todo:
        frame = pd.DataFrame(rows[rule]).sort_values("stem", key=lambda s: s.map(order))
        write_csv(paths[rule], frame)
        partial_path(paths[rule]).unlink(missing_ok=True)
    return [paths[r] for r in wanted]


_compute = compute  # :func:`collect`'s keyword ``compute`` (the API's name) shadows the function there


# --------------------------------------------------------------------------- verification

def relative_difference(fresh: float, stored: float) -> float:
    """|fresh − stored| / max(|stored|, 1e-12): the one comparison of every re-computed value with its stored one
    (the floor keeps a stored 0 from dividing by zero)."""
    return abs(float(fresh) - float(stored)) / max(abs(float(stored)), 1e-12)


def check_row(source: str, role: str, rule: str | None, stem: str, fresh: Mapping, stored: Mapping,
              metrics: Sequence[str]) -> dict:
    """One verification row: the largest :func:`relative_difference` over ``metrics`` and whether it is within
    :data:`VERIFY_RTOL` (also for values that are not fused images, e.g. Res2NetFuse's reconstructions)."""
    worst = max(relative_difference(fresh[m], stored[m]) for m in metrics)
    return {"source": source, "role": role, "rule": rule or NO_RULE, "stem": stem, "max_rel_diff": worst,
            "ok": bool(worst <= VERIFY_RTOL)}


def verify_source(source: Source, dataset: DataSet, rules: Sequence[str | None], stored: pd.DataFrame,
                  verify: str, *, metrics: Sequence[str], convention: str) -> list[dict]:
    """Re-fuse the :meth:`DataSet.sample` pairs with ``rules`` and compare each metric with the ``stored`` rows."""
    checks = []
    for pair in dataset.sample(verify):
        images = dataset.images(pair)
        fused = source.fuse(images, list(rules))
        for rule in rules:
            fresh = score_row(source, dataset.role, rule, images, fused[rule], metrics, convention)
            old = stored[(stored["stem"] == pair.stem) & (stored["rule"] == (rule or NO_RULE))]
            if old.empty:
                raise ValueError(f"{raw_path('.', source, dataset.role, rule)}: no stored row for pair {pair.name}")
            checks.append(check_row(source.key, dataset.role, rule, pair.stem, fresh, old.iloc[0], metrics))
    return checks


# --------------------------------------------------------------------------- collecting

@dataclass
class RawResults:
    """Rows of every complete raw file, the verification table and the raw files that are missing."""

    rows: pd.DataFrame
    checks: pd.DataFrame
    missing: list[str]

    @property
    def ok(self) -> bool:
        """Every re-fused value is within :data:`VERIFY_RTOL` of its stored one (True when nothing was re-fused)."""
        return bool(self.checks["ok"].all()) if len(self.checks) else True

    def summary(self) -> str:
        """One line per fact: files read, re-fused checks, missing files."""
        files = self.rows.groupby(["source", "role", "rule"]).ngroups if len(self.rows) else 0
        lines = [f"raw results: {len(self.rows)} rows from {files} files"]
        if len(self.checks):
            failed = int((~self.checks["ok"]).sum())
            lines.append(f"verification: {len(self.checks)} re-fused (pair, rule) values, "
                         + ("all" if not failed else f"{failed} NOT") + f" within rtol {VERIFY_RTOL:g} "
                         f"(max relative difference {self.checks['max_rel_diff'].max():.2g})")
        lines.append(f"missing raw files: {len(self.missing)}" + (f" ({', '.join(self.missing)})" if self.missing else ""))
        return "\n".join(lines)


def merge(results: Sequence[RawResults]) -> RawResults:
    """Several :func:`collect` results as one: rows, verification rows and missing files, in call order."""
    rows = [r.rows for r in results if len(r.rows)]
    checks = [r.checks for r in results if len(r.checks)]
    return RawResults(pd.concat(rows, ignore_index=True) if rows else results[0].rows,
                      pd.concat(checks, ignore_index=True) if checks else results[0].checks,
                      [path for r in results for path in r.missing])


def collect(sources: Sequence[Source], datasets: Sequence[DataSet], rules: Sequence[str | None], *,
            metrics: Sequence[str], convention: str, out: str | Path, compute: bool,
            verify: str | None = "sample", log: Callable[[str], None] | None = None) -> RawResults:
    """Raw rows for ``sources`` × ``datasets`` × ``rules``, with the verification table and missing files.

    ``compute``: missing files are computed (:func:`compute`); otherwise they are listed in ``missing`` and the
    tables state the N they really have. ``verify`` (``"sample"``, ``"all"``, None: no re-fusing): for each
    (source, set), the files that were complete before this call are checked by re-fusing the sample
    (:func:`verify_source`); files computed by this call are not re-fused.
    """
    if compute or verify is not None:  # fusing: learned methods allocate and free GBs of feature maps per pair
        from .memory import keep_freed_memory

        keep_freed_memory()  # NestFuse at 768×576, one thread: 20 → 9.5 s per pair (sys 5.5 → 1.2 s)
    frames, checks, missing = [], [], []
    for source in sources:
        wanted = source.wanted(rules)
        for dataset in datasets:
            paths = {rule: raw_path(out, source, dataset.role, rule) for rule in wanted}
            before = {r: complete_rows(paths[r], dataset.pairs, source.checksum, metrics, convention) for r in wanted}
            found = [r for r in wanted if before[r] is not None]  # complete before this call: the ones to verify
            if compute and len(found) < len(wanted):
                _compute(source, dataset, wanted, metrics=metrics, convention=convention, out=out, log=log)
            for rule in wanted:
                frame = before[rule]
                if frame is None and compute:  # computed just now
                    frame = complete_rows(paths[rule], dataset.pairs, source.checksum, metrics, convention)
                if frame is not None:
                    frames.append(frame)
                else:
                    missing.append(str(paths[rule].relative_to(out)))
            if verify is not None and found:
                stored = pd.concat([before[r] for r in found])
                checks += verify_source(source, dataset, found, stored, verify, metrics=metrics, convention=convention)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["source", "rule", "role", "dataset", "stem", *metrics, "checksum", "convention"])
    return RawResults(rows, pd.DataFrame(checks, columns=CHECK_COLUMNS), missing)
