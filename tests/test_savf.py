"""SAVF (paper 000): networks (parameter counts, shapes, freezing), losses (known answers), splits, methods."""
from __future__ import annotations

import random

import pytest
import torch

from fusion_core import data, methods
from fusion_core.nets.blocks import count_parameters
from fusion_core.papers.savf import experiment, loss, model, train
from fusion_core.train import weights_state

REDUCED = train.REDUCED_MODEL


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


# --------------------------------------------------------------------------- networks

def test_vgg16_backbone_has_torchvision_vgg16_features_parameter_count():
    # torchvision's vgg16().features holds 14,714,688 parameters: same layout, so ImageNet weights load unchanged
    assert count_parameters(model.VGGBackbone()) == 14_714_688
    assert count_parameters(model.VGGBackbone(*model.VGG19)) == 20_024_384  # vgg19().features


@pytest.mark.parametrize("channels", [16, 64])
def test_msrb_parameter_count_follows_its_layer_list(channels):
    # conv3 C→C, conv5 C→C, conv3 2C→2C, conv5 2C→2C, conv1 4C→C (with biases) = 174 C² + 7 C
    assert count_parameters(model.MSRB(channels)) == 174 * channels ** 2 + 7 * channels


def test_parameter_counts_of_the_spec_default_networks():
    plus, plain = model.SAVFNet(attention=True), model.SAVFNet(attention=False)
    assert count_parameters(plus) == 1_757_477  # main network's trainable part, OURS+ (one more lateral 1×1 conv)
    assert count_parameters(plain) == 1_749_221
    assert count_parameters(plus) - count_parameters(plain) == 2 * 64 * 64 + 64  # the attention lateral U_att
    assert sum(p.numel() for p in plus.parameters()) == 32_926_642  # with frozen backbone, EnhanceNet, AttentionNet
    assert count_parameters(model.AttentionNet()) == 1_665_016
    assert count_parameters(model.EnhanceNet()) == 74_773


def test_parameter_counts_of_the_reduced_networks():
    assert count_parameters(model.SAVFNet(attention=True, **REDUCED)) == 111_786
    assert count_parameters(model.SAVFNet(attention=False, **REDUCED)) == 111_258
    assert count_parameters(model.build_backbone(model.model_config(**REDUCED))) == 230_568


def test_local_global_features_give_width_channels_at_input_size():
    config = model.model_config(**REDUCED)
    backbone = model.build_backbone(config)
    features = model.LocalGlobalFeatures(model.backbone_widths(config), tap_ch=8, width=16)
    out = features(backbone(torch.rand(2, 1, 48, 64)), (48, 64))
    assert out.shape == (2, 16, 48, 64) and (out >= 0).all()


def test_attention_net_outputs_a_map_in_unit_range():
    out = model.AttentionNet(**REDUCED)(torch.rand(2, 1, 32, 48), torch.rand(2, 1, 32, 48))
    assert out["F_S"].shape == (2, 1, 32, 48) and 0 <= out["F_S"].min() and out["F_S"].max() <= 1
    assert out["h_a"].shape == (2, 16, 32, 48)


def test_fuse_pads_any_size_and_crops_back():
    net = model.SAVFNet(attention=True, **REDUCED).eval()
    with torch.inference_mode():
        fused = net.fuse(torch.rand(1, 1, 37, 53), torch.rand(1, 1, 37, 53))
    assert fused.shape == (1, 1, 37, 53) and 0 <= fused.min() and fused.max() <= 1


def test_main_network_rejects_mismatched_pairs():
    with pytest.raises(ValueError, match="one shape"):
        model.SAVFNet(attention=False, **REDUCED)(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 48))


def test_position_attention_starts_as_identity_and_channel_attention_halves_with_zero_weights():
    x = torch.rand(2, 8, 40, 40)
    assert torch.equal(model.PositionAttention(8)(x), x)  # γ = 0 at initialisation (DANet)
    cam = model.ChannelAttention(8, reduction=4)
    torch.nn.init.zeros_(cam.excite.weight), torch.nn.init.zeros_(cam.excite.bias)
    torch.testing.assert_close(cam(x), x / 2)  # σ(0) = ½ on every channel


