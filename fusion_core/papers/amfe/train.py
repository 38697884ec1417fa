"""Train AMFE in its two stages (spec 004 §4) — plain CLI:

    python -m fusion_core.papers.amfe.train --protocol quick --out build/quick/amfe
    python -m fusion_core.papers.amfe.train --protocol reduced --seed 0 --threads 1 --max-minutes 50
    python -m fusion_core.papers.amfe.train --protocol paper --seed 0 --device cuda --max-minutes 9

Stage 1 trains the extractor and the decoder as an auto-encoder on single natural-image crops (Eq. 5, with the
discriminator unless the variant is ``nogan``); stage 2 loads them, freezes them and trains the attention on
registered IR/VIS crops (the spec's loss, :class:`~.loss.Stage2Loss`). Each stage is one run of the shared loop
(:func:`fusion_core.train.train`): seeded, resumable, with manifest and loss history. An "epoch" is
``crops_per_epoch`` random crops, so the loss history is per epoch of that many crops.

Data (substitutes, labelled everywhere): MS-COCO is not available, so stage 1 reads the natural-image corpus
``splits/stage1_train.txt`` (RoadScene's high-resolution visible frames and the RGB-NIR "country" visible
images, grey); stage 2 reads the RoadScene pairs of ``splits/train.txt`` (200 of 221, seeded; ``val.txt`` holds
the other 21, and their high-resolution frames are ``stage1_val.txt``, kept out of stage 1).

Protocols (:data:`PROTOCOLS`): ``paper`` — 256² crops, batch 16, Adam 1e-4, stage 1 10 epochs × 25,000 crops
(15,630 iterations), stage 2 20 epochs × 4,000 crops (5,000 iterations) (the spec's reading; the paper states
only crop, batch and learning rate); ``reduced`` — the CPU stand-in whose checkpoint the repository commits: 96²
crops, batch 8, Adam 1e-3, stage 1 20 epochs × 200 crops (500 iterations), stage 2 8 epochs × 200 crops (200
iterations), measured times in README; ``quick`` — seconds, proves the code path, its numbers mean nothing.
"""
from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ... import data
from ...train import (INCOMPLETE, cli_parser, TrainConfig, TrainedModel, manifest_protocol, progress_of, quietly,
                      seed_everything, train, trained_model)
from .loss import Stage1Loss, Stage2Loss, freeze_for_stage2
from .model import AMFE, PAPER, AMFEStage1, load_checkpoint

CHECKPOINT_DIR = data.REPO_ROOT / "checkpoints" / PAPER
QUICK_DIR = data.REPO_ROOT / "build" / "quick" / "checkpoints" / PAPER
SPLIT_SEED = 0
VAL_PAIRS = 21  # RoadScene pairs held out of both stages (spec §4: 200 train / 21 val)


@dataclass(frozen=True)
class Protocol:
    """One two-stage recipe (both stages share crop size, batch and learning rate)."""

    crop: int
    batch_size: int
    lr: float
    stage1_epochs: int
    stage1_crops: int  # random crops per stage-1 epoch
    stage2_epochs: int
    stage2_crops: int  # random crops per stage-2 epoch
    corpus_limit: int | None = None  # the first K images of stage1_train (None: all)
    pairs_limit: int | None = None  # the first K pairs of train (None: all)


PROTOCOLS = {
    "quick": Protocol(crop=64, batch_size=4, lr=1e-3, stage1_epochs=2, stage1_crops=16, stage2_epochs=2,
                      stage2_crops=16, corpus_limit=6, pairs_limit=4),
    # CPU stand-in (README "Status" gives its measured s/iteration and wall time): 96² crops, batch 8, Adam 1e-3
    # (the paper's 1e-4 barely moves in 900 iterations), stage 1 500 iterations, stage 2 200 iterations.
    "reduced": Protocol(crop=96, batch_size=8, lr=1e-3, stage1_epochs=20, stage1_crops=200, stage2_epochs=8,
                        stage2_crops=200),
    "paper": Protocol(crop=256, batch_size=16, lr=1e-4, stage1_epochs=10, stage1_crops=25_000, stage2_epochs=20,
                      stage2_crops=4_000),
}


@dataclass(frozen=True)
class Variant:
    """A model the tables compare: network switches and whether stage 1 has the discriminator."""

    network: dict = field(default_factory=dict)
    discriminator: bool = True


