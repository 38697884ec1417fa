"""SAVF's three-stage training (spec 000 §4): sub-task 2, then sub-task 1, frozen, then the main task.

    python -m fusion_core.papers.savf.train --protocol quick --out build/quick/savf              # seconds
    python -m fusion_core.papers.savf.train --protocol reduced --threads 1 --max-minutes 45      # CPU substitute
    python -m fusion_core.papers.savf.train --protocol reduced --variant noatt --threads 1
    python -m fusion_core.papers.savf.train --protocol paper --device cuda --max-minutes 9        # resumable

Stages, each one run of the shared loop :func:`fusion_core.train.train` with its own checkpoint in ``--out``:

1. ``enhance`` — :class:`~.model.EnhanceStage`: EnhanceNet (sub-task 2) and, without ``--backbone-weights``, the
   VGG-style backbone with a reconstruction decoder, on the natural-image corpus (``splits/enhance_corpus.txt``,
   the COCO2014 substitute) resized to the stage's size. ``savf_<protocol>_enhance_seed<S>.pt``.
2. ``attention`` — :class:`~.model.AttentionNet` (sub-task 1, backbone frozen), supervised by the ``tno_masks20``
   salient-target masks of ``splits/attention_train.txt`` (15 pairs), resized, ×3 by identity / h-flip / v-flip
   (the paper's 3× "data enhancement"). ``savf_<protocol>_attention_seed<S>.pt``. Only the ``base`` variant.
3. ``main`` — :class:`~.model.SAVFNet` with the frozen sub-tasks, unsupervised on ``splits/main_train.txt``
   (roadscene221, resized, ×3 flips). ``savf_<protocol>_seed<S>.pt`` (base = OURS+, method ``savf``) or
   ``savf_<protocol>_noatt_seed<S>.pt`` (OURS, method ``savf_noatt``). This file holds every frozen column too: it
   is what ``fuse --method savf`` loads.

Protocols (:data:`PROTOCOLS`): ``paper`` = the spec's assumptions for the unstated recipe (Adam 1e-4, batch 8,
256², epochs 4 / 30 / 20, VGG16 widths; spec §4.2); ``reduced`` = the CPU substitute the committed checkpoints used:
the same networks at 1/8 backbone width, ``width=16``, ``tap_ch=8``, 96² images, Adam 5e-4, epochs 6 / 30 / 3 —
measured 0.40 / 0.88 / 0.83 s per iteration of batch 4 (OURS: 0.56) on one thread of an idle 2-core machine, 0.75 s
for the enhancement stage with four jobs sharing it; about 35 min for all stages of OURS+ and OURS (README); ``quick`` = 32² images, a few
pairs, one epoch per stage (seconds; its numbers mean nothing). ``--max-minutes`` bounds the whole call; rerun
the same command to resume (exit code 75 while unfinished).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ... import data
from ...io import sha256_file
from ...train import (INCOMPLETE, cli_parser, TrainConfig, TrainedModel, manifest_protocol, progress_of, quietly,
                      seed_everything, train, trained_model)
from .loss import AttentionLoss, EnhanceLoss, MainLoss, relu2_2
from .model import PAPER, AttentionNet, EnhanceStage, SAVFNet, load_backbone_weights

CHECKPOINT_DIR = data.REPO_ROOT / "checkpoints" / PAPER
QUICK_DIR = data.REPO_ROOT / "build" / "quick" / "checkpoints" / PAPER
REDUCED_MODEL = {"backbone_scale": 0.125, "width": 16, "tap_ch": 8}
BACKBONE_TRAINED = ("trained by us: VGG16-layout backbone at scale {scale}, reconstruction auto-encoder on the "
                    "natural-image corpus in the enhancement stage (no ImageNet weights)")


@dataclass(frozen=True)
class Stage:
    """One stage's optimisation: epochs, batch, Adam learning rate, square image size, and a cap on the data."""

    epochs: int
    batch_size: int
    lr: float
    size: int
    limit: int | None = None  # the first K images / pairs of the split (None: all)


@dataclass(frozen=True)
class Protocol:
    """The three stages, the network widths (overrides of ``model.DEFAULT_CONFIG``) and the loss settings."""

    enhance: Stage
    attention: Stage
    main: Stage
    model: dict = field(default_factory=dict)
    main_ref: str = "both_equal"
    att_bce: float = 0.0
    edge: str = "ssim"
    augment: bool = True  # identity / h-flip / v-flip (the paper's 3× expansion)


