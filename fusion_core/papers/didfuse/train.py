"""Train DIDFuse from the command line (no notebook server needed).

    python -m fusion_core.papers.didfuse.train --profile quick --seed 0 --out build/didfuse
    python -m fusion_core.papers.didfuse.train --profile full --seed 3 --out checkpoints/didfuse --device cuda
    python -m fusion_core.papers.didfuse.train --write-splits          # (re)write fusion_core/papers/didfuse/splits/*.txt

Profiles (explicit options override them):

=========  ======  =====  ====  ======  ==========  ==============================================
profile    epochs  batch  crop  pairs   lr steps    what it is
=========  ======  =====  ====  ======  ==========  ==============================================
full       120     24     128   180     40, 80      the paper's protocol on the FLIR-Train-180 split
                                                    (NIR-Mountain/Water unavailable: spec §9.1)
reduced    120     24     64    180     40, 80      CPU budget run: 64×64 centre crops (¼ compute);
                                                    a labelled substitute, not the paper protocol
quick      2       4      32    8       1, 2        seconds on a CPU, for tests and smoke runs
=========  ======  =====  ====  ======  ==========  ==============================================

Learning-rate steps sit at ⅓ and ⅔ of the epochs (÷10 each; "decrease by 10 times every 40 epochs"
of 120), so ``--epochs`` keeps the schedule's shape. Output: ``<out>/didfuse_<profile>[_<ablation>]_seed<S>.pt``
plus its ``.json`` manifest and ``_history.csv`` (see :mod:`fusion_core.train`); an existing
checkpoint of the same run is resumed.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from ... import data
from .loss import DIDFUSE_PRESETS, DIDFuseLoss
from .model import DIDFuse
from ...train import INCOMPLETE, CropPairs, TrainConfig, progress_of, seed_everything, train

PAPER = "didfuse"


@dataclass(frozen=True)
class Profile:
    epochs: int
    batch_size: int
    crop: int
    max_pairs: int | None
    description: str


PROFILES = {
    "full": Profile(120, 24, 128, None, "paper protocol: Adam 1e-3 ÷10 at epochs 40/80, batch 24, 128² centre crops, "
                                        "flir_train180 (NIR-Mountain/Water unavailable)"),
    "reduced": Profile(120, 24, 64, None, "CPU substitute: paper protocol with 64² centre crops instead of 128²"),
    "quick": Profile(2, 4, 32, 8, "smoke run: 2 epochs, 8 pairs, 32² crops, batch 4"),
}


@dataclass(frozen=True)
class Ablation:
    """One Table IV experiment: the network switches and the loss switches it trains with (spec §7)."""

    model: dict
    loss: dict
    description: str


ABLATIONS = {
    "exp1": Ablation(dict(base=False), dict(base_term=False),
                     "Exp. 1, no base-scale module: conv3 removed, decoder gets D only; loss Eq. 26"),
    "exp2": Ablation(dict(detail=False), dict(detail_term=False),
                     "Exp. 2, no detail-scale module: conv4 removed, decoder gets B only; loss Eq. 27"),
    "exp3": Ablation(dict(), dict(base_term=False, detail_term=False),
                     "Exp. 3, no two-scale decomposition loss: full network; loss Eq. 28"),
    "exp4": Ablation(dict(detail=False), dict(base_term=False, detail_term=False, autoencoder=True),
                     "Exp. 4, plain auto-encoder: conv4 removed, skips kept; loss Eq. 29 on IR and VIS as single "
                     "images (a batch holds 24 pairs = 48 singles, not 24 random singles)"),
    "exp5": Ablation(dict(skips=False), dict(),
                     "Exp. 5, no skip connections: conv6/conv7 take 64 channels; loss Eq. 5"),
}


def milestones(epochs: int) -> tuple[int, ...]:
    """Steps at ⅓ and ⅔ of the run: (40, 80) for 120 epochs."""
    return tuple(sorted({m for m in (round(epochs / 3), round(2 * epochs / 3)) if 0 < m < epochs}))


def train_didfuse(profile: str = "quick", seed: int = 0, out: str | Path = "checkpoints/didfuse", epochs=None,
                  crop=None, max_pairs=None, batch_size=None, loss_preset: str = "paper", device: str = "cpu",
                  crop_mode: str = "center", resume: bool = True, progress: bool = True, name: str | None = None,
                  ablation: str | None = None, max_seconds: float | None = None):
    """Train one DIDFuse model (or a Table IV ``ablation``, see :data:`ABLATIONS`); returns (checkpoint, history).

    ``ablation`` None or "full" trains the full model. ``max_seconds`` bounds this call, data loading
    included (see :func:`fusion_core.train.train`); a stopped run resumes when called again.
    """
    started = time.perf_counter()
    ablation = None if ablation == "full" else ablation
    if ablation is not None and ablation not in ABLATIONS:
        raise ValueError(f"unknown ablation '{ablation}'; known: {', '.join(ABLATIONS)}")
    variant = ABLATIONS[ablation] if ablation else Ablation({}, {}, "full DIDFuse")
    base = PROFILES[profile]
    settings = replace(base, epochs=epochs if epochs is not None else base.epochs,
                       batch_size=batch_size or base.batch_size, crop=crop or base.crop,
                       max_pairs=max_pairs if max_pairs is not None else base.max_pairs)
    config = TrainConfig(epochs=settings.epochs, batch_size=settings.batch_size, lr=1e-3,
                         milestones=milestones(settings.epochs), gamma=0.1, seed=seed, device=device,
                         profile=profile)
    seed_everything(seed)  # before the model: the initial weights depend on the seed only
    model = DIDFuse(**variant.model)
    loss = DIDFuseLoss(loss_preset, **variant.loss)
    name = name or (f"didfuse_{profile}" + (f"_{ablation}" if ablation else "") + f"_seed{seed}"
                    + ("" if loss_preset == "paper" else f"_{loss_preset}"))
    checkpoint = Path(out) / f"{name}.pt"
    if resume and progress_of(checkpoint) == (settings.epochs, settings.epochs):
        # finished: train() checks the settings and returns at once, without decoding the training images
        return checkpoint, train(model, loss, None, config, checkpoint=checkpoint, progress=False, log=None)
    pairs = data.load_split(PAPER, "train")
    if settings.max_pairs is not None:
        pairs = pairs[: settings.max_pairs]
    crops = CropPairs.from_pairs(pairs, crop=settings.crop, mode=crop_mode, progress=progress)
    info = {"split": f"{PAPER}/train", **crops.describe(), "variant": ablation or "full",
            "variant_description": variant.description, "profile_description": settings.description
            if settings == base else f"{base.description}; overridden: {_overrides(base, settings)}"}
    budget = None if max_seconds is None else max(max_seconds - (time.perf_counter() - started), 0.0)
    history = train(model, loss, crops, config, checkpoint=checkpoint, resume=resume, progress=progress,
                    data_info=info, max_seconds=budget)
    return checkpoint, history


def _overrides(base: Profile, settings: Profile) -> str:
    return ", ".join(f"{k}={getattr(settings, k)}" for k in ("epochs", "batch_size", "crop", "max_pairs")
                     if getattr(settings, k) != getattr(base, k))


# --------------------------------------------------------------------------- splits

TEST_SETS = {"test_tno": "tno40", "test_flir": "flir_test40", "test_nir": "nir_country52"}
NEAR_DUPLICATE = 0.9  # thumbnail correlation above which two images count as the same picture


def _thumbnail(path) -> torch.Tensor:
    """Zero-mean, unit-norm 48×64 area-resized grey thumbnail (aspect ignored): r = dot product."""
    thumb = torch.nn.functional.interpolate(data.read_grey(path), size=(48, 64), mode="area").flatten().double()
    thumb = thumb - thumb.mean()
    return thumb / (thumb.norm() + 1e-12)


def write_splits(log=print) -> list[Path]:
    """Write fusion_core/papers/didfuse/splits/{train,test_tno,test_flir,test_nir,val}.txt from the data registry.

    val.txt is the validation proxy for Tables III–IV (NIR-Urban/Street are unavailable): the
    single-frame TNO scenes (``tno_scenes``) whose IR and VIS images share no decoded pixels with any
    image of the three Table V test sets or the training set (:func:`fusion_core.data.pixel_hash`).
    """
    written = [data.write_split(PAPER, "train", data.list_pairs("flir_train180"),
                                "DIDFuse training set: FLIR-Train-180 (released Train_data_FLIR), all pairs.\n"
                                "Paper adds NIR-Mountain (55) + NIR-Water (51): unavailable offline (spec 9.1).")]
    for role, name in TEST_SETS.items():
        written.append(data.write_split(PAPER, role, data.list_pairs(name), f"DIDFuse Table V test set: {name}, all pairs."))
    guarded = ["flir_train180", *TEST_SETS.values()]
    taken: dict[str, str] = {}
    thumbs: list[tuple[torch.Tensor, str]] = []
    for name in guarded:
        for pair in data.list_pairs(name):
            for path in (pair.ir, pair.vis):
                taken.setdefault(data.pixel_hash(path), pair.name)
                thumbs.append((_thumbnail(path), pair.name))
    guard_stack = torch.stack([t for t, _ in thumbs])
    candidates = data.list_pairs("tno_scenes")
    kept, dropped, nearest = [], [], []
    for pair in candidates:
        hits = {taken[h] for h in (data.pixel_hash(pair.ir), data.pixel_hash(pair.vis)) if h in taken}
        if not hits:  # second guard: the same picture re-encoded, resized or slightly cropped
            scores = torch.stack([guard_stack @ _thumbnail(p) for p in (pair.ir, pair.vis)]).amax(0)
            best = int(scores.argmax())
            if scores[best] > NEAR_DUPLICATE:
                hits = {f"{thumbs[best][1]}, thumbnail r={float(scores[best]):.3f}"}
            else:
                nearest.append((float(scores[best]), pair.stem, thumbs[best][1]))
        (dropped if hits else kept).append((pair, sorted(hits)))
    closest = max(nearest) if nearest else (float("nan"), "-", "-")
    header = (
        "DIDFuse validation proxy (replaces NIR-Urban/NIR-Street, unavailable; spec 9.1 'proxy-val A').\n"
        f"Candidates: the {len(candidates)} single-frame TNO scene folders of data set 'tno_scenes' (tno_full).\n"
        "Disjointness check 1: SHA-256 of the decoded 8-bit grey pixels (fusion_core.data.pixel_hash) of each\n"
        f"candidate's IR and VIS image against every IR and VIS image of {', '.join(guarded)}\n"
        f"({len(taken)} distinct hashes). A candidate sharing any hash is excluded.\n"
        "Check 2 (near duplicates): Pearson correlation of 48x64 area-resized thumbnails against the same\n"
        f"images; excluded above {NEAR_DUPLICATE}. Highest among kept: r={closest[0]:.3f} ({closest[1]} vs {closest[2]});\n"
        "kept scenes can share a TNO scene series with a test pair (other frame/view), never the image.\n"
        f"Excluded {len(dropped)}: " + ("; ".join(f"{p.stem} (= {', '.join(h)})" for p, h in dropped) or "none") + "\n"
        f"Kept {len(kept)}. Written by: python -m fusion_core.papers.didfuse.train --write-splits"
    )
    written.append(data.write_split(PAPER, "val", [p for p, _ in kept], header))
    if log:
        log(f"val: kept {len(kept)} of {len(candidates)} tno_scenes pairs, excluded {len(dropped)}")
        for path in written:
            log(f"wrote {path}")
    return written


# --------------------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fusion_core.papers.didfuse.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="quick", choices=sorted(PROFILES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="checkpoints/didfuse", help="folder for checkpoint, manifest and loss log")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--crop", type=int, help="training crop side (pixels)")
    parser.add_argument("--crop-mode", default="center", choices=["center", "random"])
    parser.add_argument("--max-pairs", type=int, help="use only the first K pairs of the training split")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--loss", default="paper", choices=sorted(DIDFUSE_PRESETS), help="loss preset")
    parser.add_argument("--ablation", choices=["full", *sorted(ABLATIONS)],
                        help="train a Table IV variant instead of the full model (full: the full model)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--name", help="checkpoint file stem (default didfuse_<profile>_seed<S>)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if the checkpoint exists")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--max-minutes", type=float,
                        help="stop after the last epoch that fits in this many minutes (checkpoint saved; exit "
                             f"code {INCOMPLETE}); rerun the same command to resume")
    parser.add_argument("--write-splits", action="store_true", help="write fusion_core/papers/didfuse/splits/*.txt and exit")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.write_splits:
            write_splits()
            return 0
        checkpoint, history = train_didfuse(
            args.profile, args.seed, args.out, args.epochs, args.crop, args.max_pairs, args.batch_size, args.loss,
            args.device, args.crop_mode, resume=not args.no_resume, progress=not args.no_progress, name=args.name,
            ablation=args.ablation, max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    except (data.DataError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = history.iloc[-1] if len(history) else None
    done, epochs = progress_of(checkpoint) or (0, 0)
    print(f"wrote {checkpoint} ({done}/{epochs} epochs" + (f", final loss {final['total']:.5f})" if final is not None else ")"))
    return 0 if done >= epochs else INCOMPLETE


if __name__ == "__main__":
    raise SystemExit(main())
