"""TEMPLATE training protocols and CLI: replace with the paper's recipe (spec <NNN> §<training>).

    python -m fusion_core.papers.<name>.train --protocol quick --out build/quick/<name>
    python -m fusion_core.papers.<name>.train --protocol paper --seed 0 --device cuda --max-minutes 9

A protocol is one training recipe, data included, written as one :class:`Protocol`; ``quick`` (seconds on a CPU,
proves the code path, its numbers mean nothing) is required: the conformance test trains it. Name the others
after what they are (``paper``; a shortened CPU substitute ``reduced``) and say in the docstring how they differ
from the paper. The loop itself is :func:`fusion_core.train.train` (seed, resume, AMP, time budget, manifest).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch

from ... import data
from ...train import INCOMPLETE, CropPairs, TrainConfig, progress_of, seed_everything, train
from .loss import TemplateLoss
from .model import PAPER, TemplateNet

CHECKPOINT_DIR = data.REPO_ROOT / "checkpoints" / PAPER


@dataclass(frozen=True)
class Protocol:
    """One training recipe: crops of the ``train`` split, Adam, a fixed number of epochs."""

    epochs: int
    crop: int
    batch_size: int
    lr: float
    max_pairs: int | None = None  # the first K pairs of the split (None: all)


PROTOCOLS = {
    "quick": Protocol(epochs=2, crop=64, batch_size=2, lr=1e-3, max_pairs=4),
    "paper": Protocol(epochs=100, crop=128, batch_size=16, lr=1e-4),  # replace with the paper's numbers
}
VARIANTS = ("base",)  # the un-ablated model first; ablations as "exp1", ... (see papers/didfuse/train.py)


def checkpoint_name(protocol: str, variant: str, seed: int) -> str:
    """Checkpoint file stem: ``<paper>_<protocol>[_<variant>]_seed<S>`` (the base variant unnamed)."""
    return f"{PAPER}_{protocol}{'' if variant == 'base' else '_' + variant}_seed{seed}"


def train_model(protocol: str = "quick", seed: int = 0, out: str | Path = CHECKPOINT_DIR, variant: str = "base",
                device: str = "cpu", progress: bool = True, max_minutes: float | None = None
                ) -> tuple[Path, pd.DataFrame]:
    """Train (or resume) one model; returns its checkpoint and the per-epoch loss history."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol '{protocol}' is not one of {sorted(PROTOCOLS)}")
    if variant not in VARIANTS:
        raise ValueError(f"variant '{variant}' is not one of {VARIANTS}")
    recipe = PROTOCOLS[protocol]
    pairs = data.load_split(PAPER, "train")[:recipe.max_pairs]
    seed_everything(seed)
    config = TrainConfig(epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, seed=seed,
                         device=device, protocol=protocol)
    checkpoint = Path(out) / f"{checkpoint_name(protocol, variant, seed)}.pt"
    history = train(TemplateNet(), TemplateLoss(), CropPairs.from_pairs(pairs, recipe.crop), config,
                    checkpoint=checkpoint, progress=progress,
                    max_seconds=None if max_minutes is None else 60.0 * max_minutes)
    return checkpoint, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m fusion_core.papers.{PAPER}.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="quick")
    parser.add_argument("--variant", choices=VARIANTS, default="base")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 for a job sharing the CPU)")
    parser.add_argument("--max-minutes", type=float, help="stop after the last epoch that fits; rerun to resume")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint, _ = train_model(args.protocol, args.seed, args.out, args.variant, args.device,
                                max_minutes=args.max_minutes)
    done, total = progress_of(checkpoint)  # train() has just written the manifest
    print(f"{checkpoint}: {done}/{total} epochs")
    return 0 if done == total else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
