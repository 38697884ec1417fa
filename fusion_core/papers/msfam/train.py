"""MSFAM's two-stage training (spec 003 §2.5, §4) and NestFuse's, from the command line or the notebooks.

    python -m fusion_core.papers.msfam.train --protocol quick --out build/quick/msfam
    python -m fusion_core.papers.msfam.train --protocol reduced --threads 1 --max-minutes 50
    python -m fusion_core.papers.msfam.train --protocol paper --device cuda --max-minutes 9
    python -m fusion_core.papers.msfam.train --protocol reduced --variant nestfuse --threads 1

One MSFAM training (variant ``base`` and the other stage-2 variants) runs three steps, each a run of the shared loop
(:func:`fusion_core.train.train`: seeded, resumable, manifest), each resumed where a previous call stopped:

1. **stage 1** ``msfam_<protocol>_stage1_seed<S>.pt``: encoder + decoder as an auto-encoder on single images
   (``splits/stage1.txt``), Eq. 1, Adam 1e-4.
2. **SC pre-training** ``msfam_<protocol>_sc_seed<S>.pt``: the Semantic Constraint classifier, BCE, batch 16,
   Adam 1e-4, on train-split VIS [1,0], IR [0,1] and fused images [1,1] of :attr:`Protocol.sc_methods`.
   Its validation accuracy (val split) goes to ``..._val.csv``.
3. **stage 2** ``msfam_<protocol>[_<variant>]_seed<S>.pt``: the stage-1 weights, AFBs at lr 1e-4, decoder at
   5e-5, encoder frozen, Eq. 2 on train-split pairs. One epoch per call of the loop; after each, the stage-2 loss on
   the val split is logged (``..._val.csv``) and the lowest so far is kept as ``..._best.pt`` (+ manifest): the
   model the tables use (the paper seems to select on its test set; we never do). ``NAME.pt`` is the last epoch.

Images are resized (bilinear, antialiased) to the protocol's H×W and flipped at random (the same flips on both images
of a pair). Protocols (:data:`PROTOCOLS`):

=======  =========  =====  =====================  ==========  ===========  ============================================
name     size H×W   batch  stage 1                SC          stage 2      what it is
=======  =========  =====  =====================  ==========  ===========  ============================================
paper    256×320    4      24 epochs × 422 imgs   10 epochs   20 epochs    the paper's recipe (≈ 2.5k iterations on our
                           (≈ 2.5k iterations)                             422 singles instead of 10k on FLIR's 20k); GPU
reduced  128×160    4      1 epoch (106 its)      20 epochs   1 epoch      CPU substitute, the committed model: ¼ of the
                                                              (53 its)     pixels, ~1 % of the iterations; MS-SSIM 4 scales
quick    64×80      2      1 epoch × 8 images     1 epoch     1 epoch      seconds: tiny widths (8/16/24/32), proves the
                                                              × 4 pairs    code path; its numbers mean nothing
=======  =========  =====  =====================  ==========  ===========  ============================================
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ... import data, methods
from ...io import sha256_file, torch_load, write_csv, write_json
from ...train import (INCOMPLETE, cli_parser, TrainConfig, TrainedModel, progress_of, publish_fp16, quietly,
                      seed_everything, train, trained_model, weights_state)
from ...train import first_seeds as _first_seeds
from .loss import FusionLoss, NestFuseLoss, ReconstructionLoss, SCPretrainLoss
from .model import CHECKPOINT_DIR, MSFAM, PAPER, WIDTHS, NestFuse, SemanticConstraintNet, load_checkpoint

QUICK_DIR = data.REPO_ROOT / "build" / "quick" / "checkpoints" / PAPER


@dataclass(frozen=True)
class Protocol:
    """One training recipe for all three steps (and NestFuse, which trains like stage 1)."""

    size: tuple[int, int]  # H×W every training image is resized to
    batch_size: int
    stage1_epochs: int
    sc_epochs: int
    stage2_epochs: int
    nestfuse_epochs: int
    description: str
    lr: float = 1e-4
    sc_batch_size: int = 16
    widths: tuple[int, ...] = WIDTHS
    max_images: int | None = None  # the first K stage-1 images (None: all 422)
    max_pairs: int | None = None  # the first K train (and val) pairs (None: all)
    sc_methods: tuple[str, ...] = ("average", "lp", "tif")  # the "existing algorithms" of the SC's [1,1] class
    stage2_save_every: int = 1


PROTOCOLS = {
    "paper": Protocol((256, 320), 4, 24, 10, 20, 24, "the paper's recipe at 320×256, batch 4, Adam 1e-4; stage 1 on "
                      "our 422 singles (24 epochs ≈ 2.5k iterations; FLIR's 20k singles unavailable); GPU"),
    "reduced": Protocol((128, 160), 4, 1, 20, 1, 1, "CPU substitute (the committed model): 160×128 images (¼ of the "
                        "paper's pixels), stage 1 one epoch (106 iterations), SC 20 epochs, stage 2 one epoch "
                        "(53 iterations), NestFuse one epoch; MS-SSIM on 4 scales"),
    "quick": Protocol((64, 80), 2, 1, 1, 1, 1, "smoke run: widths 8/16/24/32, 64×80 images, 8 singles, 4 pairs, one "
                      "epoch per step; numbers mean nothing", widths=(8, 16, 24, 32), max_images=8, max_pairs=4,
                      sc_methods=("average",)),
}

# Stage-2 variants (spec §7): the loss switches of each; ``nestfuse`` trains the plain NestFuse comparison instead.
VARIANTS: dict[str, dict] = {
    "base": {"loss": {}},  # Eq. 2, α2 = 0.84, β = 2 (Table 3 "P ✓ C ✓", Table 6 MSFAM)
    "baseline": {"loss": {"pull_push": False, "semantic": False}},  # Table 3 "✘ ✘" = Table 1 "Rec and Fusion"
    "p_only": {"loss": {"semantic": False}},  # Table 3 "✓ ✘"
    "c_only": {"loss": {"pull_push": False}},  # Table 3 "✘ ✓"
    "conv5x5": {"loss": {"pull_push": False, "semantic": False}, "model": {"fusion": "conv5x5"}},  # Table 2
    # Table 1 "Rec": no stage 2; the stage-1 encoder/decoder with NestFuse's rule at each scale (spec §7, T1-Rec)
    "rec": {"derive": "stage1", "model": {"fusion": "nestfuse_rule"}},
    # Table 1 "Fusion": no stage 1; encoder + AFB + decoder trained from scratch on the pairs, all at lr 1e-4, L_base
    "fusion_only": {"loss": {"pull_push": False, "semantic": False}, "from_scratch": True},
    "nestfuse": {},
    # not in the paper: ``base``'s stage 2 trained again with another stage-2 seed (the same stage 1 and SC net): the
    # noise floor of the stage-2 ablations (how far two trainings of one recipe differ)
    "rerun": {"loss": {}, "stage2_seed_offset": 1000},
}
WEIGHT_SETTINGS = ((1.0, 1.0), (1.0, 2.0), (1.0, 3.0), (0.5, 2.0), (0.84, 2.0))  # (α2, β) of Tables 4 and 5
DEFAULT_WEIGHTS = (0.84, 2.0)  # Eq. 2's final α2, β: the variant ``base``


def weights_variant(alpha2: float, beta: float) -> str:
    """The variant of Eq. 2 with loss weights (α2, β): ``base`` for (0.84, 2), else ``a<α2>_b<β>`` ('.' → 'p')."""
    if (float(alpha2), float(beta)) == DEFAULT_WEIGHTS:
        return "base"
    return f"a{float(alpha2):g}_b{float(beta):g}".replace(".", "p")


for _alpha2, _beta in WEIGHT_SETTINGS:  # Tables 4-5 (spec §7, T4-β, T5-α2): Eq. 2 with other weights
    if weights_variant(_alpha2, _beta) != "base":
        VARIANTS[weights_variant(_alpha2, _beta)] = {"loss": {"alpha2": _alpha2, "beta": _beta}}
DIRECT_VARIANTS = ("nestfuse", "rec")  # models used as their NAME.pt (no stage-2 selection, no ``_best.pt``)


# --------------------------------------------------------------------------- data in memory

def resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N×1×h×w → N×1×H×W, bilinear with antialiasing."""
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def _flip(batch: Sequence[torch.Tensor], generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Random horizontal and vertical flips per sample, the same for every tensor of ``batch``."""
    n = batch[0].shape[0]
    flips = torch.rand(n, 2, generator=generator) < 0.5
    out = [t.clone() for t in batch]
    for i in range(n):
        dims = [d for d, f in zip((-1, -2), flips[i].tolist()) if f]
        if dims:
            for t in out:
                t[i] = t[i].flip(dims)
    return tuple(out)


@dataclass
class Images:
    """Stacked N×1×H×W images (and optional N×2 labels), served with random flips (labels unflipped)."""

    images: torch.Tensor
    names: list[str]
    labels: torch.Tensor | None = None
    flips: bool = True

    def __len__(self) -> int:
        return self.images.shape[0]

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        images = self.images[indices]
        if self.flips:
            images = _flip([images], generator)[0]
        return (images,) if self.labels is None else (images, self.labels[indices])

    def describe(self) -> dict:
        return {"images": len(self), "size": list(self.images.shape[-2:]), "first": self.names[:1],
                "last": self.names[-1:], "labelled": self.labels is not None}


@dataclass
class Pairs:
    """Stacked IR and VIS (Y) images, N×1×H×W each, the same random flips on both."""

    ir: torch.Tensor
    vis: torch.Tensor
    names: list[str] = field(default_factory=list)
    flips: bool = True

    @classmethod
    def load(cls, pairs: Sequence[data.Pair], size: tuple[int, int], flips: bool = True) -> "Pairs":
        if not pairs:
            raise data.DataError("no training pairs given")
        loaded = [data.load_pair(p) for p in pairs]
        return cls(torch.cat([resize(x.ir, size) for x in loaded]), torch.cat([resize(x.vis, size) for x in loaded]),
                   [p.name for p in pairs], flips)

    def __len__(self) -> int:
        return self.ir.shape[0]

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ir, vis = self.ir[indices], self.vis[indices]
        return _flip([ir, vis], generator) if self.flips else (ir, vis)

    def describe(self) -> dict:
        return {"pairs": len(self), "size": list(self.ir.shape[-2:]), "first": self.names[:1], "last": self.names[-1:]}


def stage1_images(recipe: Protocol) -> Images:
    """The stage-1 singles (``splits/stage1.txt``: the FLIR substitute), resized."""
    specs = data.load_image_list(PAPER, "stage1")[:recipe.max_images]
    grey = [torch.from_numpy(data.natural_image(s)).float().div(255.0)[None, None] for s in specs]
    return Images(torch.cat([resize(image, recipe.size) for image in grey]), specs)


def split_pairs(role: str, recipe: Protocol, flips: bool = True) -> Pairs:
    return Pairs.load(data.load_split(PAPER, role)[:recipe.max_pairs], recipe.size, flips)


def sc_images(pairs: Pairs, fusion_methods: Sequence[str]) -> Images:
    """SC pre-training set (§3.5): VIS → [1, 0], IR → [0, 1], each method's fusion of the pair → [1, 1]."""
    images, labels, names = [pairs.vis, pairs.ir], [[1.0, 0.0]] * len(pairs) + [[0.0, 1.0]] * len(pairs), []
    names = [f"{n}/vis" for n in pairs.names] + [f"{n}/ir" for n in pairs.names]
    for method in fusion_methods:
        fuse = methods.build_method(method)
        with torch.no_grad():
            images.append(torch.cat([fuse(pairs.ir[i:i + 1], pairs.vis[i:i + 1]).clamp(0, 1) for i in range(len(pairs))]))
        labels += [[1.0, 1.0]] * len(pairs)
        names += [f"{n}/{method}" for n in pairs.names]
    return Images(torch.cat(images), names, torch.tensor(labels))


# --------------------------------------------------------------------------- names and bookkeeping

def checkpoint_name(protocol: str, variant: str, seed: int, step: str = "stage2") -> str:
    """``msfam_<protocol>_stage1_seed<S>``, ``msfam_<protocol>_sc_seed<S>``, ``msfam_<protocol>[_<variant>]_seed<S>``
    (stage 2; base unnamed) or ``nestfuse_<protocol>_seed<S>``."""
    if variant == "nestfuse":
        return f"nestfuse_{protocol}_seed{seed}"
    if step in ("stage1", "sc"):
        return f"{PAPER}_{protocol}_{step}_seed{seed}"
    return f"{PAPER}_{protocol}{'' if variant == 'base' else '_' + variant}_seed{seed}"


def best_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}_best.pt")