def test_main_training_step_leaves_the_frozen_subtasks_unchanged():
    net = model.SAVFNet(attention=True, **REDUCED)
    frozen = {k: v.clone() for k, v in net.state_dict().items() if k.split(".")[0] in ("backbone", "enhance", "attention")}
    trained = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("stem.")}
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    ir, vis = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    loss.MainLoss(loss.relu2_2(net.backbone))(net.train(), (ir, vis))["total"].backward()
    optimiser.step()
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())
    assert any(not torch.equal(after[k], v) for k, v in trained.items())


def test_backbone_loads_torchvision_style_weights_in_conv_order(tmp_path):
    backbone = model.VGGBackbone(*model.VGG16)
    convs = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    # torchvision numbers the convs of vgg16().features 0, 2, 5, 7, 10, ... (ReLU and pooling in between)
    indices = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    state = {}
    for i, conv in zip(indices, convs):
        state[f"features.{i}.weight"] = torch.full_like(conv.weight, float(i))
        state[f"features.{i}.bias"] = torch.full_like(conv.bias, -float(i))
    torch.save(state, tmp_path / "vgg16.pth")
    model.load_backbone_weights(backbone, tmp_path / "vgg16.pth")
    assert [float(c.weight[0, 0, 0, 0].detach()) for c in convs] == [float(i) for i in indices]
    small = model.VGGBackbone((8, 16, 32, 64, 64), model.VGG16[1])
    with pytest.raises(ValueError, match="features.0.weight"):
        model.load_backbone_weights(small, tmp_path / "vgg16.pth")


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="widht"):
        model.model_config(widht=32)
    with pytest.raises(ValueError, match="pam"):
        model.model_config(pam="none")


# --------------------------------------------------------------------------- losses (known answers)

def test_ssim_term_is_zero_for_equal_images_and_matches_the_constant_image_formula():
    x = torch.rand(1, 1, 24, 24)
    assert float(loss.ssim_term(x, x)) == pytest.approx(0.0, abs=1e-6)
    a, b, c1 = 0.2, 0.6, 0.01 ** 2
    # constant images: σ = 0, the structure terms are (C2/C2) = 1 and SSIM = (2ab + C1)/(a² + b² + C1)
    expected = 1 - (2 * a * b + c1) / (a * a + b * b + c1)
    # float64: in float32 the window variances of a constant (≈1e-8 rounding) move the ratio by ~1e-4 against C2
    got = loss.ssim_term(torch.full((1, 1, 16, 16), a, dtype=torch.float64), torch.full((1, 1, 16, 16), b, dtype=torch.float64))
    assert float(got) == pytest.approx(expected, rel=1e-7)


def test_laplacian_of_an_impulse_and_of_a_constant():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    expected = torch.zeros(1, 1, 5, 5)
    expected[0, 0, 2, 2] = -4.0
    expected[0, 0, 1, 2] = expected[0, 0, 3, 2] = expected[0, 0, 2, 1] = expected[0, 0, 2, 3] = 1.0
    torch.testing.assert_close(loss.laplacian(x), expected)
    assert torch.equal(loss.laplacian(torch.full((1, 1, 6, 6), 0.7)), torch.zeros(1, 1, 6, 6))


def test_edge_term_ignores_a_brightness_shift_but_not_a_contrast_change():
    x = torch.rand(1, 1, 32, 32) * 0.5
    assert float(loss.edge_term(x, x + 0.25)) == pytest.approx(0.0, abs=1e-5)  # the Laplacian kernel sums to 0
    assert float(loss.edge_term(x, 0.2 * x)) > 0.05


def test_perceptual_term_with_identity_features_is_the_mean_squared_error():
    x, y = torch.full((1, 1, 4, 4), 0.25), torch.full((1, 1, 4, 4), 0.75)
    assert float(loss.perceptual_term(x, y, lambda t: t)) == pytest.approx(0.25)
    assert float(loss.perceptual_term(x, y, lambda t: 2 * t)) == pytest.approx(1.0)


