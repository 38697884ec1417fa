"""MSFAM (paper 003): network sizes, shapes, the stage-2 freezing, the losses' known answers, the splits' rules and
the consistency of the transcribed tables."""
from __future__ import annotations

import math

import pytest
import pytorch_msssim
import torch

from fusion_core import data, report
from fusion_core.nets.blocks import count_parameters
from fusion_core.papers.msfam import loss as L
from fusion_core.papers.msfam import splits
from fusion_core.papers.msfam.model import (AFB_KERNELS, MSFAM, AttentionFusionBlock, HINBlock, NestFuse,
                                            SemanticConstraintNet, minmax, nestfuse_avg)

TINY = (8, 16, 24, 32)


# --------------------------------------------------------------------------- networks

def test_nestfuse_has_the_spec_parameter_count():
    assert count_parameters(NestFuse()) == 2_732_761  # spec 003 §2.6 (NestFuse, nb = 64/112/160/208)


def test_msfam_parameter_count_and_its_parts():
    net = MSFAM()
    parts = (count_parameters(net.encoder), count_parameters(net.fusion), count_parameters(net.decoder))
    assert parts == (1_365_664, 343_324, 2_511_081)  # spec §2.6: 1.366 M, 0.343 M, 2.511 M
    assert count_parameters(net) == sum(parts) == 4_220_069
    assert abs(count_parameters(net) / 3.8e6 - 1) < 0.15  # the paper's 3.8 M, within the spec's ±15 %


def test_near_skip_decoder_count_matches_the_spec_variant():
    assert count_parameters(MSFAM(near_skip_only=True)) == 3_480_589  # spec §2.6: 3.48 M


def test_hinblock_count_and_half_instance_norm():
    block = HINBlock(16, 64)
    assert count_parameters(block) == (16 * 9 * 64 + 64) + (64 * 9 * 64 + 64) + (16 * 64 + 64) + 2 * 32
    assert block.norm.num_features == 32


def test_hinblock_normalises_only_the_first_half():
    torch.manual_seed(0)
    block = HINBlock(1, 4)
    seen = {}
    block.norm.register_forward_hook(lambda m, i, o: seen.update(inp=i[0], out=o))
    block(torch.rand(2, 1, 9, 11))
    assert seen["inp"].shape[1] == 2
    assert torch.allclose(seen["out"].mean((-2, -1)), torch.zeros(2, 2), atol=1e-5)  # affine init: weight 1, bias 0


def test_afb_reduces_2c_to_c_with_the_paper_kernels():
    net = MSFAM()
    assert [b.spatial.kernel_size[0] for b in net.fusion] == list(AFB_KERNELS) == [7, 5, 5, 3]
    afb = AttentionFusionBlock(6, 5)
    out = afb(torch.rand(2, 6, 13, 17), torch.rand(2, 6, 13, 17))
    assert out.shape == (2, 6, 13, 17)
    with pytest.raises(ValueError, match="N×6×H×W"):
        afb(torch.rand(2, 5, 13, 17), torch.rand(2, 5, 13, 17))


def test_afb_shares_each_conv_between_descriptor_and_map():
    """Eq. 3 with W_max = 0, b_max = 0 and W_avg = 0, b_avg = 1: F_CA = σ(1)·1 everywhere, F_SA = σ(spatial)·F_CA."""
    afb = AttentionFusionBlock(3, 3)
    with torch.no_grad():
        for conv in (afb.conv_max, afb.conv_avg):
            conv.weight.zero_()
        afb.conv_max.bias.zero_()
        afb.conv_avg.bias.fill_(1.0)
        f_ca = afb.channel_attention(torch.rand(1, 6, 5, 5))
    assert torch.allclose(f_ca, torch.full_like(f_ca, torch.sigmoid(torch.tensor(1.0)).item()))