def val_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(f"{checkpoint.stem}_val.csv")


def is_complete(checkpoint: Path, epochs: int) -> bool:
    done = progress_of(checkpoint)
    return done is not None and done[0] >= epochs


class Budget:
    """The wall-clock budget of one call (``--max-minutes``), shared by the steps."""

    def __init__(self, minutes: float | None):
        self.deadline = None if minutes is None else time.monotonic() + 60.0 * minutes

    def left(self) -> float | None:
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 1.0)

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def _config(recipe: Protocol, epochs: int, seed: int, device: str, protocol: str, batch: int | None = None,
            save_every: int = 1) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=batch or recipe.batch_size, lr=recipe.lr, seed=seed, device=device,
                       protocol=protocol, save_every=save_every)


# --------------------------------------------------------------------------- the steps

def train_stage1(recipe: Protocol, protocol: str, seed: int, out: Path, device: str, progress: bool,
                 budget: Budget) -> tuple[Path, pd.DataFrame]:
    """Step 1: the auto-encoder on single images, Eq. 1."""
    checkpoint = out / f"{checkpoint_name(protocol, 'base', seed, 'stage1')}.pt"
    seed_everything(seed)
    model = MSFAM(nb=recipe.widths, stage="stage1")
    history = train(model, ReconstructionLoss(), stage1_images(recipe), _config(recipe, recipe.stage1_epochs, seed,
                    device, protocol), checkpoint=checkpoint, progress=progress, max_seconds=budget.left())
    return checkpoint, history