def test_fusion_loss_is_the_weighted_sum_and_main_loss_averages_the_two_references():
    backbone = model.build_backbone(model.model_config(**REDUCED))
    lf = loss.FusionLoss(1.0, 2.0, 3.0, features=loss.relu2_2(backbone))
    p, r = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    backbone.requires_grad_(False)
    t = lf.terms(p, r)
    assert float(t["total"]) == pytest.approx(float(t["ssim"] + 2 * t["perceptual"] + 3 * t["edge"]), rel=1e-6)
    main = loss.MainLoss(loss.relu2_2(backbone))
    a, b = main.lf.terms(p, r), main.lf.terms(p, 1 - r)
    assert float(main.fused_terms(p, r, 1 - r)["total"]) == pytest.approx(0.5 * float(a["total"] + b["total"]), rel=1e-6)
    with pytest.raises(ValueError, match="perceptual"):
        loss.FusionLoss(w_perceptual=1.0)


# --------------------------------------------------------------------------- attention metrics

def test_attention_metrics_known_answers():
    label = torch.zeros(1, 1, 4, 4)
    label[..., :2, :] = 1
    assert experiment.mae(label, label) == 0 and experiment.iou(label, label) == 1
    assert experiment.max_f_measure(label, label) == pytest.approx(1.0)
    half = torch.zeros(1, 1, 4, 4)
    half[..., :1, :] = 1  # half of the target found, nothing else
    assert experiment.iou(half, label) == pytest.approx(0.5)
    assert experiment.mae(half, label) == pytest.approx(4 / 16)
    # P = 1, R = ½: F = 1.3 · ½ / (0.3 + ½)
    assert experiment.max_f_measure(half, label) == pytest.approx(1.3 * 0.5 / 0.8)


# --------------------------------------------------------------------------- data, splits, methods

def test_attention_split_is_the_seeded_held_out_five_and_the_rest(data_root):
    stems = [p.stem for p in data.list_pairs("tno_masks20")]
    test = [p.stem for p in data.load_split("savf", "attention_test")]
    trained = [p.stem for p in data.load_split("savf", "attention_train")]
    assert set(test) == set(random.Random(0).sample(stems, 5))
    assert len(trained) == 15 and set(trained) | set(test) == set(stems)


def test_tno_test_split_excludes_every_attention_training_scene(data_root):
    masks = {data.pixel_hash(p.ir) for p in data.list_pairs("tno_masks20")}
    tests = data.load_split("savf", "test_tno")
    assert len(tests) == 22 and not masks & {data.pixel_hash(p.ir) for p in tests}


def test_masks_are_binary_and_sized_like_their_ir_image(data_root):
    pair = data.load_split("savf", "attention_train")[0]
    mask = train.read_mask(pair)
    assert mask.shape == data.read_grey(pair.ir).shape and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert 0 < float(mask.mean()) < 0.5  # salient targets, not the whole image


def test_flips_triple_the_set():
    x = torch.arange(8.0).view(1, 1, 2, 4)
    tripled = train.flips(x)
    assert tripled.shape == (3, 1, 2, 4) and torch.equal(tripled[1], x[0].flip(-1)) and torch.equal(tripled[2], x[0].flip(-2))


def _saved(tmp_path, attention: bool):
    net = model.SAVFNet(attention=attention, backbone_source="untrained (test)", **REDUCED)
    path = tmp_path / f"net_{attention}.pt"
    torch.save(weights_state(net.state_dict(), "SAVFNet", net.config), path)
    return path


def test_both_methods_are_registered_and_fuse_a_real_pair(tmp_path, data_root):
    assert {"savf", "savf_noatt"} <= set(methods.method_names())
    images = data.load_pair(data.load_split("savf", "test_tno")[0])
    ir, vis = images.ir[..., :50, :70], images.vis[..., :50, :70]
    for name, attention in (("savf", True), ("savf_noatt", False)):
        fused = methods.build_method(name, weights=_saved(tmp_path, attention))(ir, vis)
        assert fused.shape == ir.shape and 0 <= fused.min() and fused.max() <= 1


def test_a_method_refuses_the_other_variants_checkpoint_and_a_rule(tmp_path):
    with pytest.raises(ValueError, match="OURS"):
        methods.build_method("savf_noatt", weights=_saved(tmp_path, True))
    with pytest.raises(ValueError, match="rule"):
        methods.build_method("savf", weights=_saved(tmp_path, True), rule="ave")


