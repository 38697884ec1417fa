"""DIDFuse's sources of fused images for the raw-results engine (:mod:`fusion_core.engine`).

* a trained model (``base_seed0``, ``exp3_seed1``): encodes each pair once and decodes it with every rule;
* ``released``: the authors' IJCAI weights (FLIR-only training, the code's loss; not the paper's final model);
* ``released_images``: the authors' released fused images ``<SET>_IJCAI/F<n>.png`` (n ↔ pair NN);
* a classical baseline (``tif``).

Every row carries ``variant`` and ``seed`` (``seed = -1`` and ``variant = key`` for the non-trained ones), as
the committed raw files under ``results/didfuse/raw*/`` do.
"""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch

from ... import data, engine
from ...io import sha256_file
from .model import RELEASED_FILES, TABLE3_RULES, DIDFuse, load_checkpoint, load_released

PAPER = "didfuse"
MODEL_RULES = (*TABLE3_RULES, "sum")  # Table III's six and the authors' code rule
RELEASED_IMAGE_FOLDERS = {"test_tno": "TNO_IJCAI", "test_flir": "FLIR_IJCAI", "test_nir": "NIR_IJCAI"}


def raw_dir(protocol: str) -> str:
    """The folder of a protocol's raw files: ``raw/`` (reduced, quick and the references), ``raw_<protocol>/``."""
    return "raw" if protocol in ("reduced", "quick") else f"raw_{protocol}"


def network_source(key: str, checksum: str, load: Callable[[], DIDFuse], labels: dict, device: str = "cpu",
                   protocol: str = "reduced") -> engine.Source:
    """A DIDFuse network (loaded on first use, eval mode, on ``device``) as a source with :data:`MODEL_RULES`."""
    loaded: list[DIDFuse] = []

    def fuse(images: data.PairImages, rules: Sequence[str | None]) -> dict:
        if not loaded:
            loaded.append(load().to(device).eval())
        with torch.inference_mode():
            fused = loaded[0].fuse_rules(images.ir.to(device), images.vis.to(device), rules)
        return {rule: image.float().cpu() for rule, image in fused.items()}

    return engine.Source(key, PAPER, checksum, fuse, MODEL_RULES, labels, raw_dir(protocol))


def model_source(model, device: str = "cpu") -> engine.Source:
    """A trained model (:class:`fusion_core.train.TrainedModel`: path, variant, seed, protocol, checksum, key)."""
    return network_source(model.key, model.checksum, lambda: load_checkpoint(model.path),
                          {"variant": model.variant, "seed": model.seed}, device, model.protocol)


def reference_dir() -> Path:
    """``<data root>/../reference/didfuse_released`` (the authors' weights and fused images)."""
    return data.data_root().parent / "reference" / "didfuse_released"


def released_source(device: str = "cpu") -> engine.Source:
    """The authors' IJCAI weights; checksum = sha256 of the sha256 of :data:`RELEASED_FILES`, in that order."""
    folder = reference_dir() / "weights"
    digest = hashlib.sha256()
    for name in RELEASED_FILES:
        path = folder / name
        if not path.is_file():
            raise data.DataError(f"{path}: released DIDFuse weights not found")
        digest.update(sha256_file(path).encode())
    return network_source("released", digest.hexdigest()[:16], lambda: load_released(folder),
                          {"variant": "released", "seed": -1}, device)


def released_images_source() -> engine.Source:
    """The authors' released fused images (test sets only), cropped like the pair they belong to."""
    by_dataset = {data.load_split(PAPER, role)[0].dataset: folder for role, folder in RELEASED_IMAGE_FOLDERS.items()}

    def fuse(images: data.PairImages, rules) -> dict:
        folder = by_dataset.get(images.pair.dataset)
        if folder is None:
            raise data.DataError(f"{images.pair.name}: the authors released no fused image for data set "
                                 f"'{images.pair.dataset}'")
        fused = data.read_grey(reference_dir() / folder / f"F{int(images.pair.stem)}.png")
        h, w = images.ir.shape[-2:]
        return {None: fused[..., :h, :w]}

    return engine.Source("released_images", "images", "files", fuse, None,
                         {"variant": "released_images", "seed": -1})


def baseline_source(method: str, device: str = "cpu") -> engine.Source:
    """A classical method of :mod:`fusion_core.classical` (no weights: the checksum is the method name)."""
    return dataclasses.replace(engine.method_source(method, device=device), labels={"variant": method, "seed": -1})


# Table V's Nestfuse column: MSFAM's NestFuse (trained by us with MSFAM's reduced CPU protocol and substitute data;
# its float16 checkpoint is committed), fused with its own rule.
NESTFUSE_KEY, NESTFUSE_RULE = "nestfuse_seed0", "nestfuse_avg"


def nestfuse_source(device: str = "cpu") -> engine.Source | None:
    """MSFAM's NestFuse (``checkpoints/msfam/nestfuse_reduced_seed0.pt``) as a source (MSFAM's
    :func:`~fusion_core.papers.msfam.experiment.variant_source`), or None where the checkout lacks it."""
    from ..msfam import experiment as msfam
    from ..msfam import train as msfam_train

    models = [m for m in msfam_train.discover(msfam_train.CHECKPOINT_DIR, "reduced", ["nestfuse"]) if m.seed == 0]
    return msfam.variant_source(models[0], device) if models else None
