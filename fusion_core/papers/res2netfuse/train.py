"""Train Res2NetFuse's reconstruction auto-encoder (spec 002 §4) — plain CLI, no notebook server needed.

    python -m fusion_core.papers.res2netfuse.train --variant single --seed 0            # Res2NetFuse_1, paper protocol
    python -m fusion_core.papers.res2netfuse.train --variant many --seed 0              # R2N_many (80k-COCO substitute)
    python -m fusion_core.papers.res2netfuse.train --variant single --protocol quick --out build/quick/r2n

Variants (:data:`VARIANTS`) are the paper's two models. ``single`` (row Res2NetFuse_1): ONE natural 256×256 grey
image (nearest resize, [0, 255]) for 2000 iterations, batch 1, Adam 5e-4 (MS-COCO's image is unavailable:
``skimage:camera`` substitutes). Each "epoch" of the shared loop is one iteration, so the loss history is per
iteration (Fig. 6). ``many`` (row Res2NetFuse_80000): every image of the substitute corpus resized to 256×256
(bilinear), batch 4, 4 epochs, Adam 1e-4, reshuffled each epoch, remainder dropped.

Protocols (:data:`PROTOCOLS`): ``paper`` as above; ``quick`` 20 iterations / 1 epoch on 64² images, ``many``
on the first 8 corpus images (seconds; its numbers mean nothing). Output ``<out>/r2n_1_seed<S>.pt`` (single) or
``<out>/r2n_many_seed<S>.pt`` plus manifest and history (see :mod:`fusion_core.train`); runs resume from their
checkpoint. ``--model`` (old name of ``--variant``), ``--profile`` (of ``--protocol``) and the protocol's old
name ``full`` are still accepted.
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from PIL import Image

from ... import data
from .loss import Res2NetFuseLoss
from .model import Res2NetFuse
from ...train import (INCOMPLETE, TrainConfig, TrainedModel, manifest_protocol, progress_of, seed_everything,
                      train, trained_model)
from ...train import first_seeds as _first_seeds

PAPER = "res2netfuse"
CHECKPOINT_DIR = data.REPO_ROOT / "checkpoints" / PAPER
QUICK_DIR = data.REPO_ROOT / "build" / "quick" / "checkpoints" / PAPER
# 80k MS-COCO substitute (spec 002 §9): FLIR-Train both sides, NIR-country visible, skimage photos.
MANY_SETS = (("flir_train180", "ir"), ("flir_train180", "vis"), ("nir_country52", "vis"))
MANY_SKIMAGE = ("camera", "astronaut", "coffee", "chelsea", "rocket", "cat", "moon", "brick", "grass", "gravel",
                "immunohistochemistry", "hubble_deep_field", "coins", "clock")


@dataclass(frozen=True)
class Protocol:
    """One training recipe for both variants (the optimiser settings are the variants' own, see the module doc)."""

    iterations: int  # single: iterations on the one image
    epochs: int  # many: passes over the corpus
    size: int  # training images resized to size × size
    many_images: int | None  # many: the first K corpus images (None: all 426)


PROTOCOLS = {
    "paper": Protocol(iterations=2000, epochs=4, size=256, many_images=None),
    "quick": Protocol(iterations=20, epochs=1, size=64, many_images=8),  # seconds on a CPU; numbers mean nothing
}
PROTOCOL_ALIASES = {"full": "paper"}  # the paper protocol's old name (the committed manifests say "full")
VARIANTS = ("single", "many")
_PREFIX = {"single": "r2n_1", "many": "r2n_many"}  # file names of the committed checkpoints


def protocol_name(protocol: str) -> str:
    """``protocol`` with the old name ``full`` read as ``paper``; a ValueError names an unknown one."""
    protocol = PROTOCOL_ALIASES.get(protocol, protocol)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown Res2NetFuse protocol '{protocol}' ({', '.join(PROTOCOLS)})")
    return protocol


def checkpoint_name(protocol: str, variant: str, seed: int) -> str:
    """File name ``r2n_1_seed<S>.pt`` (single) or ``r2n_many_seed<S>.pt``: the protocol is the folder's, not the name's."""
    protocol_name(protocol)
    if variant not in _PREFIX:
        raise ValueError(f"unknown Res2NetFuse variant '{variant}' ({', '.join(VARIANTS)})")
    return f"{_PREFIX[variant]}_seed{seed}.pt"


@dataclass
class ImageStack:
    """Grey training images held in memory as one N×1×H×W tensor (intensities in [0, 255])."""

    images: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def take(self, indices: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor]:
        return (self.images[indices],)

    def describe(self) -> dict:
        return {"images": len(self), "size": list(self.images.shape[-2:]), "first": self.names[:3],
                "last": self.names[-1:]}


def resize(grey: np.ndarray, size: int, interpolation: str) -> np.ndarray:
    if interpolation == "nearest":  # scipy.misc.imresize(interp='nearest') = PIL NEAREST
        return np.asarray(Image.fromarray(grey).resize((size, size), Image.NEAREST))
    return cv2.resize(grey, (size, size), interpolation=cv2.INTER_LINEAR)


def single_image_set(spec: str | None = None, size: int = 256) -> ImageStack:
    spec = spec or data.load_image_list("res2netfuse", "train_single_image")[0]
    grey = resize(data.natural_image(spec), size, "nearest").astype(np.float32)
    return ImageStack(torch.from_numpy(grey)[None, None], [spec])


def many_image_specs() -> list[str]:
    """The corpus as generated (written once to fusion_core/papers/res2netfuse/splits/train_many_images.txt)."""
    specs = [f"{name}/{p.stem}/{side}" for name, side in MANY_SETS for p in data.list_pairs(name)]
    return specs + [f"skimage:{name}" for name in MANY_SKIMAGE]


def many_image_set(size: int = 256, limit: int | None = None) -> ImageStack:
    specs = data.load_image_list("res2netfuse", "train_many_images")[:limit]
    stack = np.stack([resize(data.natural_image(s), size, "bilinear") for s in specs]).astype(np.float32)
    return ImageStack(torch.from_numpy(stack)[:, None], specs)


def train_model(protocol: str = "quick", seed: int = 0, out: str | Path = CHECKPOINT_DIR, variant: str = "single",
                device: str = "cpu", progress: bool = True, max_minutes: float | None = None, *,
                train_image: str | None = None) -> tuple[Path, pd.DataFrame]:
    """Train (or resume) one Res2NetFuse model of ``variant``; returns (checkpoint path, history DataFrame).

    ``max_minutes`` bounds the training part of this call (see :func:`fusion_core.train.train`); a
    stopped run resumes when called again. ``train_image`` replaces single's image (default:
    splits/train_single_image.txt).
    """
    protocol = protocol_name(protocol)
    recipe = PROTOCOLS[protocol]
    checkpoint = Path(out) / checkpoint_name(protocol, variant, seed)
    seed_everything(seed)
    model = Res2NetFuse()
    if variant == "single":
        dataset = single_image_set(train_image, recipe.size)
        config = TrainConfig(epochs=recipe.iterations, batch_size=1, lr=5e-4, seed=seed, shuffle=False, device=device,
                             protocol=protocol, save_every=50)
    else:
        dataset = many_image_set(recipe.size, limit=recipe.many_images)
        config = TrainConfig(epochs=recipe.epochs, batch_size=4, lr=1e-4, seed=seed, shuffle=True, drop_last=True,
                             device=device, protocol=protocol)
    history = train(model, Res2NetFuseLoss("code", "msssim_code"), dataset, config, checkpoint=checkpoint,
                    log=None, progress=progress, max_seconds=None if max_minutes is None else 60.0 * max_minutes)
    return checkpoint, history


# --------------------------------------------------------------------------- the models of a notebook profile

@dataclass(frozen=True)
class Plan:
    """What a notebook profile trains: the protocol, where its checkpoints live, the seeds of each variant."""

    protocol: str
    checkpoint_dir: Path
    seeds: dict[str, tuple[int, ...]]


SEEDS = {"single": (0, 1, 2), "many": (0,)}  # the committed trainings (many: 66 CPU minutes each)


def plan(profile: str, protocol: str | None = None) -> Plan:
    """The models a notebook ``profile`` evaluates: quick trains its own under build/quick/; eval and full use
    ``checkpoints/res2netfuse/`` (full trains what is missing, eval requires the committed files)."""
    if profile == "quick":
        return Plan("quick", QUICK_DIR, SEEDS)
    if profile not in ("eval", "full"):
        raise ValueError(f"unknown profile '{profile}' (quick, eval, full)")
    protocol = protocol_name(protocol or "paper")
    if protocol != "paper":
        raise ValueError(f"profile '{profile}' evaluates the paper protocol, not '{protocol}'")
    return Plan("paper", CHECKPOINT_DIR, SEEDS)


_NAME = re.compile(r"^r2n_(?P<prefix>1|many)_seed(?P<seed>\d+)\.pt$")


def discover(checkpoint_dir: str | Path, protocol: str = "paper") -> list[TrainedModel]:
    """Complete models of ``protocol`` in ``checkpoint_dir`` (manifest ``epochs_done == epochs`` and its
    ``protocol``, or the older ``profile``, naming it), ordered by variant then seed."""
    protocol = protocol_name(protocol)
    found = []
    for path in sorted(Path(checkpoint_dir).glob("r2n_*_seed*.pt")):
        match = _NAME.match(path.name)
        progress = progress_of(path)
        if not match or progress is None or progress[0] != progress[1]:
            continue
        trained = manifest_protocol(path)
        if trained is None or PROTOCOL_ALIASES.get(trained, trained) != protocol:
            continue
        variant = "single" if match["prefix"] == "1" else "many"
        found.append(trained_model(path, PAPER, variant, int(match["seed"]), protocol))
    return sorted(found, key=lambda m: (VARIANTS.index(m.variant), m.seed))


def first_seeds(models: Sequence[TrainedModel], repeats: int | None) -> list[TrainedModel]:
    """The first ``repeats`` trainings (lowest seeds) of each variant; all of them when ``repeats`` is None."""
    return _first_seeds(models, repeats, VARIANTS)


def ensure_models(profile: str, variants: Sequence[str] = VARIANTS, repeats: int | None = None,
                  protocol: str | None = None, progress: bool = False, device: str | None = None) -> list[TrainedModel]:
    """The complete models ``profile`` uses (seeds 0…repeats−1 of :data:`SEEDS` per variant).

    eval: the committed checkpoints, a FileNotFoundError names a missing one; quick and full: the missing
    ones are trained (or resumed) in this process on ``device`` (default cpu), one after another.
    """
    config = plan(profile, protocol)
    wanted = [(v, seed) for v in variants for seed in config.seeds[v][:repeats]]
    have = {(m.variant, m.seed) for m in discover(config.checkpoint_dir, config.protocol)}
    for variant, seed in wanted:
        if (variant, seed) in have:
            continue
        if profile == "eval":
            raise FileNotFoundError(f"{config.checkpoint_dir / checkpoint_name(config.protocol, variant, seed)}: no "
                                    f"complete committed checkpoint for {variant} seed {seed}; run the notebook "
                                    "with profile='full' to train it")
        train_model(config.protocol, seed, config.checkpoint_dir, variant, device or "cpu", progress)
    return [m for m in discover(config.checkpoint_dir, config.protocol) if (m.variant, m.seed) in wanted]


# --------------------------------------------------------------------------- command line

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_core.papers.res2netfuse.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, help="single: Res2NetFuse_1; many: the Res2NetFuse_80000 row")
    parser.add_argument("--model", dest="variant", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0)
    protocols = [*PROTOCOLS, *PROTOCOL_ALIASES]
    parser.add_argument("--protocol", choices=protocols, default="paper", metavar="{" + ",".join(PROTOCOLS) + "}")
    parser.add_argument("--profile", dest="protocol", choices=protocols, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train-image", default=None, help="default: fusion_core/papers/res2netfuse/splits/train_single_image.txt")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--max-minutes", type=float, help="stop after the last epoch that fits in this many "
                        f"minutes (checkpoint saved, exit code {INCOMPLETE}); rerun the same command to resume")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.variant is None:
        parser.error(f"--variant is required ({', '.join(VARIANTS)})")
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint, history = train_model(args.protocol, args.seed, args.out, args.variant, args.device,
                                      not args.no_progress, args.max_minutes, train_image=args.train_image)
    done, epochs = progress_of(checkpoint)
    print(f"{checkpoint}: {done}/{epochs} epochs, final total loss {history['total'].iloc[-1]:.5f}")
    return 0 if done >= epochs else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
