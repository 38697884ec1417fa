"""Train Res2NetFuse's reconstruction auto-encoder (spec 002 §4) — plain CLI, no notebook server needed.

    python -m fusion_core.papers.res2netfuse.train --model single --seed 0            # Res2NetFuse_1, paper protocol
    python -m fusion_core.papers.res2netfuse.train --model many --seed 0              # R2N_many (80k-COCO substitute)
    python -m fusion_core.papers.res2netfuse.train --model single --profile quick --out build/quick/r2n

``single``: ONE natural 256×256 grey image (nearest resize, [0, 255]) for 2000 iterations, batch 1, Adam 5e-4
(MS-COCO's image is unavailable: ``skimage:camera`` substitutes). Each "epoch" of the shared loop is one
iteration, so the loss history is per iteration (Fig. 6).
``many``: every image of the substitute corpus resized to 256×256 (bilinear), batch 4, 4 epochs, Adam 1e-4,
reshuffled each epoch, remainder dropped. Runs resume from their checkpoint.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ... import data
from .loss import Res2NetFuseLoss
from .model import Res2NetFuse
from ...train import INCOMPLETE, TrainConfig, progress_of, seed_everything, train

CHECKPOINT_DIR = data.REPO_ROOT / "checkpoints" / "res2netfuse"
# 80k MS-COCO substitute (spec 002 §9): FLIR-Train both sides, NIR-country visible, skimage photos.
MANY_SETS = (("flir_train180", "ir"), ("flir_train180", "vis"), ("nir_country52", "vis"))
MANY_SKIMAGE = ("camera", "astronaut", "coffee", "chelsea", "rocket", "cat", "moon", "brick", "grass", "gravel",
                "immunohistochemistry", "hubble_deep_field", "coins", "clock")

PROFILES = {
    # name: (single iterations, many epochs, image size)
    "full": (2000, 4, 256),
    "quick": (20, 1, 64),
}


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


def train_model(model_kind: str, seed: int, out_dir: Path, profile: str = "full", device: str = "cpu",
                train_image: str | None = None, progress: bool = True, max_seconds: float | None = None):
    """Train one Res2NetFuse model; returns (checkpoint path, history DataFrame).

    ``max_seconds`` bounds the training part of this call (see :func:`fusion_core.train.train`); a
    stopped run resumes when called again.
    """
    iterations, epochs, size = PROFILES[profile]
    seed_everything(seed)
    model = Res2NetFuse()
    if model_kind == "single":
        dataset = single_image_set(train_image, size)
        config = TrainConfig(epochs=iterations, batch_size=1, lr=5e-4, seed=seed, shuffle=False, device=device,
                             profile=profile, save_every=50)
        name = f"r2n_1_seed{seed}"
    elif model_kind == "many":
        dataset = many_image_set(size, limit=8 if profile == "quick" else None)
        config = TrainConfig(epochs=epochs, batch_size=4, lr=1e-4, seed=seed, shuffle=True, drop_last=True,
                             device=device, profile=profile)
        name = f"r2n_many_seed{seed}"
    else:
        raise ValueError(f"model '{model_kind}' is not 'single' or 'many'")
    checkpoint = Path(out_dir) / f"{name}.pt"
    history = train(model, Res2NetFuseLoss("code", "msssim_code"), dataset, config, checkpoint=checkpoint,
                    log=None, progress=progress, max_seconds=max_seconds)
    return checkpoint, history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fusion_core.papers.res2netfuse.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["single", "many"], required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--out", type=Path, default=CHECKPOINT_DIR)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--train-image", default=None, help="default: fusion_core/papers/res2netfuse/splits/train_single_image.txt")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--max-minutes", type=float, help="stop after the last epoch that fits in this many "
                        f"minutes (checkpoint saved, exit code {INCOMPLETE}); rerun the same command to resume")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint, history = train_model(args.model, args.seed, args.out, args.profile, args.device, args.train_image,
                                      progress=not args.no_progress,
                                      max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    done, epochs = progress_of(checkpoint)
    print(f"{checkpoint}: {done}/{epochs} epochs, final total loss {history['total'].iloc[-1]:.5f}")
    return 0 if done >= epochs else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