def train_nestfuse(recipe: Protocol, protocol: str, seed: int, out: Path, device: str, progress: bool,
                   budget: Budget) -> tuple[Path, pd.DataFrame]:
    """The NestFuse comparison: its auto-encoder on the same singles, its own loss (MSE + 100 (1 − SSIM))."""
    checkpoint = out / f"{checkpoint_name(protocol, 'nestfuse', seed)}.pt"
    seed_everything(seed)
    model, images = NestFuse(nb=recipe.widths), stage1_images(recipe)
    redraws = revive_output(model, images.images[:recipe.batch_size])
    if redraws:
        print(f"NestFuse seed {seed}: output ReLU dead at initialisation; output conv re-drawn {redraws}x")
    history = train(model, NestFuseLoss(), images, _config(recipe, recipe.nestfuse_epochs, seed, device, protocol),
                    checkpoint=checkpoint, progress=progress, max_seconds=budget.left())
    return checkpoint, history


def revive_output(model: NestFuse, images: torch.Tensor, tries: int = 100) -> int:
    """NestFuse's output ReLU (kept, spec §2.2) can start dead: no pixel of the first images is positive, no
    gradient reaches the network, and training ends at a constant-zero image (our first ``reduced`` NestFuse,
    seed 0: EN 0 on every test pair after 14 min). Then the output conv's initialisation (PyTorch's default) is
    drawn again from the seeded generator until some output pixel is positive. Returns the number of re-draws
    (0: alive as drawn). MSFAM's seed 0 starts alive and is left as drawn."""
    out = model.decoder.out.conv
    with torch.no_grad():
        for redraws in range(tries + 1):
            if bool((model.reconstruct(images) > 0).any()):
                return redraws
            out.reset_parameters()
    raise RuntimeError(f"NestFuse output still dead after {tries} re-draws of its output conv")