def test_protocols_and_checkpoint_names():
    assert {"quick", "reduced", "paper"} <= set(train.PROTOCOLS)
    assert train.checkpoint_name("reduced", "base", 0) == model.DEFAULT_FILES["savf"]
    assert train.checkpoint_name("reduced", "noatt", 0) == model.DEFAULT_FILES["savf_noatt"]
    assert train.PROTOCOLS["paper"].model == {}  # the paper protocol uses the spec-default widths
    with pytest.raises(ValueError, match="ImageNet"):
        train.train_model("reduced", backbone_weights="vgg16.pth")


@pytest.mark.slow
def test_quick_protocol_trains_both_variants_and_reuses_the_shared_stages(tmp_path):
    checkpoint, history = train.train_model("quick", 0, tmp_path, "base", progress=False)
    assert checkpoint.name == "savf_quick_seed0.pt" and len(history) == 1
    enhance = tmp_path / "savf_quick_enhance_seed0.pt"
    stamp = enhance.stat().st_mtime_ns
    checkpoint, _ = train.train_model("quick", 0, tmp_path, "noatt", progress=False)
    assert checkpoint.name == "savf_quick_noatt_seed0.pt" and enhance.stat().st_mtime_ns == stamp
    found = train.discover(tmp_path, "quick")
    assert [m.variant for m in found] == ["base", "noatt"]
    summary = experiment.attention_summary(experiment.attention_table(found[0], "quick"))
    assert list(summary["predictor"]) == ["savf F_S", "IR intensity"] and summary[["MAE", "IoU"]].le(1).all().all()


def test_engine_scores_a_rule_less_savf_source_and_reads_it_back(tmp_path, data_root):
    from fusion_core import engine
    from fusion_core.train import trained_model

    weights = _saved(tmp_path, False)
    model_ = trained_model(weights, "savf", "noatt", 0, "quick")
    tno = engine.DataSet.split("savf", "test_tno", crop=(48, 64), max_pairs=1)
    sources = experiment.sources([model_], baselines=["LP", "CNN"])  # CNN has no implementation: left out
    assert [s.key for s in sources] == ["noatt_seed0", "lp"] and sources[0].rules is None
    first = engine.collect(sources, [tno], [None], metrics=["EN", "SSIM"], convention="savf", out=tmp_path / "r",
                           compute=True, verify=None)
    assert len(first.rows) == 2 and not first.missing
    again = engine.collect(sources, [tno], [None], metrics=["EN", "SSIM"], convention="savf", out=tmp_path / "r",
                           compute=False, verify="sample")
    assert again.ok and len(again.checks) == 2
    table = experiment.metrics_table(again.rows)
    assert set(table["method"]) == {"OURS (savf_noatt)", "lp"} and (table["pairs"] == 1).all()
    vifb = engine.DataSet.split("savf", "test_vifb", crop=(48, 64), max_pairs=1)
    refs = engine.collect([experiment.vifb_reference_source("IFCNN")], [vifb], [None], metrics=["EN"],
                          convention="savf", out=tmp_path / "r", compute=True, verify=None)
    assert refs.rows["source"].tolist() == ["vifb_IFCNN"] and 0 < refs.rows["EN"].iloc[0] <= 8


def test_target_contrast_known_answer():
    label = torch.zeros(1, 1, 4, 4)
    label[..., 0, 0] = 1
    image = torch.full((1, 1, 4, 4), 0.25)
    image[..., 0, 0] = 0.75
    assert experiment.target_contrast(image, label) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="label"):
        experiment.target_contrast(image, torch.zeros(1, 1, 4, 4))


# --------------------------------------------------------------------------- ablations (notebook 05a)

