"""The fast paths give the values of the plain ones: speed work must not move a metric or a fused pixel.

No timing here (benchmarks/ measures speed, as ratios to a peer in the same run); each test compares a fast
path with the straightforward computation it replaces, on real data, bit for bit.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fusion_core import data
from fusion_core.metrics import CONVENTIONS, score
from fusion_core.rules import get_rule, saliency_weights

WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "didfuse_released" / "weights"


def _pair(dataset: str, stem: str) -> data.Pair:
    try:
        return next(p for p in data.list_pairs(dataset) if p.stem == stem)
    except data.DataError as exc:
        pytest.skip(f"data root missing: {exc}")


@pytest.fixture(scope="module")
def features():
    """DIDFuse (released weights) base and skip features of a real tno40 crop: what the rules merge."""
    if not (WEIGHTS / "Encoder_weight_IJCAI.pkl").is_file():
        pytest.skip(f"{WEIGHTS}: released DIDFuse weights missing")
    from fusion_core.papers.didfuse.model import load_released

    images = data.load_pair(_pair("tno40", "08"))
    model = load_released(WEIGHTS).eval()
    with torch.inference_mode():
        fa, fb = model.encoder(images.ir[..., :96, :120]), model.encoder(images.vis[..., :96, :120])
    return [(getattr(fa, f).clone(), getattr(fb, f).clone()) for f in ("f1", "base")]


@pytest.mark.parametrize("name", ["sal", "sal+cam"])
def test_saliency_rule_plane_path_equals_tensor_path(features, name):
    # inputs that require grad take the whole-tensor path (autograd); detached ones the per-plane NumPy path
    rule = get_rule(name, "didfuse", radius=9)
    # the plane path takes two planes per pass: an odd count (3 channels) leaves one plane on its own
    for a, b in [*features, *((a[:, :3].contiguous(), b[:, :3].contiguous()) for a, b in features)]:
        with torch.no_grad():
            fast = rule(a, b)
        slow = rule(a.clone().requires_grad_(True), b.clone().requires_grad_(True)).detach()
        assert torch.equal(fast, slow)


def test_saliency_weights_plane_path_equals_tensor_path(features):
    a, b = features[0]
    fast = saliency_weights(a, b, radius=45)
    slow = saliency_weights(a.clone().requires_grad_(True), b.clone().requires_grad_(True), radius=45)
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("dataset,stem", [("tno42", "01"), ("vifb21", "labMan")])
def test_columns_scored_together_equal_columns_scored_alone(dataset, stem):
    # score() converts the images once per colour mode and shares the planes between its columns
    pair = _pair(dataset, stem)
    ir, vis = (data.read_array(path)[:120, :160] for path in (pair.ir, pair.vis))  # labMan: VIS in colour
    fused = (0.6 * (ir[..., None] if vis.ndim == 3 and ir.ndim == 2 else ir) + 0.4 * vis).clip(0, 1)
    for name in ("tang", "vifb"):
        columns = list(CONVENTIONS[name].columns)
        together = score(fused, ir, vis, columns, name)
        for column in columns:
            alone = score(fused, ir, vis, [column], name)[column]
            assert torch.equal(together[column], alone) or (together[column].isnan().all() and alone.isnan().all())


@pytest.mark.parametrize("dataset,stem", [("tno42", "01"), ("vifb21", "labMan")])
def test_scoring_the_stored_uint8_levels_equals_scoring_the_decoded_floats(dataset, stem):
    # `score` hands the metrics the 8-bit levels as decoded (read_pixels), not levels / 255 (read_array): every
    # convention, grey (stored as RGB) and colour, quantised or not, must give the same doubles
    import numpy as np

    pair = _pair(dataset, stem)
    ir, vis = (data.read_pixels(path)[:168, :192] for path in (pair.ir, pair.vis))  # MS-SSIM needs > 160 px
    assert ir.dtype == vis.dtype == np.uint8
    fused = np.round(0.6 * (ir[..., None] if vis.ndim == 3 and ir.ndim == 2 else ir) + 0.4 * vis).astype(np.uint8)
    for name, convention in CONVENTIONS.items():
        columns = list(convention.columns)
        levels = score(fused, ir, vis, columns, name)
        floats = score(fused / 255.0, ir / 255.0, vis / 255.0, columns, name)
        for column in columns:
            same = torch.equal(levels[column], floats[column]) or bool(levels[column].isnan().all() and floats[column].isnan().all())
            assert same, (name, column, float(levels[column][0]), float(floats[column][0]))


def test_keep_freed_memory_stops_the_page_faults_of_reallocating_large_arrays():
    # in a fresh interpreter each: 64 MB arrays allocated and freed five times fault their pages in again by
    # default (glibc maps and unmaps them; at least once per 2 MB, the largest page the kernel may back them
    # with), and fewer times than one array has 2 MB pages once freed memory is kept
    import subprocess
    import sys

    code = ("import resource, sys, numpy as np\n"
            "from fusion_core.memory import keep_freed_memory\n"
            "kept = keep_freed_memory() if sys.argv[1] == 'keep' else None\n"
            "np.ones(8 << 20)\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
            "for _ in range(5):\n    np.ones(8 << 20)\n"
            "print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)")
    runs = {mode: subprocess.run([sys.executable, "-c", code, mode], capture_output=True, text=True, check=True)
            .stdout.split() for mode in ("default", "keep")}
    if runs["keep"][0] != "True":
        pytest.skip("not glibc: keep_freed_memory changes nothing here")
    huge_pages = (64 << 20) // (2 << 20)
    assert int(runs["default"][1]) >= 5 * huge_pages and int(runs["keep"][1]) < huge_pages, runs


def _plain_rule(rule, a: torch.Tensor, b: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """The rule on its whole-tensor path (what autograd runs: no plane loop, no interleaving, separate passes for
    the saliency and the channel attention), a few channels at a time to bound the memory: every step of the
    saliency and channel rules is per channel, so chunks give the whole stack's values."""
    parts = []
    with torch.enable_grad():
        for start in range(0, a.shape[1], chunk):
            x, y = (t[:, start:start + chunk].clone().requires_grad_(True) for t in (a, b))
            parts.append(rule(x, y).detach())
    return torch.cat(parts, dim=1)