def sc_accuracy(net: torch.nn.Module, images: Images) -> float:
    """Fraction of images whose two labels are both right at threshold 0.5."""
    net.eval()
    with torch.no_grad():
        predicted = torch.cat([net.logits(images.images[i:i + 64]) > 0 for i in range(0, len(images), 64)]).float()
    return float((predicted == images.labels).all(1).float().mean())


def train_sc(recipe: Protocol, protocol: str, seed: int, out: Path, device: str, progress: bool,
             budget: Budget) -> tuple[Path, pd.DataFrame]:
    """Step 2: the Semantic Constraint classifier (BCE); its train and val accuracy to ``..._val.csv``."""
    checkpoint = out / f"{checkpoint_name(protocol, 'base', seed, 'sc')}.pt"
    seed_everything(seed)
    train_set = sc_images(split_pairs("train", recipe), recipe.sc_methods)
    net = SemanticConstraintNet()
    history = train(net, SCPretrainLoss(), train_set, _config(recipe, recipe.sc_epochs, seed, device, protocol,
                    recipe.sc_batch_size), checkpoint=checkpoint, progress=progress, max_seconds=budget.left())
    if is_complete(checkpoint, recipe.sc_epochs) and not val_path(checkpoint).is_file():
        val_set = sc_images(split_pairs("val", recipe, flips=False), recipe.sc_methods)
        net = load_checkpoint(checkpoint, expect="SemanticConstraintNet")
        write_csv(val_path(checkpoint), pd.DataFrame([{"split": "train", "accuracy": sc_accuracy(net, train_set)},
                                                      {"split": "val", "accuracy": sc_accuracy(net, val_set)}]))
    return checkpoint, history


