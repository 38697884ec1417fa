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
    for a, b in features:
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