def test_networks_keep_odd_sizes():
    torch.manual_seed(0)
    ir, vis = torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53)
    for net in (MSFAM(nb=TINY), MSFAM(nb=TINY, fusion="conv5x5"), MSFAM(nb=TINY, fusion="nestfuse_rule")):
        assert net.eval()(ir, vis).shape == ir.shape
    assert NestFuse(nb=TINY).fuse(ir, vis).shape == ir.shape
    assert SemanticConstraintNet()(torch.rand(3, 1, 37, 53)).shape == (3, 2)


def test_stage2_freezes_the_encoder_and_halves_the_decoder_lr():
    torch.manual_seed(0)
    net = MSFAM(nb=TINY, stage="stage2")
    with torch.no_grad():
        net.decoder.out.conv.bias.fill_(0.5)  # a live output ReLU, so every part gets a gradient
    groups = net.optimizer_groups(1e-4)
    assert [g["lr"] for g in groups] == [1e-4, 5e-5]
    assert not any(p.requires_grad for p in net.encoder.parameters())
    before = {k: v.clone() for k, v in net.state_dict().items()}
    sc = SemanticConstraintNet()
    sc_before = {k: v.clone() for k, v in sc.state_dict().items()}
    optimizer = torch.optim.Adam(groups)
    loss = L.FusionLoss(sc)
    net.train()
    optimizer.zero_grad()
    loss(net, (torch.rand(2, 1, 64, 64), torch.rand(2, 1, 64, 64)))["total"].backward()
    optimizer.step()
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("fusion."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert all(torch.equal(sc_before[k], v) for k, v in sc.state_dict().items())  # frozen, BN statistics too
    assert all(p.grad is None for p in sc.parameters())


def test_minmax_maps_each_image_to_the_unit_range():
    x = torch.stack([torch.linspace(-2, 3, 20).view(1, 4, 5), torch.full((1, 4, 5), 7.0)])
    y = minmax(x)
    assert y[0].min() == 0 and y[0].max() == 1 and torch.all(y[1] == 0)


def test_nestfuse_rule_of_equal_features_is_identity():
    a = torch.rand(2, 4, 6, 7) + 0.1
    assert torch.allclose(nestfuse_avg(a, a), a, rtol=1e-4)


# --------------------------------------------------------------------------- losses

@pytest.fixture(scope="module")
def grey_crop(data_root):
    pair = data.load_pair(data.list_pairs("tno40")[0])
    return pair.ir[..., :192, :176], pair.vis[..., :192, :176]


def test_ms_ssim_is_pytorch_msssim_at_five_levels(grey_crop):
    _, vis = grey_crop
    noisy = (vis + 0.2 * torch.rand(vis.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    ours = L.ms_ssim(noisy, vis)
    assert torch.allclose(ours, pytorch_msssim.ms_ssim(noisy, vis, data_range=1.0, size_average=False), atol=1e-6)
    assert 0 < float(ours) < 0.99
    assert torch.allclose(L.ms_ssim(vis, vis), torch.ones(1), atol=1e-6)


def test_ms_ssim_levels_shrink_to_fit():
    assert (L.msssim_levels(256, 320), L.msssim_levels(128, 160), L.msssim_levels(64, 80)) == (5, 4, 3)
    x = torch.rand(1, 1, 64, 80)
    assert torch.allclose(L.ms_ssim(x, x), torch.ones(1), atol=1e-6)


def test_edge_preservation_of_an_image_with_itself(grey_crop):
    _, vis = grey_crop
    q, w = L.edge_preservation(vis, vis)
    expected = 0.9994 / (1 + math.exp(-15 * (1 - 0.5))) * 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))
    edges = w > 0
    assert torch.allclose(q[edges], torch.full_like(q[edges], expected), atol=1e-5)
    assert torch.equal(w, torch.sqrt(sum(g * g for g in L.sobel(vis))))


def test_pull_push_weights_known_answers(grey_crop):
    ir, vis = grey_crop
    flat = torch.zeros_like(vis)
    w = L.pull_push_weights(vis, flat, vis)  # only the visible image has edges, and F keeps them: p = 1
    assert torch.allclose(w, torch.tensor([[math.e / (math.e + 1), 1 / (math.e + 1)]]), atol=1e-6)
    assert torch.allclose(L.pull_push_weights(flat, vis, vis), w.flip(1), atol=1e-6)
    mixed = L.pull_push_weights(vis, ir, 0.5 * (ir + vis))
    assert torch.allclose(mixed.sum(1), torch.ones(1)) and 0.2689 < float(mixed[0, 0]) < 0.7311
    assert torch.allclose(L.pull_push_weights(flat, flat, flat), torch.full((1, 2), 0.5))


def test_pull_push_loss_known_answer(grey_crop):
    _, vis = grey_crop
    flat = torch.zeros_like(vis)
    loss, w = L.pull_push_loss(vis, flat, vis)
    expected = w[0, 1] * (1 - L.ms_ssim(flat, vis)[0])  # the visible term is 0: F = V
    assert torch.allclose(loss, expected, atol=1e-6)
    equal, w_equal = L.pull_push_loss(vis, flat, vis, adaptive=False)
    assert torch.allclose(w_equal, torch.full((1, 2), 0.5)) and torch.allclose(equal, expected / w[0, 1] * 0.5)


class _Constant(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return torch.full((x.shape[0], 2), self.p)


def test_semantic_constraint_loss_is_bce_towards_one_one():
    x = torch.rand(3, 1, 8, 8)
    assert math.isclose(float(L.semantic_constraint_loss(_Constant(0.5), x)), math.log(2), rel_tol=1e-6)
    assert math.isclose(float(L.semantic_constraint_loss(_Constant(0.5), x, "sum")), 2 * math.log(2), rel_tol=1e-6)
    assert float(L.semantic_constraint_loss(_Constant(1 - 1e-7), x)) < 1e-6


def test_intensity_l1_targets():
    ir, vis = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    fused = torch.full((1, 1, 4, 4), 0.25)
    assert float(L.intensity_l1(ir, vis, fused)) == pytest.approx(0.5 * (0.25 + 0.75))
    assert float(L.intensity_l1(ir, vis, fused, "sum_of_two")) == pytest.approx(1.0)
    assert float(L.intensity_l1(ir, vis, fused, "max_of_sources")) == pytest.approx(0.75)


def test_reconstruction_loss_known_answers(grey_crop):
    _, vis = grey_crop

    class Identity(torch.nn.Module):
        def reconstruct(self, x):
            return x

    class Black(torch.nn.Module):
        def reconstruct(self, x):
            return torch.zeros_like(x)

    assert float(L.ReconstructionLoss()(Identity(), (vis,))["total"]) == pytest.approx(0.0, abs=1e-6)
    black = L.ReconstructionLoss()(Black(), (vis,))
    assert float(black["l1"]) == pytest.approx(float(vis.mean()), rel=1e-6)
    assert float(black["total"]) == pytest.approx(float(vis.mean()) + 0.84 * (1 - float(L.ssim(vis * 0, vis))), rel=1e-5)


# --------------------------------------------------------------------------- splits and reported numbers

def test_committed_pair_splits_follow_their_rules(data_root):
    made = splits.make_pair_splits()
    for role in ("train", "val", "test"):
        assert [p.name for p in data.load_split("msfam", role)] == [p.name for p in made[role]]
    names = {role: {p.name for p in made[role]} for role in made}
    assert not (names["train"] & names["val"] or names["train"] & names["test"] or names["val"] & names["test"])
    assert sum(map(len, names.values())) == 261 and len(names["test"]) == 26 and len(names["val"]) == 24
    assert set(splits.FIGURE_SCENES) <= names["test"]


def test_stage1_list_holds_no_val_or_test_pair(data_root):
    held_out = {p.name for role in ("val", "test") for p in data.load_split("msfam", role)}
    specs = data.load_image_list("msfam", "stage1")
    assert len(specs) == len(set(specs)) == 422
    assert not {s.rsplit("/", 1)[0] for s in specs} & held_out


@pytest.mark.slow
def test_stage1_list_is_rebuilt_by_its_rule(data_root):
    assert splits.make_stage1_list(splits.make_pair_splits()) == data.load_image_list("msfam", "stage1")


def test_reported_table6_mi_is_twice_en():
    """spec §5.2: MI − 2·EN = −0.0172 ± 0.0001 for 9 of Table 6's 11 methods (NestFuse's MATLAB MI bug); a
    mistyped EN or MI cell breaks it."""
    t6 = report.load_reported("msfam").query("table == '6'").pivot(index="method", columns="metric", values="value")
    gap = t6["MI"] - 2 * t6["EN"]
    assert len(t6) == 11 and (gap.sub(-0.0172).abs() <= 0.00015).sum() == 9


def test_ms_ssim_gradient_stays_finite_when_structure_is_anticorrelated(grey_crop):
    """pytorch-msssim's ReLU gives 0 ** w (infinite derivative → NaN) here; the floor keeps the gradient finite."""
    ir, vis = grey_crop
    ir = ir.clone().requires_grad_()
    assert float(pytorch_msssim.ms_ssim(ir.detach(), vis, data_range=1.0)) == 0.0  # this pair has such a level
    L.ms_ssim(ir, vis).sum().backward()
    assert torch.isfinite(ir.grad).all()


@pytest.mark.slow
def test_quick_training_discovery_and_fp16_publication(data_root, tmp_path):
    from fusion_core import methods
    from fusion_core.papers.msfam import train

    checkpoint, history = train.train_model("quick", 0, tmp_path, progress=False)
    nest, _ = train.train_model("quick", 0, tmp_path, "nestfuse", progress=False)
    assert len(history) == 1 and train.finished(checkpoint, "quick", "base") and train.finished(nest, "quick", "nestfuse")
    found = {m.key: m for m in train.discover(tmp_path, "quick")}
    assert set(found) == {"base_seed0", "nestfuse_seed0"} and found["base_seed0"].path == train.best_path(checkpoint)
    before = found["base_seed0"].path.stat().st_size
    pair = torch.rand(1, 1, 40, 48), torch.rand(1, 1, 40, 48)
    fused32 = methods.build_method("msfam", weights=found["base_seed0"].path)(*pair)
    train.publish_fp16(found["base_seed0"].path)
    assert found["base_seed0"].path.stat().st_size < 0.75 * before
    assert train.discover(tmp_path, "quick")[0].checksum != found["base_seed0"].checksum  # raw files key the fp16 file
    fused16 = methods.build_method("msfam", weights=found["base_seed0"].path)(*pair)
    assert fused16.shape == fused32.shape and torch.isfinite(fused16).all()


def test_the_shared_loop_builds_adam_from_the_stage2_groups():
    from fusion_core.train import TrainConfig, restore

    state = restore(MSFAM(nb=TINY, stage="stage2"), TrainConfig(epochs=1, batch_size=1, lr=1e-4), None)
    assert [g["lr"] for g in state.optimizer.param_groups] == [1e-4, 5e-5]
    trained = {id(p) for g in state.optimizer.param_groups for p in g["params"]}
    assert not trained & {id(p) for p in state.model.encoder.parameters()}


# --------------------------------------------------------------------------- ablation variants, figures, eval rows

def test_loss_weight_variants_carry_their_weights():
    from fusion_core.papers.msfam import train

    assert train.weights_variant(0.84, 2) == "base" and train.weights_variant(0.5, 2.0) == "a0p5_b2"
    for alpha2, beta in train.WEIGHT_SETTINGS:
        variant = train.weights_variant(alpha2, beta)
        if variant != "base":
            loss = L.FusionLoss(SemanticConstraintNet(), **train.VARIANTS[variant]["loss"])
            assert (loss.alpha2, loss.beta) == (alpha2, beta)


@pytest.mark.slow
def test_rec_is_the_stage1_network_with_the_nestfuse_rule(data_root, tmp_path):
    from fusion_core import methods
    from fusion_core.papers.msfam import train

    rec, _ = train.train_model("quick", 0, tmp_path, "rec", progress=False)
    stage1 = tmp_path / "msfam_quick_stage1_seed0.pt"
    assert train.finished(rec, "quick", "rec") and [m.key for m in train.discover(tmp_path, "quick", ["rec"])] == ["rec_seed0"]
    derived = torch.load(rec, weights_only=True)["model"]
    source = torch.load(stage1, weights_only=True)["model"]
    assert set(derived) == {k for k in source if not k.startswith("fusion.")}
    assert all(torch.equal(derived[k], source[k]) for k in derived)
    ir, vis = torch.rand(1, 1, 40, 48), torch.rand(1, 1, 40, 48)
    net = MSFAM(nb=TINY, fusion="nestfuse_rule")
    net.load_state_dict(derived)
    expected = minmax(net.decode([nestfuse_avg(i, v) for i, v in zip(net.encode(ir), net.encode(vis))]))
    assert torch.allclose(methods.build_method("msfam", weights=rec, rule="nestfuse_rule")(ir, vis), expected, atol=1e-6)
    with pytest.raises(ValueError, match="fuses with 'nestfuse_rule'"):
        methods.build_method("msfam", weights=rec, rule="afb")


def test_attention_maps_are_the_afb_tensors_of_the_forward_pass():
    from fusion_core.papers.msfam import experiment as exp

    torch.manual_seed(0)
    net = MSFAM(nb=TINY).eval()
    ir, vis = torch.rand(1, 1, 32, 40), torch.rand(1, 1, 32, 40)
    maps = exp.attention_maps(net, ir, vis)
    with torch.no_grad():
        fused = net.fuse_features(net.encode(vis), net.encode(ir))
    assert [tuple(m.shape) for m in maps["spatial"]] == [(32, 40), (16, 20), (8, 10), (4, 5)]
    for k in range(4):
        assert torch.allclose(maps["afb"][k], fused[k].abs().mean(1)[0], atol=1e-6)
        assert 0 < float(maps["spatial"][k].min()) and float(maps["spatial"][k].max()) < 1  # a sigmoid map
    with pytest.raises(ValueError, match="attention fusion blocks"):
        exp.attention_maps(MSFAM(nb=TINY, fusion="conv5x5"), ir, vis)


def _uncommitted_raw(out, variant: str, rule: str):
    """A complete raw file of an uncommitted ``variant`` (seed 0, every metric 1.0) under ``out``; (rows, path)."""
    import pandas as pd

    from fusion_core.papers.msfam import experiment as exp

    raw = out / exp.UNCOMMITTED_DIR / "test"
    raw.mkdir(parents=True, exist_ok=True)
    rows = pd.DataFrame({"source": f"{variant}_seed0", "variant": variant, "seed": 0,
                         "checkpoint": exp.UNCOMMITTED_NOTE, "stem": [p.stem for p in exp.test_set("eval").pairs],
                         **{m: 1.0 for m in exp.METRICS + exp.EXTRA_METRICS}, "checksum": "0123456789abcdef",
                         "convention": exp.CONVENTION})  # as the engine writes them: one checkpoint, one convention
    rows.to_csv(raw / f"{variant}_seed0_{rule}.csv", index=False)
    return rows, raw / f"{variant}_seed0_{rule}.csv"


def test_eval_reads_uncommitted_rows_skips_their_verification_and_lists_owed_ones(data_root, tmp_path):
    from fusion_core.papers.msfam import experiment as exp

    rows, path = _uncommitted_raw(tmp_path, "baseline", "afb")
    result = exp.ablation_raw("2", "eval", tmp_path)
    assert list(result.skipped["variant"]) == ["baseline"] and "not committed" in result.skipped["reason"].iloc[0]
    assert list(result.owed["variant"]) == ["conv5x5"] and "--variant conv5x5" in result.owed["command"].iloc[0]
    table = exp.ablation_table("2", result.rows)
    assert set(table.dropna(subset=["ours_mean"])["method"]) == {"w/ attention"}
    rows.iloc[1:].to_csv(path, index=False)  # a pair short: not read, owed
    assert list(exp.ablation_raw("2", "eval", tmp_path).owed["variant"]) == ["baseline", "conv5x5"]


def test_a_sweep_child_of_03d_is_told_apart_from_the_common_parameter_notebooks():
    from fusion_core import params

    values = {"profile": "quick", "verify": "sample", "seed": 0, "repeats": None, "device": "cpu", "threads": 1,
              "protocol": None, "alpha2": 1.0, "beta": 2.0, "sweep": False}
    changed, notebook = params.check("msfam", values)
    assert notebook == "03d_msfam_tables4_5_weights.ipynb" and changed == {"alpha2": 1.0, "sweep": False}
    with pytest.raises(params.ParameterError, match="sweep"):
        params.check("msfam", {**values, "sweep": "no"})


def test_weights_tables_place_each_setting_in_its_tables():
    import pandas as pd

    from fusion_core.papers.msfam import experiment as exp

    sweep = pd.DataFrame([{"alpha2": a, "beta": b, "variant": "x", "pairs": 26, **{m: a + b for m in exp.METRICS}}
                          for a, b in [(1.0, 2.0), (0.5, 2.0)]])
    tables = exp.weights_tables(sweep)
    t4, t5 = (tables[t].dropna(subset=["ours_mean"]) for t in ("4", "5"))
    assert set(t4["method"]) == {"alpha2=1,beta=2"} and set(t5["method"]) == {"alpha2=1,beta=2", "alpha2=0.5,beta=2"}
    assert (t5.loc[t5["method"] == "alpha2=0.5,beta=2", "ours_mean"] == 2.5).all()
    assert tables["4"]["reported"].notna().sum() == 18  # every reported cell kept, ours or not


def test_eval_table6_reads_an_uncommitted_column_from_its_raw_file_and_ignores_a_local_checkpoint(data_root, tmp_path,
                                                                                                    monkeypatch):
    from fusion_core.papers.msfam import experiment as exp
    from fusion_core.train import TrainedModel

    assert exp.COMMITTED_VARIANTS == exp.TABLE6_VARIANTS  # today every Table 6 column's checkpoint is committed
    monkeypatch.setattr(exp, "COMMITTED_VARIANTS", ("base",))  # as before NestFuse's was: read, never re-fused
    rows, path = _uncommitted_raw(tmp_path, "nestfuse", "nestfuse_avg")
    local = TrainedModel(path=tmp_path / "nestfuse_reduced_seed0.pt", paper="msfam", variant="nestfuse", seed=0,
                         protocol="reduced", checksum="0" * 16)
    assert exp.table6_models([local], "eval") == [] and exp.table6_models([local], "quick") == [local]
    assert exp.uncommitted_table6(tmp_path, "eval") == ["nestfuse"] and exp.uncommitted_table6(tmp_path, "quick") == []
    result = exp.raw_results([local], "eval", tmp_path, verify=None, baselines=False)
    assert set(result.rows["source"]) == {"nestfuse_seed0"} and result.checks.empty
    table = exp.table6(result.rows).dropna(subset=["ours_mean"])
    assert set(table["method"]) == {"NestFuse"} and (table["ours_mean"] == 1.0).all()
    rows.iloc[1:].to_csv(path, index=False)  # a pair short: no column
    assert exp.raw_results([], "eval", tmp_path, verify=None, baselines=False).rows.empty


def test_nestfuse_training_revives_a_dead_output_relu_and_leaves_a_live_one(data_root):
    from fusion_core.papers.msfam import train
    from fusion_core.train import seed_everything

    images = train.stage1_images(train.PROTOCOLS["quick"]).images[:2]
    redraws = {}
    for seed in range(6):
        seed_everything(seed)
        net = NestFuse(nb=TINY)
        weight = net.decoder.out.conv.weight.clone()
        was_alive = bool((net.reconstruct(images) > 0).any())
        redraws[seed] = train.revive_output(net, images)
        assert bool((net.reconstruct(images) > 0).any())
        assert (redraws[seed] == 0) == was_alive == torch.equal(weight, net.decoder.out.conv.weight)
    assert min(redraws.values()) == 0 and max(redraws.values()) > 0  # both cases occur among these seeds