VARIANTS = {
    "base": Variant(),
    "nogan": Variant(discriminator=False),  # Figs. 5/6: λ = 0, no discriminator
    "woD": Variant(network={"extractor_connect": "plain"}),  # Table 2: one plain path, no dense dilated paths
    "woS": Variant(network={"skips": False}),  # Table 2: no skip connections
}  # Table 2's "w/o A" reuses base with the rule no_attention (no training)


# --------------------------------------------------------------------------- splits

def split_lists() -> dict[str, tuple[str, list[str]]]:
    """Every split of this paper as (header, entries), from the data sets and :data:`SPLIT_SEED` alone."""
    road = [p.stem for p in data.list_pairs("roadscene221")]
    order = np.random.default_rng(SPLIT_SEED).permutation(len(road))
    val = sorted((road[i] for i in order[:VAL_PAIRS]), key=data.natural_key)
    train_pairs = [s for s in road if s not in set(val)]
    nir = [p.stem for p in data.list_pairs("nir_country52")]
    rule = f"numpy.random.default_rng({SPLIT_SEED}).permutation(221) over roadscene221 stems in natural order"
    return {
        "train": (f"Stage-2 pairs: the 200 roadscene221 pairs not in val.txt ({rule}: positions 21-220).",
                  [f"roadscene221/{s}" for s in train_pairs]),
        "val": (f"Held-out RoadScene pairs ({rule}: the first {VAL_PAIRS}), sorted.",
                [f"roadscene221/{s}" for s in val]),
        "stage1_train": ("Stage-1 natural-image corpus (MS-COCO substitute): RoadScene high-resolution visible "
                         "frames of the train.txt pairs, then every nir_country52 visible image; grey (BT.601).",
                         [f"roadscene221/{s}/vis_hr" for s in train_pairs] + [f"nir_country52/{s}/vis" for s in nir]),
        "stage1_val": ("Stage-1 validation images: the high-resolution visible frames of the val.txt pairs.",
                       [f"roadscene221/{s}/vis_hr" for s in val]),
        "test_tno25": ("The paper's 25 TNO pairs [A, spec 004 §5.1]: MFEIF's public TNO_001..025 = tno37 001-025.",
                       [f"tno37/{i:03d}" for i in range(1, 26)]),
    }


def write_splits() -> list[Path]:
    """(Re)write ``splits/*.txt`` from :func:`split_lists` (their content is a function of the data)."""
    out = []
    for role, (header, entries) in split_lists().items():
        path = data.split_path(PAPER, role)
        lines = [f"# {header}", "# Written by fusion_core.papers.amfe.train.write_splits()."] + entries
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        out.append(path)
    return out


# --------------------------------------------------------------------------- data in memory

def _pad_to(image: torch.Tensor, crop: int) -> torch.Tensor:
    """Reflect-pad a C×H×W image at the bottom/right so both sides are ≥ ``crop`` (RoadScene has 161-px sides)."""
    h, w = image.shape[-2:]
    ph, pw = max(0, crop - h), max(0, crop - w)
    if ph or pw:
        image = F.pad(image[None].float(), (0, pw, 0, ph), mode="reflect")[0]
    return image


def _window(h: int, w: int, crop: int, generator: torch.Generator) -> tuple[int, int]:
    top = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
    return top, left


@dataclass
class ImageCrops:
    """Single grey images kept as uint8, served as seeded random ``crop``² windows; ``per_epoch`` crops an epoch,
    sample i from image i mod n."""

    images: list[torch.Tensor]  # 1×H×W uint8
    crop: int
    per_epoch: int
    names: list[str]

    @classmethod
    def from_specs(cls, specs: list[str], crop: int, per_epoch: int) -> "ImageCrops":
        images = [_pad_to(torch.from_numpy(data.natural_image(s))[None], crop).to(torch.uint8) for s in specs]
        return cls(images, crop, per_epoch, list(specs))

    def __len__(self) -> int:
        return self.per_epoch

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor]:
        crops = []
        for i in indices.tolist():
            image = self.images[i % len(self.images)]
            top, left = _window(*image.shape[-2:], self.crop, generator)
            crops.append(image[:, top:top + self.crop, left:left + self.crop].float() / 255.0)
        return (torch.stack(crops),)

    def describe(self) -> dict:
        return {"images": len(self.images), "crop": self.crop, "crops_per_epoch": self.per_epoch,
                "names_sha256": hashlib.sha256("\n".join(self.names).encode()).hexdigest(),
                "first": self.names[:1], "last": self.names[-1:],
                "substitute": "natural-image corpus instead of MS-COCO (not available)"}


