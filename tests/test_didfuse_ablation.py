"""DIDFuse Table IV ablation variants (spec §7) and the saliency rule's two box-filter paths."""
from __future__ import annotations

import json

import pytest
import torch

from fusion_core.losses import gradient_l1, reconstruction_loss
from fusion_core.papers.didfuse.loss import DIDFuseLoss, didfuse_loss
from fusion_core.papers.didfuse.model import DIDFuse, load_checkpoint
from fusion_core.rules import box_filter
from fusion_core.papers.didfuse.train import ABLATIONS, train_model


def _in_channels(model, name):
    return getattr(model.decoder, name).conv.in_channels


@pytest.mark.parametrize("name, conv5, conv6, base, detail", [
    ("exp1", 64, 128, False, True),
    ("exp2", 64, 128, True, False),
    ("exp3", 128, 128, True, True),
    ("exp4", 64, 128, True, False),
    ("exp5", 128, 64, True, True),
])
def test_ablation_networks_follow_spec_section_7(name, conv5, conv6, base, detail):
    model = DIDFuse(**ABLATIONS[name].model)
    assert _in_channels(model, "conv5") == conv5
    assert _in_channels(model, "conv6") == conv6 == _in_channels(model, "conv7")
    assert (model.encoder.conv3 is not None) == base
    assert (model.encoder.conv4 is not None) == detail


def test_decomposition_terms_are_dropped_where_the_ablation_says():
    torch.manual_seed(0)
    ir, vis = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    model = DIDFuse()
    ir_rec, ir_f = model(ir)
    vis_rec, vis_f = model(vis)
    full = didfuse_loss(ir, vis, ir_rec, vis_rec, ir_f, vis_f, DIDFuseLoss("paper").weights)
    exp3 = didfuse_loss(ir, vis, ir_rec, vis_rec, ir_f, vis_f, DIDFuseLoss("paper", **ABLATIONS["exp3"].loss).weights)
    w = DIDFuseLoss("paper").weights
    assert torch.allclose(full["total"] - exp3["total"], torch.tanh(full["base"]) - w.alpha1 * torch.tanh(full["detail"]))


def test_autoencoder_loss_is_eq29_over_both_modalities():
    torch.manual_seed(1)
    ir, vis = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    model = DIDFuse(**ABLATIONS["exp4"].model)
    ir_rec, ir_f = model(ir)
    vis_rec, vis_f = model(vis)
    weights = DIDFuseLoss("paper", **ABLATIONS["exp4"].loss).weights
    got = didfuse_loss(ir, vis, ir_rec, vis_rec, ir_f, vis_f, weights)["total"]
    want = (weights.alpha2 * (reconstruction_loss(ir, ir_rec, weights.lam) + reconstruction_loss(vis, vis_rec, weights.lam)) / 2
            + weights.alpha4 * (gradient_l1(ir, ir_rec) + gradient_l1(vis, vis_rec)) / 2)
    assert torch.allclose(got, want)


def test_quick_ablation_training_writes_a_loadable_labelled_checkpoint(tmp_path):
    checkpoint, history = train_model("quick", seed=0, out=tmp_path, variant="exp5", progress=False)
    assert checkpoint.name == "didfuse_quick_exp5_seed0.pt" and len(history) == 2
    manifest = json.loads(checkpoint.with_suffix(".json").read_text())
    assert manifest["data"]["variant"] == "exp5"
    model = load_checkpoint(checkpoint).eval()
    assert model.config["skips"] is False
    with torch.no_grad():
        fused = model.fuse(torch.rand(1, 1, 24, 40), torch.rand(1, 1, 24, 40), "sal+cam")
    assert fused.shape == (1, 1, 24, 40) and torch.isfinite(fused).all()


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown DIDFuse variant 'exp9'"):
        train_model("quick", out=tmp_path, variant="exp9", progress=False)


@pytest.mark.parametrize("radius", [1, 5, 45])
def test_box_filter_cpu_path_equals_running_sum_path(radius):
    torch.manual_seed(2)
    x = torch.rand(2, 3, 60, 97, dtype=torch.float64)
    fast = box_filter(x, radius)  # cv2.blur
    slow = box_filter(x.clone().requires_grad_(True), radius).detach()  # torch running sums
    assert torch.allclose(fast, slow, atol=1e-10)