def validation_loss(model: torch.nn.Module, loss: FusionLoss, pairs: Pairs, batch: int) -> float:
    """The stage-2 loss on the val pairs (no flips), mean over batches."""
    model.eval()
    totals = []
    with torch.no_grad():
        for i in range(0, len(pairs), batch):
            totals.append(float(loss(model, (pairs.ir[i:i + batch], pairs.vis[i:i + batch]))["total"]))
    return float(np.mean(totals))


def _write_best(checkpoint: Path, epoch: int, value: float) -> None:
    """Copy the current weights to ``..._best.pt`` with a manifest that names the selected epoch."""
    best = best_path(checkpoint)
    shutil.copyfile(checkpoint, best)
    manifest = json.loads(checkpoint.with_suffix(".json").read_text())
    digest = sha256_file(best)
    manifest.update(checkpoint=best.name, sha256=digest, checksum=digest[:16], selected_epoch=epoch,
                    selection="lowest stage-2 loss on splits/val.txt", val_loss=value)
    write_json(best.with_suffix(".json"), manifest)


def train_stage2(recipe: Protocol, protocol: str, seed: int, out: Path, variant: str, device: str, progress: bool,
                 budget: Budget, stage1: Path | None, sc: Path | None) -> tuple[Path, pd.DataFrame]:
    """Step 3: AFBs + decoder on pairs (Eq. 2), one loop call per epoch, validation after each (``fusion_only``:
    no stage-1 weights, everything trains; variants without L_C do not load the SC net)."""
    spec = VARIANTS[variant]
    checkpoint = out / f"{checkpoint_name(protocol, variant, seed)}.pt"
    semantic = spec.get("loss", {}).get("semantic", True)
    sc_net = load_checkpoint(sc, device, expect="SemanticConstraintNet") if semantic else None
    loss = FusionLoss(sc_net, **spec.get("loss", {})).to(device)
    stage2_seed = seed + spec.get("stage2_seed_offset", 0)  # initialisation of the AFBs and the batch order
    seed_everything(stage2_seed)
    if spec.get("from_scratch"):  # Table 1 "Fusion": every part trains at the base lr, nothing loaded
        model = MSFAM(nb=recipe.widths, stage="all", **spec.get("model", {}))
    else:
        model = MSFAM(nb=recipe.widths, stage="stage2", **spec.get("model", {}))
        load_stage1(model, stage1)
    train_set, val_set = split_pairs("train", recipe), split_pairs("val", recipe, flips=False)
    rows = pd.read_csv(val_path(checkpoint)).to_dict("records") if val_path(checkpoint).is_file() else []
    history = pd.DataFrame()
    started, durations = time.monotonic(), []
    for epoch in range(1, recipe.stage2_epochs + 1):
        if is_complete(checkpoint, epoch) and any(r["epoch"] == epoch for r in rows):
            continue
        left = budget.left()
        if durations and left is not None and np.mean(durations) > left:
            break
        tick = time.monotonic()
        history = train(model, loss, train_set, _config(recipe, epoch, stage2_seed, device, protocol),
                        checkpoint=checkpoint, progress=progress, log=None)
        durations.append(time.monotonic() - tick)
        value = validation_loss(model, loss, val_set, recipe.batch_size)
        if not rows or value < min(r["val_loss"] for r in rows):
            _write_best(checkpoint, epoch, value)
        rows.append({"epoch": epoch, "val_loss": value, "train_loss": float(history["total"].iloc[-1])})
        write_csv(val_path(checkpoint), pd.DataFrame(rows))
    del started
    if len(rows) >= recipe.stage2_epochs and best_path(checkpoint).is_file():
        manifest_file = best_path(checkpoint).with_suffix(".json")
        manifest = json.loads(manifest_file.read_text())
        if not manifest.get("selection_complete"):
            manifest.update(selection_complete=True, stage2_epochs=recipe.stage2_epochs, val_history=rows)
            write_json(manifest_file, manifest)
    if history.empty and checkpoint.with_name(f"{checkpoint.stem}_history.csv").is_file():
        history = pd.read_csv(checkpoint.with_name(f"{checkpoint.stem}_history.csv"))
    return checkpoint, history