@dataclass
class PairCrops:
    """Registered IR/VIS-Y pairs, reflect-padded to ``crop``, served as seeded random windows, flipped
    horizontally with probability ½; ``per_epoch`` crops an epoch."""

    ir: list[torch.Tensor]  # 1×H×W float
    vis: list[torch.Tensor]
    crop: int
    per_epoch: int
    names: list[str]

    @classmethod
    def from_pairs(cls, pairs: list[data.Pair], crop: int, per_epoch: int) -> "PairCrops":
        irs, viss = [], []
        for pair in pairs:
            images = data.load_pair(pair)
            irs.append(_pad_to(images.ir[0], crop))
            viss.append(_pad_to(images.vis[0], crop))
        return cls(irs, viss, crop, per_epoch, [p.name for p in pairs])

    def __len__(self) -> int:
        return self.per_epoch

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        irs, viss = [], []
        for i in indices.tolist():
            k = i % len(self.ir)
            top, left = _window(*self.ir[k].shape[-2:], self.crop, generator)
            ir = self.ir[k][:, top:top + self.crop, left:left + self.crop]
            vis = self.vis[k][:, top:top + self.crop, left:left + self.crop]
            if bool(torch.rand(1, generator=generator) < 0.5):
                ir, vis = ir.flip(-1), vis.flip(-1)
            irs.append(ir)
            viss.append(vis)
        return torch.stack(irs), torch.stack(viss)

    def describe(self) -> dict:
        return {"pairs": len(self.ir), "crop": self.crop, "crops_per_epoch": self.per_epoch,
                "names_sha256": hashlib.sha256("\n".join(self.names).encode()).hexdigest(),
                "first": self.names[:1], "last": self.names[-1:]}


# --------------------------------------------------------------------------- training

def checkpoint_name(protocol: str, variant: str, seed: int, stage: int = 2) -> str:
    """``amfe_<protocol>[_<variant>][_stage1]_seed<S>``: stage 2 is the fusion model, stage 1 its auto-encoder."""
    middle = "" if variant == "base" else f"_{variant}"
    return f"{PAPER}_{protocol}{middle}{'_stage1' if stage == 1 else ''}_seed{seed}"


def _config(recipe: Protocol, epochs: int, seed: int, device: str, protocol: str) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed, device=device,
                       protocol=protocol)


def train_stage1(protocol: str, seed: int, out: Path, variant: str, device: str, progress: bool,
                 max_seconds: float | None) -> tuple[Path, pd.DataFrame]:
    recipe, spec = PROTOCOLS[protocol], VARIANTS[variant]
    specs = data.load_image_list(PAPER, "stage1_train")[:recipe.corpus_limit]
    seed_everything(seed)
    model = AMFEStage1(discriminator=spec.discriminator, **spec.network)
    loss = Stage1Loss(lam=0.1 if spec.discriminator else 0.0)
    checkpoint = out / f"{checkpoint_name(protocol, variant, seed, stage=1)}.pt"
    history = train(model, loss, ImageCrops.from_specs(specs, recipe.crop, recipe.stage1_crops),
                    _config(recipe, recipe.stage1_epochs, seed, device, protocol), checkpoint=checkpoint,
                    progress=progress, max_seconds=max_seconds)
    return checkpoint, history


def train_stage2(protocol: str, seed: int, out: Path, variant: str, device: str, progress: bool,
                 max_seconds: float | None, stage1: Path) -> tuple[Path, pd.DataFrame]:
    recipe = PROTOCOLS[protocol]
    pairs = data.load_split(PAPER, "train")[:recipe.pairs_limit]
    seed_everything(seed)
    model = AMFE(**VARIANTS[variant].network)  # the attention starts from this seeded initialisation
    trained = load_checkpoint(stage1)  # stage 1's extractor and decoder (its attention was never trained)
    model.extractor.load_state_dict(trained.extractor.state_dict())
    model.decoder.load_state_dict(trained.decoder.state_dict())
    freeze_for_stage2(model)
    checkpoint = out / f"{checkpoint_name(protocol, variant, seed)}.pt"
    history = train(model, Stage2Loss(), PairCrops.from_pairs(pairs, recipe.crop, recipe.stage2_crops),
                    _config(recipe, recipe.stage2_epochs, seed, device, protocol), checkpoint=checkpoint,
                    progress=progress, max_seconds=max_seconds)
    return checkpoint, history