@pytest.mark.slow
def test_didfuse_fast_fuse_equals_the_plain_module_on_a_full_tno40_pair():
    # The released model with its default rule (sal+cam) on the smallest tno40 pair (36, 359x247), whole: the
    # method as `fuse` runs it (inference mode, the CPU plane path of the rule: interleaved sides, saliency and
    # channel attention in one pass) against the plain modules (encoder, the rule's whole-tensor path, decoder).
    # The brief's bound is 1 grey level after quantisation; measured: 0 pixels differ, and the float images are
    # equal, which is asserted too because the uint8 bound alone is weak (radius 44 instead of 45 moves 970
    # pixels by exactly 1 grey level).
    if not (WEIGHTS / "Encoder_weight_IJCAI.pkl").is_file():
        pytest.skip(f"{WEIGHTS}: released DIDFuse weights missing")
    from fusion_core.fuse import fuse_images
    from fusion_core.papers.didfuse.model import PAPER_RULE, SKIP_FIELDS, Features, build, load_released

    images = data.load_pair(_pair("tno40", "36"))
    fast = fuse_images(build(WEIGHTS), images)

    model = load_released(WEIGHTS).eval()
    rule = get_rule(PAPER_RULE, "didfuse")
    assert SKIP_FIELDS == ("f1", "f2")  # the skips take the main rule too (skip_rule None)
    with torch.no_grad():
        fa, fb = model.encoder(images.ir), model.encoder(images.vis)
        merged = Features(*(_plain_rule(rule, getattr(fa, f), getattr(fb, f)) for f in Features._fields))
        plain = model.decoder(merged).clamp(0, 1)
    difference = abs(data.to_uint8(fast).astype(int) - data.to_uint8(plain).astype(int))
    assert fast.shape[-2:] == (247, 359) and difference.max() <= 1, (int(difference.max()), int((difference > 0).sum()))
    assert torch.equal(fast, plain)