def load_stage1(model: MSFAM, stage1: Path) -> None:
    """The stage-1 encoder and decoder weights into ``model`` (its fusion blocks keep their own)."""
    weights = torch_load(stage1)["model"]
    missing, unexpected = model.load_state_dict({k: v for k, v in weights.items() if not k.startswith("fusion.")},
                                                strict=False)
    if unexpected or any(not k.startswith("fusion.") for k in missing):
        raise data.DataError(f"{stage1}: stage-1 weights do not fit the network ({missing or unexpected})")


def derive_rec(recipe: Protocol, protocol: str, seed: int, out: Path, stage1: Path) -> Path:
    """Table 1 "Rec" (no training): the stage-1 auto-encoder with NestFuse's rule at each scale, written as an
    inference file ``msfam_<protocol>_rec_seed<S>.pt`` whose manifest names the stage-1 file it was made from."""
    checkpoint = out / f"{checkpoint_name(protocol, 'rec', seed)}.pt"
    source = json.loads(stage1.with_suffix(".json").read_text())
    if checkpoint.is_file() and progress_of(checkpoint) is not None and json.loads(
            checkpoint.with_suffix(".json").read_text()).get("stage1_sha256") == sha256_file(stage1):
        return checkpoint
    model = MSFAM(nb=recipe.widths, stage="all", **VARIANTS["rec"]["model"])
    load_stage1(model, stage1)
    torch.save(weights_state(model.state_dict(), "MSFAM", model.config), checkpoint)
    digest = sha256_file(checkpoint)
    write_json(checkpoint.with_suffix(".json"), {
        **{k: source[k] for k in ("epochs", "epochs_done", "protocol", "seed", "data", "device") if k in source},
        "model_class": "MSFAM", "model_config": model.config, "checkpoint": checkpoint.name, "sha256": digest,
        "checksum": digest[:16], "variant": "rec",
        "derived_from": stage1.name, "stage1_sha256": sha256_file(stage1),
        "note": "no stage 2: stage-1 weights with NestFuse's fusion rule (attention_avg) at each scale"})
    return checkpoint