def train_model(protocol: str = "quick", seed: int = 0, out: str | Path = CHECKPOINT_DIR, variant: str = "base",
                device: str = "cpu", progress: bool = True, max_minutes: float | None = None,
                stage1_only: bool = False) -> tuple[Path, pd.DataFrame]:
    """Both stages (or what fits in ``max_minutes``; rerun to resume; ``stage1_only``: the auto-encoder alone, e.g.
    the ``nogan`` run of Fig. 5). Returns the last checkpoint written (the stage-2 fusion model when done) and the
    per-epoch history of both stages (column ``stage``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol '{protocol}' is not one of {sorted(PROTOCOLS)}")
    if variant not in VARIANTS:
        raise ValueError(f"variant '{variant}' is not one of {sorted(VARIANTS)}")
    out = Path(out)
    started = time.perf_counter()
    budget = None if max_minutes is None else 60.0 * max_minutes
    stage1, first = train_stage1(protocol, seed, out, variant, device, progress, budget)
    done, total = progress_of(stage1) or (0, 1)
    if done < total or stage1_only:
        return stage1, first.assign(stage=1)
    left = None if budget is None else max(1.0, budget - (time.perf_counter() - started))
    stage2, second = train_stage2(protocol, seed, out, variant, device, progress, left, stage1)
    return stage2, pd.concat([first.assign(stage=1), second.assign(stage=2)], ignore_index=True)


# --------------------------------------------------------------------------- the models of a notebook profile

_NAME = re.compile(rf"^{PAPER}_(?P<protocol>[a-z]+)(?:_(?P<variant>[A-Za-z]+))?_seed(?P<seed>\d+)\.pt$")


def discover(checkpoint_dir: str | Path, protocol: str) -> list[TrainedModel]:
    """Complete stage-2 (fusion) models of ``protocol`` in ``checkpoint_dir`` (manifest epochs_done == epochs and
    naming the protocol), base first, then by variant and seed."""
    found = []
    for path in sorted(Path(checkpoint_dir).glob(f"{PAPER}_{protocol}_*seed*.pt")):
        match = _NAME.match(path.name)
        if not match or match["protocol"] != protocol or (match["variant"] or "base") not in VARIANTS:
            continue
        progress = progress_of(path)
        if progress is None or progress[0] != progress[1] or manifest_protocol(path) != protocol:
            continue
        found.append(trained_model(path, PAPER, match["variant"] or "base", int(match["seed"]), protocol))
    order = list(VARIANTS)
    return sorted(found, key=lambda m: (order.index(m.variant), m.seed))


def ensure_models(profile: str, protocol: str | None = None, device: str = "cpu", progress: bool = False,
                  variants: Sequence[str] = ("base",)) -> list[TrainedModel]:
    """The AMFE models a notebook ``profile`` shows. quick: trains ``variants`` with the quick protocol (seed 0)
    under build/quick/; eval: the committed complete checkpoints of ``protocol`` (default ``reduced``; every
    variant found, possibly none); full: trains (or resumes) seed 0 of ``variants`` with ``protocol`` (default
    ``paper``) into checkpoints/amfe/."""
    if profile not in ("quick", "eval", "full"):
        raise ValueError(f"unknown profile '{profile}' (quick, eval, full)")
    if profile == "eval":
        return discover(CHECKPOINT_DIR, protocol or "reduced")
    protocol, folder = ("quick", QUICK_DIR) if profile == "quick" else (protocol or "paper", CHECKPOINT_DIR)
    have = {m.variant for m in discover(folder, protocol) if m.seed == 0}
    for variant in variants:
        if variant not in have:
            with quietly(progress):
                train_model(protocol, 0, folder, variant, device=device, progress=progress)
    return discover(folder, protocol)


def main(argv=None) -> int:
    parser = cli_parser(PAPER, __doc__, PROTOCOLS, VARIANTS, CHECKPOINT_DIR)
    parser.add_argument("--stage1-only", action="store_true", help="train the stage-1 auto-encoder only (Fig. 5)")
    parser.add_argument("--write-splits", action="store_true", help="rewrite splits/*.txt and exit")
    args = parser.parse_args(argv)
    if args.write_splits:
        for path in write_splits():
            print(path)
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint, _ = train_model(args.protocol, args.seed, args.out, args.variant, args.device, not args.no_progress,
                                max_minutes=args.max_minutes, stage1_only=args.stage1_only)
    done, total = progress_of(checkpoint)
    stage2 = checkpoint.name == f"{checkpoint_name(args.protocol, args.variant, args.seed)}.pt"
    print(f"{checkpoint}: {done}/{total} epochs ({'stage 2' if stage2 else 'stage 1'})")
    return 0 if done == total and (stage2 or args.stage1_only) else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
