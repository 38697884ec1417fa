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


@pytest.mark.parametrize("dataset,stem", [("tno42", "01"), ("vifb21", "labMan")])
def test_score_with_shared_products_and_marked_planes_equals_each_metric_on_plain_planes(dataset, stem):
    # score() marks its 8-bit planes as whole numbers (Qabf then skips its check) and shares the products VIF and
    # SSIM both filter; each metric called by itself on unmarked copies, outside any sharing, gives the same doubles
    import numpy as np

    from fusion_core.metrics import METRICS
    from fusion_core.metrics._core import known_whole
    from fusion_core.metrics.score import _planes

    pair = _pair(dataset, stem)
    ir, vis = (data.read_pixels(path)[:168, :192] for path in (pair.ir, pair.vis))
    fused = np.round(0.6 * (ir[..., None] if vis.ndim == 3 and ir.ndim == 2 else ir) + 0.4 * vis).astype(np.uint8)
    for name, convention in CONVENTIONS.items():
        scored = score(fused, ir, vis, list(convention.columns), name)
        for column_name in convention.columns:
            column = convention.column(column_name)
            colour = column.colour or convention.colour
            as_batch = [torch.from_numpy(x).permute(2, 0, 1)[None] if x.ndim == 3 else torch.from_numpy(x)[None, None]
                        for x in (fused, ir, vis)]
            f, a, b, c = _planes(*as_batch, colour, convention.quantize)
            plain = [x.clone() for x in (f, a, b)]
            assert not any(known_whole(x) for x in plain)
            record = METRICS[column.metric]
            value = record.fn(*plain, **{**record.defaults, **column.options}).reshape(-1, c).mean(dim=1)
            same = torch.equal(scored[column_name], value) or bool(scored[column_name].isnan().all() and value.isnan().all())
            assert same, (name, column_name, float(scored[column_name][0]), float(value[0]))


def test_planes_are_marked_whole_only_when_rounded_to_8_bit_levels_and_only_until_modified():
    from fusion_core.metrics import gradient
    from fusion_core.metrics._core import known_whole, mark_whole
    from fusion_core.metrics.score import _planes

    x = torch.rand(1, 1, 12, 16, dtype=torch.float64)
    rounded, unrounded = _planes(x, x, x, "grey", True), _planes(x, x, x, "grey", False)
    assert all(known_whole(p) for p in rounded[:3]) and not any(known_whole(p) for p in unrounded[:3])
    assert not gradient._integral(unrounded[0])  # so Qabf keeps the ordered Sobel sums on them
    plane = rounded[0]
    assert known_whole(gradient.to_toolbox_units(plane, 255.0))  # levels ×255: whole again
    assert not known_whole(gradient.to_toolbox_units(plane, 1 / 255))
    plane.add_(0.5)  # modified in place: no longer known, and checked again
    assert not known_whole(plane) and not gradient._integral(plane)
    assert not known_whole(plane.clone())
    with torch.inference_mode():
        assert not known_whole(mark_whole(torch.zeros(2, 2)))  # no version counter to watch: never marked


def test_products_are_shared_only_inside_the_context_and_only_while_the_planes_are_unchanged():
    from fusion_core.metrics._core import product, sharing_products

    x, y = torch.rand(1, 8, 8, dtype=torch.float64), torch.rand(1, 8, 8, dtype=torch.float64)
    assert product(x, y) is not product(x, y)
    with sharing_products():
        p = product(x, y)
        assert product(x, y) is p and torch.equal(p, x * y)
        assert product(y, x) is not p  # another key: the metrics ask in one order
        y.mul_(2)
        q = product(x, y)
        assert q is not p and torch.equal(q, x * y)
    assert product(x, y) is not q


def test_equal_channels_by_layout_or_by_comparison():
    from fusion_core.metrics.score import _equal_channels

    grey = torch.randint(0, 256, (1, 1, 6, 7), dtype=torch.uint8)
    assert _equal_channels(grey.expand(-1, 3, -1, -1))  # one plane seen three times
    assert _equal_channels(grey.repeat(1, 3, 1, 1))
    colour = grey.repeat(1, 3, 1, 1)
    colour[0, 2, 0, 0] ^= 1
    assert not _equal_channels(colour) and not _equal_channels(grey)


def test_mutual_information_of_saturated_indices_equals_the_clamped_joint_histogram():
    # tang's MI (Hab.m) counts levels 254 and 255 in one joint bin: the joint of the levels clamped to 254, with
    # the marginals of the unclamped levels; here derived from one joint per source, bit for bit
    from fusion_core.metrics._core import entropy_of, histogram, joint_histogram
    from fusion_core.metrics.information import _mi_of_levels

    pair = _pair("tno42", "01")
    a, f = (torch.from_numpy(data.read_pixels(path)).to(torch.float64) for path in (pair.ir, pair.vis))
    a, f = (x[..., 0] if x.dim() == 3 else x for x in (a, f))
    a, f = a[None], f[None]
    assert bool((a >= 254).any()) or bool((f >= 254).any())  # the bins the saturation merges are used
    clamped = entropy_of(joint_histogram(a.clamp(max=254), f.clamp(max=254)), dims=(-2, -1))
    expected = entropy_of(histogram(a)) + entropy_of(histogram(f)) - clamped
    assert torch.equal(_mi_of_levels(a, f, 2.0, uint8_index=True), expected)
    assert not torch.equal(_mi_of_levels(a, f, 2.0, uint8_index=False), expected)


def test_score_through_decoding_ahead_equals_score_of_the_read_pixels(monkeypatch):
    # `score` reads the images a forked process decoded: colour-stored grey comes back as one plane seen three times
    import math
    import time

    from fusion_core.metrics.cli import score_triple

    pairs = [_pair("tno42", "01"), _pair("vifb21", "labMan")]
    monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    triples = [(p.stem, p.vis, p.ir, p.vis) for p in pairs]  # the visible image as the fused one: colour on vifb21
    with data.decoding_ahead(path for t in triples for path in t[1:]) as decoded:
        deadline = time.monotonic() + 60
        while len(list(decoded.folder.glob("*[0-9].npy"))) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert decoded(pairs[0].ir).strides[-1] == 0  # tno42's IR: grey stored as RGB
        assert decoded(pairs[1].vis).strides[-1] != 0  # labMan's visible image is in colour
        for name in ("tang", "vifb"):
            for triple in triples:
                ahead, plain = score_triple(triple, None, name, pixels=decoded), score_triple(triple, None, name)
                assert ahead.keys() == plain.keys()
                for key, value in plain.items():  # SCD of F = VIS is NaN (F − VIS = 0) on both paths
                    assert ahead[key] == value or (math.isnan(ahead[key]) and math.isnan(value)), (name, key)


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