def train_model(protocol: str = "quick", seed: int = 0, out: str | Path = CHECKPOINT_DIR, variant: str = "base",
                device: str = "cpu", progress: bool = True, max_minutes: float | None = None
                ) -> tuple[Path, pd.DataFrame]:
    """Train (or resume) one model; returns its checkpoint and loss history (for MSFAM: stage 2's, the last epoch's
    weights; ``..._best.pt`` beside it is the val-selected one). Stops when ``max_minutes`` is spent: rerun to resume."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol '{protocol}' is not one of {sorted(PROTOCOLS)}")
    if variant not in VARIANTS:
        raise ValueError(f"variant '{variant}' is not one of {list(VARIANTS)}")
    recipe, out, budget = PROTOCOLS[protocol], Path(out), Budget(max_minutes)
    out.mkdir(parents=True, exist_ok=True)
    if variant == "nestfuse":
        return train_nestfuse(recipe, protocol, seed, out, device, progress, budget)
    if VARIANTS[variant].get("from_scratch"):
        return train_stage2(recipe, protocol, seed, out, variant, device, progress, budget, None, None)
    stage1, history = train_stage1(recipe, protocol, seed, out, device, progress, budget)
    if not is_complete(stage1, recipe.stage1_epochs) or budget.spent():
        return stage1, history
    if variant == "rec":
        return derive_rec(recipe, protocol, seed, out, stage1), history
    sc, history = train_sc(recipe, protocol, seed, out, device, progress, budget)
    if not is_complete(sc, recipe.sc_epochs) or budget.spent():
        return sc, history
    return train_stage2(recipe, protocol, seed, out, variant, device, progress, budget, stage1, sc)


def finished(checkpoint: Path, protocol: str, variant: str) -> bool:
    """Whether ``checkpoint`` is the last step of ``variant`` under ``protocol`` and complete."""
    recipe = PROTOCOLS[protocol]
    epochs = {"nestfuse": recipe.nestfuse_epochs, "rec": recipe.stage1_epochs}.get(variant, recipe.stage2_epochs)
    match = re.search(r"_seed(\d+)\.pt$", checkpoint.name)
    return (match is not None and checkpoint.name == f"{checkpoint_name(protocol, variant, int(match[1]))}.pt"
            and is_complete(checkpoint, epochs))


# --------------------------------------------------------------------------- the models of a notebook profile

def plan(profile: str) -> tuple[str, Path]:
    """(protocol, checkpoint folder) a notebook profile uses: quick trains its own under build/quick/; eval and
    full use the committed ``reduced`` models in ``checkpoints/msfam/``."""
    if profile == "quick":
        return "quick", QUICK_DIR
    if profile in ("eval", "full"):
        return "reduced", CHECKPOINT_DIR
    raise ValueError(f"unknown profile '{profile}' (quick, eval, full)")


def selection_complete(best: Path) -> bool:
    """Whether ``..._best.pt`` is the val-selected model of a finished stage 2 (its manifest says so)."""
    try:
        return bool(json.loads(best.with_suffix(".json").read_text()).get("selection_complete"))
    except (OSError, ValueError):
        return False


def discover(checkpoint_dir: str | Path, protocol: str, variants: Sequence[str] = ("base", "nestfuse")
             ) -> list[TrainedModel]:
    """Complete models of ``protocol`` in ``checkpoint_dir``: MSFAM variants as their val-selected ``_best.pt``
    (the last epoch's ``NAME.pt`` is not committed), NestFuse and Table 1's ``rec`` as their ``NAME.pt``."""
    found = []
    for variant in variants:
        stem = checkpoint_name(protocol, variant, 0)[:-1]
        direct = variant in DIRECT_VARIANTS
        pattern = rf"{re.escape(stem)}(\d+)" + (r"\.pt" if direct else r"_best\.pt")
        for path in sorted(Path(checkpoint_dir).glob(f"{stem}*.pt")):
            match = re.fullmatch(pattern, path.name)
            if not match:
                continue
            ok = finished(path, protocol, variant) if direct else selection_complete(path)
            if ok:
                found.append(trained_model(path, PAPER, variant, int(match[1]), protocol))
    return found


def missing_models(profile: str, variants: Sequence[str] = ("base", "nestfuse"), repeats: int | None = 1) -> list[str]:
    """Checkpoint paths ``profile`` would use but cannot find complete (eval: not committed)."""
    protocol, folder = plan(profile)
    have = {(m.variant, m.seed) for m in discover(folder, protocol, variants)}
    return [str(folder / f"{checkpoint_name(protocol, v, s)}{'' if v in DIRECT_VARIANTS else '_best'}.pt")
            for v in variants for s in range(repeats or 1) if (v, s) not in have]


def ensure_models(profile: str, variants: Sequence[str] = ("base", "nestfuse"), repeats: int | None = 1,
                  progress: bool = False, device: str = "cpu", missing_ok: bool = False) -> list[TrainedModel]:
    """The complete models ``profile`` uses (seed 0 … repeats − 1); quick and full train what is missing, eval
    requires the committed files (a FileNotFoundError names the missing one; ``missing_ok``: skipped, see
    :func:`missing_models`)."""
    protocol, folder = plan(profile)
    wanted = [(v, s) for v in variants for s in range(repeats or 1)]
    have = {(m.variant, m.seed) for m in discover(folder, protocol, variants)}
    for variant, seed in wanted:
        if (variant, seed) in have:
            continue
        if profile == "eval" and missing_ok:
            continue
        if profile == "eval":
            raise FileNotFoundError(f"{folder / checkpoint_name(protocol, variant, seed)}.pt: no complete committed "
                                    f"checkpoint for {variant} seed {seed}; train it with "
                                    f"python -m fusion_core.papers.msfam.train --protocol {protocol} --variant {variant}")
        with quietly(progress):
            train_model(protocol, seed, folder, variant, device, progress)
    return [m for m in discover(folder, protocol, variants) if (m.variant, m.seed) in wanted]


def first_seeds(models: Sequence[TrainedModel], repeats: int | None) -> list[TrainedModel]:
    return _first_seeds(models, repeats, list(VARIANTS))


# --------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    parser = cli_parser(PAPER, __doc__, PROTOCOLS, VARIANTS, CHECKPOINT_DIR)
    parser.add_argument("--publish-fp16", action="store_true", help="after training, store the committed weights "
                        "(MSFAM: ..._best.pt, NestFuse: NAME.pt) in float16 (tree-size limit)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint, _ = train_model(args.protocol, args.seed, args.out, args.variant, args.device,
                                not args.no_progress, args.max_minutes)
    done = finished(checkpoint, args.protocol, args.variant)
    if done and args.publish_fp16:
        print("float16:", publish_fp16(checkpoint if args.variant in DIRECT_VARIANTS else best_path(checkpoint)))
    print(f"{checkpoint}: {progress_of(checkpoint)} epochs, {'complete' if done else 'incomplete: rerun to resume'}")
    return 0 if done else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
