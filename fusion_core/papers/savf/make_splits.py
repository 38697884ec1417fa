"""Write SAVF's committed splits (``python -m fusion_core.papers.savf.make_splits``); each file's header states its rule.

* ``attention_train`` / ``attention_test``: the 20 ``tno_masks20`` pairs (the only real attention labels: salient-target
  masks, a labelled proxy for the paper's subjective-attention labels), 5 held out for testing, drawn with
  ``random.Random(0).sample`` from the stems in natural order; the other 15 train.
* ``main_train``: the 221 ``roadscene221`` pairs (unlabelled, registered; VIS colour → Y), the substitute for the
  paper's 1800 IR-VIS training pairs.
* ``enhance_corpus``: natural-image corpus for sub-task 2 (COCO2014 substitute): ``roadscene221/vis_hr`` (221 street
  photos) and ``nir_country52`` visible frames (52).
* ``test_tno``: ``tno42`` without the 20 scenes of ``tno_masks20`` (found by equal decoded grey pixels of the IR
  image: the attention net trained on them) — 22 pairs.
* ``test_vifb``: ``vifb21`` without any pair whose IR pixels equal a training pair's (none expected; checked).
"""
from __future__ import annotations

import random

import numpy as np

from ... import data

SEED = 0
HELD_OUT = 5


def _grey(path) -> np.ndarray:
    return np.round(data.to_grey(data.read_array(path)) * 255).astype(np.uint8)


def _overlapping(candidates: list[data.Pair], training: list[data.Pair]) -> set[str]:
    """Stems of ``candidates`` whose IR image equals (decoded grey pixels) the IR image of a training pair."""
    seen = {}
    for pair in training:
        grey = _grey(pair.ir)
        seen.setdefault(grey.shape, []).append(grey)
    return {p.stem for p in candidates
            if any(np.array_equal(g, other) for g in [_grey(p.ir)] for other in seen.get(g.shape, []))}


def main() -> None:
    masks = data.list_pairs("tno_masks20")
    held = set(random.Random(SEED).sample([p.stem for p in masks], HELD_OUT))
    rule = f"tno_masks20: random.Random({SEED}).sample(stems in natural order, {HELD_OUT}) held out"
    data.write_split("savf", "attention_test", [p for p in masks if p.stem in held],
                     f"SAVF attention-detection held-out pairs ({rule}).\nWritten by fusion_core/papers/savf/make_splits.py.")
    data.write_split("savf", "attention_train", [p for p in masks if p.stem not in held],
                     f"SAVF attention-detection training pairs (the other 15; {rule}).\n"
                     "Written by fusion_core/papers/savf/make_splits.py.")
    road = data.list_pairs("roadscene221")
    data.write_split("savf", "main_train", road, "SAVF main-task training pairs: all of roadscene221 (substitute for the "
                     "paper's 1800 IR-VIS pairs).\nWritten by fusion_core/papers/savf/make_splits.py.")
    corpus = [f"roadscene221/{p.stem}/vis_hr" for p in road] + [f"nir_country52/{p.stem}/vis"
                                                                for p in data.list_pairs("nir_country52")]
    path = data.split_path("savf", "enhance_corpus")
    path.write_text("# SAVF enhancement corpus (COCO2014 substitute): roadscene221 vis_hr (221) + nir_country52 vis (52).\n"
                    "# Written by fusion_core/papers/savf/make_splits.py.\n" + "\n".join(corpus) + "\n")
    tno = data.list_pairs("tno42")
    dropped = _overlapping(tno, masks)
    data.write_split("savf", "test_tno", [p for p in tno if p.stem not in dropped],
                     f"SAVF IR-VIS test pairs: tno42 without the {len(dropped)} scenes of tno_masks20 (equal IR pixels: "
                     f"{', '.join(sorted(dropped))}).\nWritten by fusion_core/papers/savf/make_splits.py.")
    vifb = data.list_pairs("vifb21")
    dropped_vifb = _overlapping(vifb, masks + road)
    data.write_split("savf", "test_vifb", [p for p in vifb if p.stem not in dropped_vifb],
                     f"SAVF IR-VIS test pairs: vifb21 without pairs whose IR equals a training pair's "
                     f"({len(dropped_vifb)} dropped: {', '.join(sorted(dropped_vifb)) or 'none'}).\n"
                     "Written by fusion_core/papers/savf/make_splits.py.")


if __name__ == "__main__":
    main()
