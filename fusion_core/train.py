"""The one training loop every paper reuses: seeded, resumable, logged, AMP on CUDA.

A paper passes its model, its loss and an in-memory data set; it does not copy the loop::

    seed_everything(0)                                  # before the model is built: same init
    model = DIDFuse()
    pairs = data.load_split("didfuse", "train")
    crops = CropPairs.from_pairs(pairs, crop=128)       # images decoded once, kept in memory
    history = train(model, DIDFuseLoss("paper"), crops,
                    TrainConfig(epochs=120, batch_size=24, lr=1e-3, milestones=(40, 80)),
                    checkpoint="checkpoints/didfuse/run.pt")

``loss_fn(model, batch)`` returns a dict of scalar tensors with the optimised value under
``"total"``; every term is averaged over the iterations of an epoch and logged.

:func:`train` is a short loop over three pieces a reader can take one at a time: :func:`restore`
(a fresh, seeded run or the saved state of an interrupted one), :func:`run_epoch` (one pass, returns
the epoch's loss row) and :func:`save` (the files below). Each paper's ``papers/<p>/train.py`` names
its recipes (``PROTOCOLS``) and model ``VARIANTS``, builds model, loss and data, and calls :func:`train`;
a finished checkpoint is found again as a :class:`TrainedModel`.

Files written (atomically, every ``save_every`` epochs, at the end and at a budget stop) next to ``checkpoint`` = ``DIR/NAME.pt``:

* ``NAME.pt`` — the weights only (``WEIGHTS_FORMAT``: model class, model config, fp32 state dict;
  about 4 bytes per parameter): what inference loads. The repository commits it published (``tools/
  slim_checkpoints.py``: float16, a delta of its base where it shares frozen parts, then stored as xz), and
  every loader reads each of these forms.
* ``NAME.resume.pt`` — model, optimizer, scheduler, AMP scaler, epoch, every RNG state and the
  history: a run resumes from it exactly where it stopped (same numbers as an uninterrupted run).
  Several times the weights' size, so it is never committed (``checkpoints/.gitignore``).
* ``NAME.json`` — manifest: sha256 and size of ``NAME.pt``, ``checksum`` (the key raw per-image
  result files record for these weights), parameter count, data, epochs, device, torch version,
  git commit, protocol, seed, config, wall time, final losses.
* ``NAME_history.csv`` — one row per epoch: epoch, lr, seconds, every loss term.

``max_seconds`` bounds one call: after each epoch the loop checks whether another epoch (timed
from the ones this call ran) would overrun the budget, and if so saves the checkpoint and returns
early. Rerunning the same command resumes, so a long protocol runs as a series of bounded chunks
(``python -m fusion_core.sweep`` runs many such trainings side by side on one device).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io as _io
import json
import platform
import random
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from . import data
from .io import XZ_MAGIC, atomic_write, content_sha256, sha256_file, torch_load, write_csv, write_json, xz_compress

CHECKPOINT_FORMAT = "fusion_core.train/1"  # the resume state (``NAME.resume.pt``; older ``NAME.pt`` files too)
WEIGHTS_FORMAT = "fusion_core.weights/1"  # the inference file ``NAME.pt``
INCOMPLETE = 75  # exit code of a training CLI stopped by its time budget (EX_TEMPFAIL: rerun to resume)


def cli_parser(paper: str, doc: str | None, protocols, variants, checkpoint_dir: Path,
               variant_help: str | None = None) -> argparse.ArgumentParser:
    """The options every paper's ``python -m fusion_core.papers.<paper>.train`` shares (``--protocol`` quick by
    default, ``--variant`` base, ``--seed``, ``--out``, ``--device``, ``--threads``, ``--max-minutes``,
    ``--no-progress``); a paper adds its own after. DIDFuse and Res2NetFuse keep their older parsers (aliases)."""
    parser = argparse.ArgumentParser(prog=f"python -m fusion_core.papers.{paper}.train", description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=sorted(protocols), default="quick")
    parser.add_argument("--variant", choices=list(variants), default="base", help=variant_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=checkpoint_dir,
                        help=f"checkpoint folder (default {checkpoint_dir})")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 for a job sharing the CPU)")
    parser.add_argument("--max-minutes", type=float,
                        help=f"stop after the last epoch that fits (exit {INCOMPLETE}); the same command resumes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (logs of background jobs)")
    return parser


LossFn = Callable[[nn.Module, tuple], dict[str, torch.Tensor]]


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class TrainConfig:
    """Optimisation protocol: Adam, step decay by ``gamma`` at ``milestones`` (epochs), fixed seed."""

    epochs: int
    batch_size: int
    lr: float = 1e-3
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    seed: int = 0
    shuffle: bool = True  # seeded permutation per epoch; False = file order (the DIDFuse code)
    drop_last: bool = False
    device: str = "cpu"
    amp: bool = True  # mixed precision, used only on CUDA
    protocol: str = "custom"  # the paper's name of this training recipe (quick, reduced, paper), for the manifest
    save_every: int = 1  # epochs between checkpoint writes (the last epoch is always written)

    def __post_init__(self):
        if self.epochs < 0 or self.batch_size < 1:
            raise ValueError(f"epochs must be ≥ 0 and batch_size ≥ 1, got {self.epochs} and {self.batch_size}")


# --------------------------------------------------------------------------- determinism

def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) and make cuDNN deterministic."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def _rng_state(generator: torch.Generator) -> dict:
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"name": np_name, "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "loop": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["gauss"]))
    torch.set_rng_state(state["torch"])
    generator.set_state(state["loop"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- data in memory

class BatchSource(Protocol):
    """What the loop needs from a data set: its length and a batch for given indices."""

    def __len__(self) -> int: ...

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]: ...


@dataclass
class CropPairs:
    """Registered IR / VIS-Y pairs decoded once and held in memory, served as crops.

    ``mode="center"``: one fixed crop per pair, cut once (DIDFuse: "center-crop 128×128"), so a batch
    is an index into two stacked tensors. ``mode="random"``: the full images are kept and every batch
    takes a fresh seeded random window of each pair.
    """

    ir: list[torch.Tensor]  # each 1×H×W (center: all crop×crop)
    vis: list[torch.Tensor]
    crop: int
    mode: str = "center"
    names: list[str] = field(default_factory=list)

    @classmethod
    def from_pairs(cls, pairs: Sequence[data.Pair], crop: int = 128, mode: str = "center",
                   progress: bool = False) -> "CropPairs":
        if mode not in ("center", "random"):
            raise ValueError(f"crop mode '{mode}' is not 'center' or 'random'")
        if not pairs:
            raise data.DataError("no training pairs given")
        irs, viss = [], []
        for pair in tqdm(pairs, desc="load pairs", unit="pair", disable=not progress):
            images = data.load_pair(pair)
            h, w = images.ir.shape[-2:]
            if h < crop or w < crop:
                raise data.DataError(f"{pair.ir}: {w}x{h} is smaller than the {crop}x{crop} training crop")
            if mode == "center":
                top, left = (h - crop) // 2, (w - crop) // 2  # torchvision CenterCrop's rounding (down)
                irs.append(images.ir[0, :, top:top + crop, left:left + crop].clone())
                viss.append(images.vis[0, :, top:top + crop, left:left + crop].clone())
            else:
                irs.append(images.ir[0])
                viss.append(images.vis[0])
        crops = cls(irs, viss, crop, mode, [p.name for p in pairs])
        if mode == "center":
            crops._ir_stack, crops._vis_stack = torch.stack(irs), torch.stack(viss)
        return crops

    def __len__(self) -> int:
        return len(self.ir)

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mode == "center":
            return self._ir_stack[indices], self._vis_stack[indices]
        irs, viss = [], []
        for i in indices.tolist():
            h, w = self.ir[i].shape[-2:]
            top = int(torch.randint(0, h - self.crop + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - self.crop + 1, (1,), generator=generator))
            irs.append(self.ir[i][:, top:top + self.crop, left:left + self.crop])
            viss.append(self.vis[i][:, top:top + self.crop, left:left + self.crop])
        return torch.stack(irs), torch.stack(viss)

    def describe(self) -> dict:
        digest = hashlib.sha256("\n".join(self.names).encode()).hexdigest()
        return {"pairs": len(self), "crop": self.crop, "crop_mode": self.mode, "names_sha256": digest,
                "first": self.names[:1], "last": self.names[-1:]}


# --------------------------------------------------------------------------- bookkeeping

def git_commit() -> dict:
    """Commit of the working tree (``git rev-parse HEAD``) and whether tracked files differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
        return {"git_sha": sha.stdout.strip() or None, "git_dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"git_sha": None, "git_dirty": None}


def progress_of(checkpoint: str | Path) -> tuple[int, int] | None:
    """(epochs done, epochs planned) from the manifest next to ``checkpoint``; None if it has no readable one."""
    try:
        manifest = json.loads(Path(checkpoint).with_suffix(".json").read_text())
        return int(manifest["epochs_done"]), int(manifest["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def manifest_protocol(checkpoint: str | Path) -> str | None:
    """The protocol the manifest next to ``checkpoint`` records (``protocol``; older manifests: ``profile``)."""
    try:
        manifest = json.loads(Path(checkpoint).with_suffix(".json").read_text())
    except (OSError, ValueError):
        return None
    return manifest.get("protocol", manifest.get("profile")) if isinstance(manifest, dict) else None


def checkpoint_paths(checkpoint: str | Path) -> tuple[Path, Path, Path]:
    """(checkpoint, manifest ``.json``, ``_history.csv``) for a checkpoint path."""
    path = Path(checkpoint)
    return path, path.with_suffix(".json"), path.with_name(f"{path.stem}_history.csv")


def resume_path(checkpoint: str | Path) -> Path:
    """``NAME.resume.pt``: the full training state next to the weights file ``NAME.pt`` (never committed)."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}.resume.pt")


def load_network(path: str | Path, classes: dict[str, type[nn.Module]], device: str = "cpu",
                 expect: str | None = None, label: str = "") -> nn.Module:
    """The network of an inference file written by :func:`train` (:func:`weights_state`: class name, config,
    weights), built from ``classes`` (name → class) and loaded strictly, in eval mode on ``device``.

    A missing file raises :class:`FileNotFoundError`; an unreadable one, another class than ``expect`` or weights
    that do not fit raise :class:`fusion_core.data.DataError`, each naming the file. ``label`` names the paper."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {label} checkpoint not found".replace("  ", " "))
    try:
        state = torch_load(path)
    except Exception as exc:
        raise data.DataError(f"{path}: not a readable torch checkpoint ({exc.__class__.__name__})") from None
    kind = state.get("model_class") if isinstance(state, dict) else None
    if kind not in classes or (expect is not None and kind != expect):
        wanted = expect or "/".join(classes)
        raise data.DataError(f"{path}: not a {label} {wanted} checkpoint (holds {kind})".replace("  ", " "))
    model = classes[kind](**(state.get("model_config") or {}))
    try:
        model.load_state_dict(with_base(path, state)["model"], strict=True)
    except RuntimeError as exc:
        raise data.DataError(f"{path}: weights do not fit the {kind} network ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval()


def weights_state(model_or_state: dict, model_class: str | None = None, model_config: dict | None = None) -> dict:
    """The inference file's content: model class and config plus the state dict, floats as fp32, copied compactly."""
    state = {k: (v.detach().float() if v.is_floating_point() else v.detach()).clone().contiguous().cpu()
             for k, v in model_or_state.items()}
    return {"format": WEIGHTS_FORMAT, "model_class": model_class, "model_config": model_config, "model": state}


def weights_checksum(checkpoint: str | Path) -> str:
    """The key that raw per-image result files record for these weights (16 hex digits).

    The manifest's ``checksum`` when the manifest's ``sha256`` is the file's (it survives slimming a
    full checkpoint: the results computed from the full file stay valid); else the file's sha256[:16].
    """
    path = Path(checkpoint)
    digest = sha256_file(path)
    try:
        manifest = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        manifest = {}
    if isinstance(manifest, dict) and manifest.get("sha256") == digest and manifest.get("checksum"):
        return str(manifest["checksum"])
    return digest[:16]


@dataclass(frozen=True)
class TrainedModel:
    """One complete trained checkpoint of a paper: what the experiments fuse with and what raw files key on."""

    path: Path
    paper: str
    variant: str  # the paper's model variant (DIDFuse: base, exp1..exp5; Res2NetFuse: single, many)
    seed: int
    protocol: str  # the training recipe (quick, reduced, paper)
    checksum: str  # :func:`weights_checksum` of ``path``

    @property
    def key(self) -> str:
        return f"{self.variant}_seed{self.seed}"


def trained_model(path: str | Path, paper: str, variant: str, seed: int, protocol: str) -> TrainedModel:
    """A :class:`TrainedModel` for ``path``, its checksum read from the file (and its manifest)."""
    return TrainedModel(Path(path), paper, variant, seed, protocol, weights_checksum(path))


def quietly(progress: bool) -> contextlib.AbstractContextManager:
    """Swallow the loop's per-epoch lines unless ``progress``: a notebook that trains its missing models must print
    the same whether they existed or not (nbval compares the output)."""
    return contextlib.nullcontext() if progress else contextlib.redirect_stdout(_io.StringIO())


def first_seeds(models: Sequence[TrainedModel], repeats: int | None, variants: Sequence[str]) -> list[TrainedModel]:
    """The first ``repeats`` models (lowest seeds) of each variant, in ``variants`` order; all when ``repeats`` is None."""
    if repeats is None:
        return list(models)
    if repeats < 1:
        raise ValueError(f"repeats must be ≥ 1 or None, got {repeats}")
    kept, count = [], {}
    for model in sorted(models, key=lambda m: (list(variants).index(m.variant), m.seed)):
        count[model.variant] = count.get(model.variant, 0) + 1
        if count[model.variant] <= repeats:
            kept.append(model)
    return kept


def slim_checkpoint(checkpoint: str | Path) -> tuple[int, int]:
    """Rewrite a full training checkpoint ``NAME.pt`` in place as weights only; returns (bytes before, after).

    The manifest keeps the results key of the file as trained (``checksum``), records what was dropped
    (``slimmed_from``: sha256 and size) and gets the new file's sha256 and size. The full state is
    moved to ``NAME.resume.pt`` only if that file does not exist yet (it is not committed). A file
    already slim is left alone.
    """
    path, manifest_path, _ = checkpoint_paths(checkpoint)
    before = path.stat().st_size
    blob = torch_load(path)
    if not isinstance(blob, dict) or blob.get("format") not in (CHECKPOINT_FORMAT, WEIGHTS_FORMAT):
        raise data.DataError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    if blob["format"] == WEIGHTS_FORMAT:
        return before, before
    manifest = json.loads(manifest_path.read_text())
    old_sha = sha256_file(path)
    if manifest.get("sha256") != old_sha:
        raise data.DataError(f"{manifest_path}: sha256 {manifest.get('sha256')} is not that of {path} ({old_sha})")
    resume = resume_path(path)
    if not resume.exists():
        with atomic_write(resume, "wb") as handle:
            handle.write(path.read_bytes())
    _save(path, weights_state(blob["model"], blob.get("model_class"), blob.get("model_config")))
    manifest.update(checksum=manifest.get("checksum") or old_sha[:16], sha256=sha256_file(path),
                    bytes=path.stat().st_size, slimmed_from={"sha256": old_sha, "bytes": before})
    write_json(manifest_path, manifest)
    return before, path.stat().st_size


def publish_fp16(checkpoint: str | Path) -> Path:
    """Rewrite a weights file ``NAME.pt`` in float16 (half the bytes; the repository's tree-size limit) and its
    manifest: new ``sha256`` and ``checksum`` (raw per-image files must be computed from the fp16 file, so
    files of the fp32 weights become stale), ``stored: float16`` and the fp32 file's ``fp32_sha256``. Loading
    copies the values into the float32 parameters of a fresh model (``load_state_dict``), so inference runs in
    float32 on weights rounded to 11 significant bits. A file already in float16 is left alone."""
    path = Path(checkpoint)
    blob = torch_load(path)
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise data.DataError(f"{path}: not a {WEIGHTS_FORMAT} weights file (slim it first: tools/slim_checkpoints.py)")
    if all(v.dtype != torch.float32 for v in blob["model"].values()):
        return path
    manifest_file = path.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    fp32_sha = sha256_file(path)
    blob["model"] = {k: v.half() if v.dtype == torch.float32 else v for k, v in blob["model"].items()}
    _save(path, blob)
    digest = sha256_file(path)
    manifest.update(sha256=digest, checksum=digest[:16], bytes=path.stat().st_size, stored="float16",
                    fp32_sha256=fp32_sha)
    write_json(manifest_file, manifest)
    return path


def publish_delta(checkpoint: str | Path, base: str | Path) -> Path:
    """Rewrite a weights file ``NAME.pt`` as a delta of ``base`` (another weights file in the same folder): the tensors
    bit-equal to the base's (e.g. frozen columns copied from it) are dropped and the file names the base, its sha256
    and the dropped keys, so the tracked tree carries only what the run changed. :func:`load_network` puts the base's
    tensors back (and refuses a base whose sha256 differs); the delta's own sha256 therefore still identifies the
    complete weights, and stays the results key. Run after :func:`publish_fp16` of both files. A file that already is
    a delta is left alone."""
    path, base = Path(checkpoint), Path(base)
    blob = torch_load(path)
    ref = torch_load(base)
    for file, content in ((path, blob), (base, ref)):
        if not isinstance(content, dict) or content.get("format") != WEIGHTS_FORMAT:
            raise data.DataError(f"{file}: not a {WEIGHTS_FORMAT} weights file")
    if base.parent.resolve() != path.parent.resolve():
        raise data.DataError(f"{base}: the base of a delta must sit in the folder of {path}")
    if "base" in ref:
        raise data.DataError(f"{base}: is itself a delta; give the complete weights file")
    if "base" in blob:
        return path
    same = {k for k, v in blob["model"].items() if k in ref["model"] and v.dtype == ref["model"][k].dtype
            and v.shape == ref["model"][k].shape and torch.equal(v, ref["model"][k])}
    manifest_file = path.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    full_sha = sha256_file(path)
    blob["model"] = {k: v for k, v in blob["model"].items() if k not in same}
    blob["base"] = {"file": base.name, "sha256": content_sha256(base), "keys": sorted(same)}
    _save(path, blob)
    digest = sha256_file(path)
    manifest.update(sha256=digest, checksum=digest[:16], bytes=path.stat().st_size,
                    delta_of={"file": base.name, "sha256": blob["base"]["sha256"], "tensors_shared": len(same),
                              "full_sha256": full_sha})
    write_json(manifest_file, manifest)
    return path


def publish_xz(checkpoint: str | Path) -> Path:
    """Store a weights file ``NAME.pt`` as an xz stream of its bytes (:func:`fusion_core.io.xz_compress`; the
    tree-size limit again: about a fifth fewer bytes). Lossless: decompressed it is the same torch file, so the
    weights and the results key (``checksum``) do not change and every raw file computed from them stays valid.
    Every loader in the package reads both forms (:func:`fusion_core.io.torch_load`); ``xz -dc NAME.pt`` gives
    the plain file. The manifest gets the stored file's ``sha256`` and ``bytes``, ``stored_as: xz`` and the plain
    file's ``content_sha256`` (what a delta's base is checked against). Run last, after :func:`publish_fp16` and
    :func:`publish_delta`. A file already stored as xz is left alone."""
    path = Path(checkpoint)
    raw = path.read_bytes()
    if raw.startswith(XZ_MAGIC):
        return path
    blob = torch_load(path)
    if not isinstance(blob, dict) or blob.get("format") != WEIGHTS_FORMAT:
        raise data.DataError(f"{path}: not a {WEIGHTS_FORMAT} weights file (slim it first: tools/slim_checkpoints.py)")
    manifest_file = path.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    plain_sha = hashlib.sha256(raw).hexdigest()
    if manifest.get("sha256") != plain_sha:
        raise data.DataError(f"{manifest_file}: sha256 {manifest.get('sha256')} is not that of {path} ({plain_sha})")
    item_size = max((v.element_size() for v in blob["model"].values() if v.is_floating_point()), default=4)
    with atomic_write(path, "wb") as handle:
        handle.write(xz_compress(raw, item_size))
    manifest.update(checksum=manifest.get("checksum") or plain_sha[:16], sha256=sha256_file(path),
                    bytes=path.stat().st_size, stored_as="xz", content_sha256=plain_sha)
    write_json(manifest_file, manifest)
    return path


def with_base(path: str | Path, state: dict) -> dict:
    """``state`` (read from ``path``) with the tensors of its base put back when it is a delta
    (:func:`publish_delta`); the base must be the very file the delta was made from (sha256)."""
    ref = state.get("base") if isinstance(state, dict) else None
    if not ref:
        return state
    path = Path(path)
    base = path.parent / ref["file"]
    if not base.is_file():
        raise data.DataError(f"{path}: holds only what differs from {ref['file']}, which is not in {path.parent}")
    if content_sha256(base) != ref["sha256"]:  # the content: a base stored as xz (publish_xz) is the same file
        raise data.DataError(f"{path}: was made from another {ref['file']} (sha256 {ref['sha256'][:12]}, the file "
                             f"there has {content_sha256(base)[:12]})")
    full = torch_load(base)["model"]
    return {**state, "model": {**{k: full[k] for k in ref["keys"]}, **state["model"]}}


def _save(path: Path, state: dict) -> None:
    buffer = _io.BytesIO()
    torch.save(state, buffer)
    with atomic_write(path, "wb") as handle:
        handle.write(buffer.getvalue())


def _load(path: Path) -> dict:
    try:
        state = torch_load(path)
    except Exception as exc:
        raise data.DataError(f"{path}: cannot resume from this checkpoint ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise data.DataError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    return state


# Settings that must agree for a resumed run to continue the same run (epochs may grow).
_RESUME_KEYS = ("batch_size", "lr", "milestones", "gamma", "betas", "weight_decay", "seed", "shuffle", "drop_last")


def _check_resumable(path: Path, saved: dict, config: TrainConfig, model: nn.Module) -> None:
    current = asdict(config)
    changed = [k for k in _RESUME_KEYS if _norm(saved["config"].get(k)) != _norm(current[k])]
    if changed:
        detail = ", ".join(f"{k}: {saved['config'].get(k)} → {current[k]}" for k in changed)
        raise data.DataError(f"{path}: checkpoint was trained with other settings ({detail}); "
                             "use another checkpoint path or resume=False")
    if saved.get("model_class") != type(model).__name__:
        raise data.DataError(f"{path}: checkpoint holds a {saved.get('model_class')}, not a {type(model).__name__}")


def _norm(value):
    return list(value) if isinstance(value, (tuple, list)) else value


# --------------------------------------------------------------------------- the loop

@dataclass
class TrainState:
    """Everything a run carries from one epoch to the next (and saves in ``NAME.resume.pt``)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # the loop's own RNG: batch order and random crops
    device: torch.device
    use_amp: bool
    epoch: int = 0  # epochs done
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0  # training time of earlier calls (resumed runs)


def restore(model: nn.Module, config: TrainConfig, state_file: Path | None,
            log: Callable[[str], None] | None = None) -> TrainState:
    """A fresh run (``seed_everything(config.seed)``) or, from ``state_file``, the run exactly where it stopped.

    Adam (over ``model.optimizer_groups(lr)`` where the model defines it: per-group learning rates) with step
    decay (``gamma`` at ``milestones``) and a GradScaler (active only for AMP on CUDA); a resumed run gets back
    model, optimizer, scheduler, scaler, every RNG state and its history, after checking that it was trained
    with the same settings (:data:`_RESUME_KEYS`).
    """
    device = torch.device(config.device)
    use_amp = config.amp and device.type == "cuda"
    model.to(device)
    groups = getattr(model, "optimizer_groups", None)  # per-group learning rates (MSFAM stage 2), else one group
    params = groups(config.lr) if callable(groups) else model.parameters()
    optimizer = torch.optim.Adam(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    state = TrainState(model, optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.milestones),
                                                                             gamma=config.gamma),
                       torch.amp.GradScaler(device.type, enabled=use_amp), torch.Generator().manual_seed(config.seed),
                       device, use_amp)
    if state_file is None:
        seed_everything(config.seed)
        return state
    saved = _load(state_file)
    _check_resumable(state_file, saved, config, model)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.scaler.load_state_dict(saved["scaler"])
    _set_rng_state(saved["rng"], state.generator)
    state.history, state.epoch, state.seconds = list(saved["history"]), saved["epoch"], float(saved.get("seconds", 0.0))
    if log and state.epoch < config.epochs:
        log(f"resuming {state_file} at epoch {state.epoch + 1}/{config.epochs}")
    return state


def run_epoch(state: TrainState, loss_fn: LossFn, dataset: BatchSource, config: TrainConfig,
              progress: bool = False) -> dict:
    """One pass over ``dataset`` (seeded permutation or file order, ⌈n / batch⌉ or ⌊n / batch⌋ batches).

    Returns the epoch's row: epoch, lr, iterations, seconds, and every loss term averaged over the
    iterations. The scheduler steps once at the end; a non-finite loss stops the run.
    """
    n = len(dataset)
    per_epoch = n // config.batch_size if config.drop_last else -(-n // config.batch_size)
    if per_epoch == 0:
        raise ValueError(f"{n} training samples make no batch of {config.batch_size} with drop_last")
    model, optimizer, epoch = state.model, state.optimizer, state.epoch + 1
    model.train()
    tick = time.perf_counter()
    order = torch.randperm(n, generator=state.generator) if config.shuffle else torch.arange(n)
    sums: dict[str, float] = {}
    lr = optimizer.param_groups[0]["lr"]
    iterations = tqdm(range(per_epoch), desc=f"epoch {epoch}", unit="it", leave=False, disable=not progress)
    for it in iterations:
        batch = dataset.take(order[it * config.batch_size:(it + 1) * config.batch_size], state.generator)
        batch = tuple(t.to(state.device, non_blocking=True) for t in batch)
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(state.device.type, enabled=state.use_amp):
            terms = loss_fn(model, batch)
        total = terms["total"]
        if not torch.isfinite(total):
            raise FloatingPointError(f"epoch {epoch}, iteration {it + 1}: loss is {total.item()}")
        state.scaler.scale(total).backward()
        state.scaler.step(optimizer)
        state.scaler.update()
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
        iterations.set_postfix(loss=f"{float(total.detach()):.4f}")
    state.scheduler.step()
    row = {"epoch": epoch, "lr": lr, "iterations": per_epoch, "seconds": time.perf_counter() - tick}
    row.update({key: value / per_epoch for key, value in sums.items()})
    return row


def save(checkpoint: str | Path, state: TrainState, config: TrainConfig, data_info: dict | None,
         loss_info: dict | None) -> None:
    """Write the run after ``state.epoch`` epochs: resume state, weights, history CSV and manifest (each atomically)."""
    path, manifest_path, history_path = checkpoint_paths(checkpoint)
    model = state.model
    full = {
        "format": CHECKPOINT_FORMAT,
        "model_class": type(model).__name__,
        "model_config": getattr(model, "config", None),
        "model": model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(),
        "scaler": state.scaler.state_dict(),
        "epoch": state.epoch,
        "rng": _rng_state(state.generator),
        "history": state.history,
        "config": asdict(config),
        "seconds": state.seconds,
    }
    _save(resume_path(path), full)
    _save(path, weights_state(full["model"], full["model_class"], full["model_config"]))
    write_csv(history_path, pd.DataFrame(state.history))
    write_json(manifest_path, _manifest(path, model, config, state.history, state.seconds, state.device,
                                        data_info, loss_info))


def train(
    model: nn.Module,
    loss_fn: LossFn,
    dataset: BatchSource,
    config: TrainConfig,
    checkpoint: str | Path | None = None,
    resume: bool = True,
    log: Callable[[str], None] | None = tqdm.write,
    progress: bool = True,
    data_info: dict | None = None,
    loss_info: dict | None = None,
    max_seconds: float | None = None,
) -> pd.DataFrame:
    """Train ``model`` in place for ``config.epochs`` epochs; returns the per-epoch loss history.

    With ``checkpoint`` set, state is saved after every ``save_every`` epochs and, when ``resume`` is
    true and the file exists, training continues from it (raising the epoch count of a finished run
    trains the extra epochs). Same seed, same device and thread count → the same numbers.

    ``max_seconds``: stop (checkpoint saved) before an epoch that would end past this many seconds
    after the call started — the next epoch is assumed as long as the mean of this call's epochs; at
    least one epoch always runs. A stopped run returns fewer than ``config.epochs`` rows and its
    manifest has ``epochs_done < epochs``; calling again resumes it.
    """
    if max_seconds is not None and checkpoint is None:
        raise ValueError("max_seconds needs a checkpoint to resume from")
    state_file = _resume_source(Path(checkpoint)) if checkpoint is not None and resume else None
    if state_file is None and checkpoint is not None and resume and Path(checkpoint).is_file():
        return _finished(checkpoint_paths(checkpoint), config, model)  # weights only, no resume state: done, or an error
    state = restore(model, config, state_file, log)
    if state.epoch >= config.epochs:  # finished: return at once (the data set is not touched)
        return pd.DataFrame(state.history)
    started, seconds_before, ran = time.perf_counter(), state.seconds, 0
    epochs = tqdm(range(state.epoch, config.epochs), desc="epochs", unit="epoch", disable=not progress,
                  initial=state.epoch, total=config.epochs)
    for _ in epochs:
        row = run_epoch(state, loss_fn, dataset, config, progress)
        state.history.append(row)
        state.epoch, ran = row["epoch"], ran + 1
        epochs.set_postfix(loss=f"{row['total']:.4f}")
        if log:
            log(f"epoch {state.epoch}/{config.epochs} " + " ".join(f"{k}={v:.5g}" for k, v in row.items()
                                                                 if k not in ("epoch", "iterations")))
        elapsed = time.perf_counter() - started
        last = state.epoch == config.epochs
        out_of_time = max_seconds is not None and not last and elapsed * (ran + 1) / ran > max_seconds
        if checkpoint is not None and (last or out_of_time or state.epoch % config.save_every == 0):
            state.seconds = seconds_before + time.perf_counter() - started
            save(checkpoint, state, config, data_info or _describe(dataset), loss_info or _describe(loss_fn))
        if out_of_time:
            if log:
                log(f"time budget: {elapsed:.0f} s of {max_seconds:.0f} s used, stopping after epoch "
                    f"{state.epoch}/{config.epochs}; rerun the same command to resume")
            break
    epochs.close()
    return pd.DataFrame(state.history)


def _resume_source(path: Path) -> Path | None:
    """Where a run resumes from: ``NAME.resume.pt``, or an older ``NAME.pt`` that still holds the full state."""
    if resume_path(path).is_file():
        return resume_path(path)
    if path.is_file():
        try:
            blob = torch_load(path)
        except Exception:
            return path  # let _load name the problem
        if isinstance(blob, dict) and blob.get("format") == CHECKPOINT_FORMAT:
            return path
    return None


def _finished(paths: tuple[Path, Path, Path], config: TrainConfig, model: nn.Module) -> pd.DataFrame:
    """A weights-only ``NAME.pt`` without resume state: its history if the manifest says the same run is done.

    A committed checkpoint is slim, so rerunning its training command loads the weights and returns at
    once. A run that wants more epochs (or other settings) cannot continue without the resume state.
    """
    path, manifest_path, history_path = paths
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        raise data.DataError(f"{path}: weights only and no readable manifest {manifest_path.name}; "
                             "use another checkpoint path or resume=False") from None
    saved = {"config": manifest.get("config") or {}, "model_class": manifest.get("model_class")}
    _check_resumable(path, saved, config, model)
    if int(manifest.get("epochs_done", -1)) != config.epochs:
        raise data.DataError(f"{path}: weights only ({manifest.get('epochs_done')} epochs) and no resume state "
                             f"{resume_path(path).name}, so it cannot continue to {config.epochs} epochs; "
                             "use another checkpoint path or resume=False")
    blob = torch_load(path)
    model.load_state_dict(blob["model"])
    return pd.read_csv(history_path) if history_path.is_file() else pd.DataFrame()


def _describe(obj) -> dict | None:
    return obj.describe() if hasattr(obj, "describe") else None


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows (e.g. ``x86_64``)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    except OSError:
        model = ""
    return model or platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The hardware that trained: ``cuda:<GPU name>`` or ``cpu: <CPU model>`` (float results differ across both)."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type != "cpu":
        return str(device)
    return f"cpu: {cpu_model()}"


def _manifest(path: Path, model: nn.Module, config: TrainConfig, history: list[dict], seconds: float,
              device: torch.device, data_info, loss_info) -> dict:
    final = history[-1] if history else {}
    digest = sha256_file(path)
    return {
        "checkpoint": path.name,
        "sha256": digest,
        "bytes": path.stat().st_size,
        "checksum": digest[:16],
        "resume_state": resume_path(path).name,
        "model_class": type(model).__name__,
        "model_config": getattr(model, "config", None),
        "parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "data": data_info,
        "loss": loss_info,
        "epochs_done": len(history),
        "epochs": config.epochs,
        "protocol": config.protocol,
        "seed": config.seed,
        "config": asdict(config),
        "device": device_name(device),
        "amp": config.amp and device.type == "cuda",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **git_commit(),
        "seconds": round(seconds, 1),
        "final": {k: v for k, v in final.items() if k not in ("epoch",)},
        "history": f"{path.stem}_history.csv",
    }
