"""How MSFAM's committed split files were made (spec 003 §4, "Stage 2" and §9), so a test can rebuild them.

The paper's stage-2 data are 273 TNO + RoadScene pairs, split 90 % / 10 % (train / test); which 52 TNO pairs and
which test pairs are not stated. Ours (a labelled substitute): ``roadscene221`` (221 pairs) + ``tno40`` (40 pairs)
= 261 pairs.

Rules, applied in this order (seed :data:`SEED`, ``numpy.random.default_rng``):

1. **test** (10 % of each data set, rounded: 22 RoadScene + 4 TNO = 26 pairs): the three figure scenes are forced
   in (:data:`FIGURE_SCENES`: ``tno40/38`` man in doorway, ``tno40/16`` Kaptein_1123, ``tno40/20`` bunker; no ship
   scene exists in our TNO sets, spec §6), the rest drawn at random from each data set.
2. **val** (10 % of each data set's remaining pairs, rounded: 20 + 4 = 24 pairs): model selection (the paper
   appears to select on its test pairs; we never do).
3. **train**: the other 211 pairs (179 + 32).
4. **stage1** (an image list, single images): the IR and VIS image of every ``train`` pair, plus every
   ``flir_train180`` single (the FLIR ADAS substitute), de-duplicated by decoded-pixel hash
   (:func:`fusion_core.data.pixel_hash`), and without any image whose pixels occur in a ``val`` or ``test`` pair.
   ``flir_train180`` is byte-identical to 180 RoadScene pairs, so it adds no image of its own: the list is the
   train split's singles; the rule is kept so that a larger FLIR copy would be filtered the same way.
"""
from __future__ import annotations

import numpy as np

from ... import data

PAPER = "msfam"
SEED = 0
STAGE2_SETS = ("roadscene221", "tno40")
STAGE1_EXTRA_SETS = ("flir_train180",)
FIGURE_SCENES = ("tno40/38", "tno40/16", "tno40/20")  # man in doorway, Kaptein_1123, bunker (spec §6, Figs 7-9)
TEST_FRACTION = VAL_FRACTION = 0.10

HEADERS = {
    "train": "MSFAM stage-2 training pairs (roadscene221 + tno40 substitute for the paper's 273 TNO+RoadScene pairs);\n"
             "made by fusion_core/papers/msfam/splits.py (seed 0): the pairs left after test and val.",
    "val": "MSFAM validation pairs (model selection; 10% of each data set's non-test pairs, seed 0);\n"
           "made by fusion_core/papers/msfam/splits.py. Never used for training or testing.",
    "test": "MSFAM test pairs (10% of roadscene221 and of tno40, seed 0; tno40/38, 16, 20 = the figure scenes\n"
            "man in doorway, Kaptein_1123, bunker forced in; no ship scene exists); fusion_core/papers/msfam/splits.py.",
    "stage1": "MSFAM stage-1 single images (substitute for FLIR ADAS' 20,177 singles): IR and VIS of every train pair\n"
              "plus flir_train180 singles, de-duplicated by pixel hash, none from a val or test pair\n"
              "(flir_train180 = RoadScene pairs, so it adds none); fusion_core/papers/msfam/splits.py.",
}


def _draw(rng: np.random.Generator, names: list[str], count: int, forced: tuple[str, ...] = ()) -> list[str]:
    chosen = [n for n in forced if n in names]
    rest = [n for n in names if n not in chosen]
    picks = rng.choice(len(rest), size=max(count - len(chosen), 0), replace=False)
    return chosen + [rest[i] for i in sorted(picks)]


def make_pair_splits(seed: int = SEED) -> dict[str, list[data.Pair]]:
    """``test``, ``val``, ``train`` pairs by the rules of the module docstring (data sets in :data:`STAGE2_SETS`)."""
    rng = np.random.default_rng(seed)
    roles: dict[str, list[data.Pair]] = {"train": [], "val": [], "test": []}
    for name in STAGE2_SETS:
        pairs = {p.name: p for p in data.list_pairs(name)}
        names = list(pairs)
        test = _draw(rng, names, round(TEST_FRACTION * len(names)), FIGURE_SCENES)
        left = [n for n in names if n not in test]
        val = _draw(rng, left, round(VAL_FRACTION * len(left)))
        train = [n for n in left if n not in val]
        for role, chosen in (("test", test), ("val", val), ("train", train)):
            roles[role] += [pairs[n] for n in sorted(chosen, key=data.natural_key)]
    return roles


def make_stage1_list(splits: dict[str, list[data.Pair]]) -> list[str]:
    """Single-image specs ``<dataset>/<stem>/<ir|vis>`` for stage 1 (rule 4 of the module docstring)."""
    held_out = {data.pixel_hash(getattr(p, side)) for role in ("val", "test") for p in splits[role]
                for side in ("ir", "vis")}
    candidates = [p for p in splits["train"]] + [p for name in STAGE1_EXTRA_SETS for p in data.list_pairs(name)]
    seen, specs = set(held_out), []
    for pair in candidates:
        for side in ("ir", "vis"):
            digest = data.pixel_hash(getattr(pair, side))
            if digest not in seen:
                seen.add(digest)
                specs.append(f"{pair.name}/{side}")
    return specs


def write_all(seed: int = SEED) -> None:
    """Rewrite ``splits/{train,val,test,stage1}.txt`` (run once; the files are committed)."""
    from ...io import atomic_write

    splits = make_pair_splits(seed)
    for role, pairs in splits.items():
        data.write_split(PAPER, role, pairs, HEADERS[role])
    lines = [f"# {line}" for line in HEADERS["stage1"].splitlines()] + make_stage1_list(splits)
    with atomic_write(data.split_path(PAPER, "stage1"), "w") as handle:
        handle.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    write_all()