PROTOCOLS = {
    "quick": Protocol(Stage(1, 4, 1e-3, 32, 8), Stage(1, 4, 1e-3, 32, 4), Stage(1, 4, 1e-3, 32, 4),
                      model=REDUCED_MODEL, augment=False),
    "reduced": Protocol(Stage(6, 4, 5e-4, 96), Stage(30, 4, 5e-4, 96), Stage(3, 4, 5e-4, 96), model=REDUCED_MODEL),
    "paper": Protocol(Stage(4, 8, 1e-4, 256), Stage(30, 8, 1e-4, 256), Stage(20, 8, 1e-4, 256)),
}
VARIANTS = ("base", "noatt")  # base = OURS+ (method savf), noatt = OURS (method savf_noatt)
METHOD_OF_VARIANT = {"base": "savf", "noatt": "savf_noatt"}


def checkpoint_name(protocol: str, stage: str, seed: int) -> str:
    """``savf_<protocol>_<stage>_seed<S>.pt``; the main stage is ``savf_<protocol>_seed<S>.pt`` (base) or ``..._noatt_...``."""
    tag = {"main": "", "base": "", "noatt": "_noatt", "enhance": "_enhance", "attention": "_attention"}[stage]
    return f"{PAPER}_{protocol}{tag}_seed{seed}.pt"


# --------------------------------------------------------------------------- data in memory

def resize(image: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """1×1×H×W → 1×1×size×size (bilinear with antialiasing; ``nearest`` for labels)."""
    if mode == "nearest":
        return F.interpolate(image, size=(size, size), mode="nearest")
    return F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)