def test_main_network_ablation_switches_remove_exactly_their_parameters():
    from fusion_core.papers.savf import ablation

    full = model.SAVFNet(attention=True, **REDUCED)
    counts = {row: count_parameters(model.SAVFNet(attention=True, **REDUCED, **ablation.ROWS[row].model))
              for row in ("nocam", "noglobal", "noenhance", "nolateral")}
    w, enh, tap = REDUCED["width"], 2 * full.enhance.channels, REDUCED["tap_ch"]
    widths = model.backbone_widths(model.model_config(**REDUCED))
    assert count_parameters(full) - counts["nocam"] == 2 * (w // 16) * w + w // 16 + w  # squeeze + excite
    assert count_parameters(full) - counts["noglobal"] == sum(c * tap + tap for c in widths[2:]) + 3 * tap * 9 * w
    assert count_parameters(full) - counts["noenhance"] == (enh * w + w) + w * w * 9 + (enh * w + w)  # enh_in, stem, lateral
    assert count_parameters(full) - counts["nolateral"] == (2 * w * w + w) + (enh * w + w)
    for row, settings in ((r, ablation.ROWS[r].model) for r in counts):  # the frozen columns are untouched
        net = model.SAVFNet(attention=True, **REDUCED, **settings)
        assert model.parameter_summary(net)["attention"] == model.parameter_summary(full)["attention"], row
        ir = torch.rand(1, 1, 32, 32)
        assert net(ir, ir.flip(-1)).shape == (1, 1, 32, 32)


def test_ablation_rows_label_the_extensions_and_need_the_ours_plus_columns(tmp_path):
    from fusion_core.papers.savf import ablation

    assert [r.status for r in ablation.ROWS.values()].count(ablation.EXTENSION) == 8
    assert ablation.ROWS["attbce"].attention_bce == 1.0 and not ablation.ROWS["attbce"].model
    assert ablation.ROWS["nocam"].status == ablation.MENTIONED
    assert ablation.ROWS["rerun"].status == ablation.NOISE and ablation.ROWS["rerun"].seed_offset == 1
    with pytest.raises(FileNotFoundError, match="train it first"):
        ablation.train_row("nocam", "quick", 0, tmp_path, progress=False)
    with pytest.raises(ValueError, match="not one of"):
        ablation.train_row("base", "quick", 0, tmp_path, progress=False)
    assert "--row nocam --protocol reduced" in ablation.command("nocam")


@pytest.mark.slow
def test_an_ablation_row_trains_its_main_network_on_the_frozen_ours_plus_columns(tmp_path):
    import json

    from fusion_core.papers.savf import ablation

    plus, _ = train.train_model("quick", 0, tmp_path, "base", progress=False)
    row, history = ablation.train_row("noedge", "quick", 0, tmp_path, progress=False)
    assert row.name == "savf_quick_noedge_seed0.pt" and len(history) == 1
    a, b = model.load_checkpoint(plus), model.load_checkpoint(row)
    for part in ("backbone", "enhance", "attention"):
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, part).state_dict().values(),
                                                       getattr(b, part).state_dict().values())), part
    manifest = json.loads(row.with_suffix(".json").read_text())
    assert manifest["loss"]["w_edge"] == 0.0 and manifest["loss"]["w_perceptual"] == 1.0
    assert [m.key for m in ablation.discover("quick", ("base", "noatt", "noedge"), out=tmp_path)] == ["base_seed0", "noedge_seed0"]


def test_paired_effects_measure_each_row_against_ours_plus_and_the_rerun_noise():
    import pandas as pd

    from fusion_core.papers.savf import ablation

    stems = ["1", "2", "3", "4"]
    base = [1.0, 2.0, 3.0, 4.0]
    frames = [pd.DataFrame({"source": f"{row}_seed0", "role": "test_tno", "stem": stems,
                            "EN": [b + shift + k * jitter for k, b in enumerate(base)]})
              for row, shift, jitter in (("base", 0.0, 0.0), ("nocam", 0.5, 0.1), ("rerun", -0.1, 0.0),
                                         ("noedge", 0.05, 0.0))]
    effects = ablation.paired_effects(pd.concat(frames), ["EN"]).set_index("row")
    assert effects.loc["nocam", "mean_diff"] == pytest.approx(0.65)  # 0.5 + mean(0, .1, .2, .3)
    assert effects.loc["nocam", "pairs_above"] == 4 and effects.loc["nocam", "pairs"] == 4
    assert effects.loc["nocam", "d_z"] == pytest.approx(0.65 / pd.Series([0.5, 0.6, 0.7, 0.8]).std())
    assert effects.loc["nocam", "noise"] == pytest.approx(-0.1)
    assert bool(effects.loc["nocam", "beyond_noise"]) and not bool(effects.loc["noedge", "beyond_noise"])
    assert "base" not in effects.index and list(effects.index) == ["nocam", "noedge", "rerun"]  # ROWS order