def flips(stack: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → 3N×C×H×W: identity, horizontal flip, vertical flip (the paper's 3× expansion, spec §4.1)."""
    return torch.cat([stack, stack.flip(-1), stack.flip(-2)])


def mask_path(pair: data.Pair) -> Path:
    """``tno_masks20``'s label of a pair: ``mask/<ir file name>`` beside ``ir/`` (a mask on the IR image)."""
    path = pair.ir.parent.parent / "mask" / pair.ir.name
    if not path.is_file():
        raise data.DataError(f"{path}: no attention mask for pair {pair.name}")
    return path


def read_mask(pair: data.Pair) -> torch.Tensor:
    """The binary attention label G of a pair, 1×1×H×W in {0, 1} (threshold 0.5)."""
    return (data.read_grey(mask_path(pair)) > 0.5).float()


@dataclass
class Tensors:
    """Training tensors held in memory (all N×1×S×S); a batch is an index into each."""

    tensors: tuple[torch.Tensor, ...]
    names: list[str]
    augmented: bool

    def __len__(self) -> int:
        return len(self.tensors[0])

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        return tuple(t[indices] for t in self.tensors)

    def describe(self) -> dict:
        return {"samples": len(self), "sources": len(self.names), "size": list(self.tensors[0].shape[-2:]),
                "augmented_x3": self.augmented, "first": self.names[:2], "last": self.names[-1:]}


def corpus_set(size: int, limit: int | None = None) -> Tensors:
    """The enhancement corpus (``splits/enhance_corpus.txt``), grey, resized to size² (no augmentation)."""
    specs = data.load_image_list(PAPER, "enhance_corpus")[:limit]
    images = [resize(torch.from_numpy(data.natural_image(s).astype(np.float32) / 255.0)[None, None], size) for s in specs]
    return Tensors((torch.cat(images),), specs, False)


def pair_set(role: str, size: int, limit: int | None = None, masks: bool = False, augment: bool = True) -> Tensors:
    """IR, VIS (and the attention mask) of a split, resized to size²; ×3 by flips when ``augment``."""
    pairs = data.load_split(PAPER, role)[:limit]
    irs, viss, labels = [], [], []
    for pair in pairs:
        images = data.load_pair(pair)
        irs.append(resize(images.ir, size))
        viss.append(resize(images.vis, size))
        if masks:
            labels.append(resize(read_mask(pair), size, "nearest"))
    stacks = [torch.cat(irs), torch.cat(viss)] + ([torch.cat(labels)] if masks else [])
    if augment:
        stacks = [flips(s) for s in stacks]
    return Tensors(tuple(stacks), [p.name for p in pairs], augment)


# --------------------------------------------------------------------------- the stages

def _config(stage: Stage, seed: int, device: str, protocol: str) -> TrainConfig:
    return TrainConfig(epochs=stage.epochs, batch_size=stage.batch_size, lr=stage.lr, seed=seed, device=device,
                       protocol=protocol)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(1.0, deadline - time.monotonic())


def _done(checkpoint: Path) -> bool:
    progress = progress_of(checkpoint)
    return progress is not None and progress[0] == progress[1]


def backbone_source(recipe: Protocol, backbone_weights: str | Path | None) -> str:
    if backbone_weights is None:
        return BACKBONE_TRAINED.format(scale=recipe.model.get("backbone_scale", 1.0))
    path = Path(backbone_weights)
    return f"ImageNet weights from the local file {path.name} (sha256 {sha256_file(path)[:12]})"


def train_enhance(recipe: Protocol, protocol: str, seed: int, out: Path, device: str, progress: bool,
                  deadline: float | None, backbone_weights: str | Path | None) -> tuple[EnhanceStage, Path, pd.DataFrame]:
    seed_everything(seed)
    model = EnhanceStage(train_backbone=backbone_weights is None, **recipe.model)
    if backbone_weights is not None:
        load_backbone_weights(model.backbone, backbone_weights)
    features = relu2_2(model.backbone) if backbone_weights is not None else None
    loss = EnhanceLoss(features=features, w_perceptual=1.0 if features else 0.0, edge=recipe.edge)
    checkpoint = out / checkpoint_name(protocol, "enhance", seed)
    history = train(model, loss, corpus_set(recipe.enhance.size, recipe.enhance.limit),
                    _config(recipe.enhance, seed, device, protocol), checkpoint=checkpoint, progress=progress, log=None,
                    max_seconds=_left(deadline))
    return model, checkpoint, history


def train_attention(recipe: Protocol, protocol: str, seed: int, out: Path, device: str, progress: bool,
                    deadline: float | None, enhance: EnhanceStage | SAVFNet,
                    checkpoint: Path | None = None) -> tuple[AttentionNet, Path, pd.DataFrame]:
    """Sub-task 1 on the masks, on ``enhance``'s trained backbone (an enhancement stage, or an OURS+ network whose
    column an ablation row reuses); ``checkpoint``: default ``savf_<protocol>_attention_seed<S>.pt`` in ``out``."""
    seed_everything(seed)
    model = AttentionNet(**recipe.model)
    model.backbone.load_state_dict(enhance.backbone.state_dict())
    loss = AttentionLoss(relu2_2(model.backbone), w_bce=recipe.att_bce, edge=recipe.edge)
    stage = recipe.attention
    checkpoint = checkpoint or out / checkpoint_name(protocol, "attention", seed)
    history = train(model, loss, pair_set("attention_train", stage.size, stage.limit, masks=True, augment=recipe.augment),
                    _config(stage, seed, device, protocol), checkpoint=checkpoint, progress=progress, log=None,
                    max_seconds=_left(deadline))
    return model, checkpoint, history


def train_main(recipe: Protocol, protocol: str, seed: int, out: Path, variant: str, device: str, progress: bool,
               deadline: float | None, enhance: EnhanceStage, attention: AttentionNet | None,
               source: str) -> tuple[Path, pd.DataFrame]:
    seed_everything(seed)
    model = SAVFNet(attention=variant == "base", backbone_source=source, **recipe.model)
    model.load_subtasks(enhance, attention)
    loss = MainLoss(relu2_2(model.backbone), main_ref=recipe.main_ref, edge=recipe.edge)
    stage = recipe.main
    checkpoint = out / checkpoint_name(protocol, variant, seed)
    history = train(model, loss, pair_set("main_train", stage.size, stage.limit, augment=recipe.augment),
                    _config(stage, seed, device, protocol), checkpoint=checkpoint, progress=progress, log=None,
                    max_seconds=_left(deadline))
    return checkpoint, history


def train_model(protocol: str = "quick", seed: int = 0, out: str | Path = CHECKPOINT_DIR, variant: str = "base",
                device: str = "cpu", progress: bool = True, max_minutes: float | None = None, *,
                backbone_weights: str | Path | None = None) -> tuple[Path, pd.DataFrame]:
    """Train (or resume) the stages ``variant`` needs; returns the main checkpoint and its history, or — when the
    time budget stops an earlier stage — that stage's checkpoint and history (rerun to resume).

    ``backbone_weights``: a local torchvision VGG16/VGG19 ``state_dict`` file (ImageNet); without it the backbone is
    trained by us in the enhancement stage. Finished stages are reused (their checkpoints are found in ``out``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol '{protocol}' is not one of {sorted(PROTOCOLS)}")
    if variant not in VARIANTS:
        raise ValueError(f"variant '{variant}' is not one of {VARIANTS}")
    recipe, out = PROTOCOLS[protocol], Path(out)
    if backbone_weights is not None and recipe.model.get("backbone_scale", 1.0) != 1.0:
        raise ValueError(f"protocol '{protocol}' uses a {recipe.model['backbone_scale']}-width backbone: ImageNet "
                         "weights need the full VGG widths (protocol 'paper')")
    deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
    out.mkdir(parents=True, exist_ok=True)
    enhance, checkpoint, history = train_enhance(recipe, protocol, seed, out, device, progress, deadline, backbone_weights)
    if not _done(checkpoint):
        return checkpoint, history
    attention = None
    if variant == "base":
        attention, checkpoint, history = train_attention(recipe, protocol, seed, out, device, progress, deadline, enhance)
        if not _done(checkpoint):
            return checkpoint, history
    return train_main(recipe, protocol, seed, out, variant, device, progress, deadline, enhance, attention,
                      backbone_source(recipe, backbone_weights))


# --------------------------------------------------------------------------- the models of a notebook profile

def plan(profile: str, protocol: str | None = None) -> tuple[str, Path]:
    """(protocol, checkpoint folder) of a notebook profile: quick trains its own under build/quick/; eval reads
    ``checkpoints/savf/`` (default protocol ``reduced``, the committed CPU models); full trains there (default
    ``paper``, the GPU recipe)."""
    if profile == "quick":
        return "quick", QUICK_DIR
    if profile not in ("eval", "full"):
        raise ValueError(f"unknown profile '{profile}' (quick, eval, full)")
    return protocol or ("reduced" if profile == "eval" else "paper"), CHECKPOINT_DIR


def discover(checkpoint_dir: str | Path, protocol: str, seeds: Sequence[int] = (0,)) -> list[TrainedModel]:
    """Complete main-stage models of ``protocol`` in ``checkpoint_dir``, base first."""
    found = []
    for variant in VARIANTS:
        for seed in seeds:
            path = Path(checkpoint_dir) / checkpoint_name(protocol, variant, seed)
            if path.is_file() and _done(path) and manifest_protocol(path) == protocol:
                found.append(trained_model(path, PAPER, variant, seed, protocol))
    return found


def ensure_models(profile: str, protocol: str | None = None, seeds: Sequence[int] = (0,), progress: bool = False,
                  device: str = "cpu") -> list[TrainedModel]:
    """The main models a profile uses: eval requires committed ones (missing ones are simply absent: the notebook
    says so); quick and full train what is missing."""
    protocol, folder = plan(profile, protocol)
    if profile != "eval":
        for variant in VARIANTS:
            for seed in seeds:
                with quietly(progress):
                    train_model(protocol, seed, folder, variant, device, progress)
    return discover(folder, protocol, seeds)


def stage_history(model: TrainedModel, stage: str) -> pd.DataFrame:
    """The per-epoch loss history of one stage of ``model``'s run (``enhance``, ``attention``, or the main one)."""
    name = checkpoint_name(model.protocol, model.variant if stage == "main" else stage, model.seed)
    path = model.path.parent / f"{Path(name).stem}_history.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no loss history of stage '{stage}'")
    return pd.read_csv(path)


# --------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    parser = cli_parser(PAPER, __doc__, PROTOCOLS, VARIANTS, CHECKPOINT_DIR, "base = OURS+ (savf), noatt = OURS")
    parser.add_argument("--backbone-weights", type=Path, help="local torchvision VGG state_dict (ImageNet); "
                        "default: the backbone is trained by us in the enhancement stage")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint, _ = train_model(args.protocol, args.seed, args.out, args.variant, args.device, not args.no_progress,
                                args.max_minutes, backbone_weights=args.backbone_weights)
    done, total = progress_of(checkpoint)
    print(f"{checkpoint}: {done}/{total} epochs")
    finished = done == total and checkpoint.name == checkpoint_name(args.protocol, args.variant, args.seed)
    return 0 if finished else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
