"""AMFE (paper 004) and MFEIF (its journal model): edge operator, network shapes and parameter counts, fusion
rules, losses, strict loading of the released MFEIF weights, splits and the paper's numbers."""
from __future__ import annotations

import io

import pytest
import torch

from fusion_core import data, methods
from fusion_core.nets.blocks import count_parameters
from fusion_core.papers.amfe import experiment, mfeif, train
from fusion_core.papers.amfe.loss import (Stage1Loss, Stage2Loss, freeze_for_stage2, lsgan_discriminator,
                                          lsgan_generator, ssim_distance)
from fusion_core.papers.amfe.model import (AMFE, AMFEStage1, Decoder, DilatedPath, Discriminator, EdgeAttention,
                                           Extractor, attention_fusion, edge_map, edge_map_mfeif, enhance_edges,
                                           gradient_magnitude)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------- edge operator (Eqs. 1-2)

def test_edge_map_of_a_constant_image_is_zero():
    assert edge_map(torch.full((1, 1, 9, 7), 0.3)).abs().max() == 0


def test_vertical_step_gives_its_height_at_the_step_and_the_max_filter_widens_it_by_one_pixel():
    h = 0.6
    u = torch.zeros(1, 1, 6, 8)
    u[..., 5:] = h  # columns 0-4 dark, 5-7 bright: the forward difference is −h in column 4 only
    g = gradient_magnitude(u)
    assert torch.allclose(g[0, 0, :, 4], torch.full((6,), h)) and g[0, 0, :, [0, 1, 2, 3, 5, 6, 7]].abs().max() == 0
    s = enhance_edges(g)
    edge_columns = (s[0, 0] > 0).any(0).nonzero().flatten().tolist()
    assert edge_columns == [3, 4] and torch.allclose(s[0, 0, :, 3], torch.full((6,), h))


def test_mfeif_edge_map_is_the_3x3_max_of_central_differences():
    u = torch.rand(1, 1, 12, 10, dtype=torch.float64)
    p = torch.nn.functional.pad(u, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (p[..., 1:-1, 2:] - p[..., 1:-1, :-2])
    dy = 0.5 * (p[..., 2:, 1:-1] - p[..., :-2, 1:-1])
    expected = torch.nn.functional.max_pool2d(torch.sqrt(dx ** 2 + dy ** 2), 3, 1, 1)
    assert torch.allclose(edge_map_mfeif(u), expected, atol=1e-12)


# --------------------------------------------------------------------------- network

def test_parameter_counts_match_the_spec():
    net = AMFE()
    assert (count_parameters(net.extractor), count_parameters(net.attention), count_parameters(net.decoder)) == (
        41_776, 196_288, 78_769)
    assert count_parameters(Extractor("sequential")) == 138_832
    # spec §2.7 says 388,097: the same network without the 896 BatchNorm scale/shift parameters
    bn = sum(p.numel() for m in Discriminator().modules() if isinstance(m, torch.nn.BatchNorm2d)
             for p in m.parameters())
    assert count_parameters(Discriminator()) == 388_993 and count_parameters(Discriminator()) - bn == 388_097


def test_extractor_shapes_and_skip_widths_on_an_odd_size():
    features, skips = Extractor()(torch.rand(2, 1, 27, 36))
    assert features.shape == (2, 64, 27, 36) and [s.shape[1] for s in skips] == [32, 48, 64]
    assert torch.equal(skips[2], features)  # path weights (1, 1, 1): f^e = f^{conv,4}


@pytest.mark.parametrize("dilation, support", [(1, 3), (2, 5), (3, 7)])
def test_first_layer_of_each_path_sees_3_5_7_pixels(dilation, support):
    path = DilatedPath(dilation)
    layer = path.layers[0].conv
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
        impulse = torch.zeros(1, 16, 21, 21)
        impulse[..., 10, 10] = 1.0
        response = layer(impulse)[0, 0]
    rows = (response != 0).any(1).nonzero().flatten()
    assert int(rows.max() - rows.min() + 1) == support


def test_fusion_rules_normalise_what_they_say():
    f_ir, f_vis = torch.randn(2, 64, 5, 6), torch.randn(2, 64, 5, 6)
    w_ir, w_vis = torch.randn(2, 64, 5, 6), torch.randn(2, 64, 5, 6)
    channel = attention_fusion(f_ir, f_vis, w_ir, w_vis, "softmax_channel")
    assert torch.allclose(channel.sum(1), torch.ones(2, 5, 6), atol=1e-5)
    same = torch.full_like(f_ir, 3.0)  # equal features: modality weights summing to 1 give the features back
    assert torch.allclose(attention_fusion(same, same, w_ir, w_vis, "softmax_modality"), same, atol=1e-5)
    assert torch.allclose(attention_fusion(f_ir, f_vis, w_ir, w_vis, "none"), f_ir * w_ir + f_vis * w_vis)
    with pytest.raises(ValueError, match="fusion_norm"):
        attention_fusion(f_ir, f_vis, w_ir, w_vis, "max")


@pytest.mark.parametrize("config", [{}, {"skip_order": "literal"}, {"skips": False}, {"extractor_connect": "plain"},
                                    {"att_out": 1, "att_input": "image_plus_edge", "edge_variant": "mfeif_code"},
                                    {"norm": "batch", "extractor_connect": "sequential", "skip_fuse": "mean"}])
def test_every_variant_builds_reconstructs_and_fuses(config):
    net = AMFE(**config).eval()
    x, y = torch.rand(1, 1, 20, 24), torch.rand(1, 1, 20, 24)
    with torch.no_grad():
        assert net(x).shape == x.shape
        for rule in ("softmax_channel", "softmax_modality", "none", "no_attention"):
            assert net.fuse(x, y, rule).shape == x.shape


def test_decoder_without_skips_ignores_them():
    decoder = Decoder()
    f = torch.rand(1, 64, 8, 8)
    skips = [torch.rand(1, c, 8, 8) for c in (32, 48, 64)]
    assert not torch.allclose(decoder(f, skips), decoder(f, None))


def test_attention_rejects_bad_options():
    with pytest.raises(ValueError, match="att_input"):
        EdgeAttention(att_input="image")
    with pytest.raises(ValueError, match="expected N×1×H×W"):
        AMFE()(torch.rand(1, 3, 8, 8))


# --------------------------------------------------------------------------- losses

def test_ssim_distance_is_zero_for_identical_images_and_positive_otherwise():
    x = torch.rand(2, 1, 32, 32)
    assert float(ssim_distance(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(ssim_distance(x, torch.rand(2, 1, 32, 32))) > 0.5


def test_lsgan_terms_on_known_values():
    d = torch.tensor([[0.0], [2.0]])
    assert float(lsgan_generator(d)) == pytest.approx(1.0)  # ((0−1)² + (2−1)²)/2
    assert float(lsgan_discriminator(torch.tensor([[1.0], [3.0]]), d)) == pytest.approx(2.0 + 2.0)


def test_stage1_without_discriminator_is_pixel_plus_gamma_ssim():
    model = AMFEStage1(discriminator=False)
    x = torch.rand(2, 1, 24, 24)
    terms = Stage1Loss(gamma=100.0, lam=0.1)(model, (x,))
    assert torch.allclose(terms["total"], terms["pixel"] + 100.0 * terms["ssim"]) and "adv" not in terms


def test_stage1_generator_term_does_not_move_the_discriminator():
    model = AMFEStage1()
    x = torch.rand(2, 1, 32, 32)
    terms = Stage1Loss()(model, (x,))
    terms["total"].backward()
    with_g = [p.grad.clone() for p in model.disc.parameters()]
    model.zero_grad()
    torch.manual_seed(0)
    rebuilt = model.net.reconstruct(x).detach()
    lsgan_discriminator(model.disc(x), model.disc(rebuilt)).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(with_g, model.disc.parameters()))


def test_stage1_network_gradient_includes_the_adversarial_term():
    x = torch.rand(2, 1, 32, 32)
    grads = []
    for lam in (0.0, 0.1):
        torch.manual_seed(0)
        model = AMFEStage1()
        Stage1Loss(lam=lam)(model, (x,))["total"].backward()
        grads.append(model.net.extractor.stem.conv.weight.grad.clone())
    assert not torch.allclose(grads[0], grads[1])


def test_stage2_trains_only_the_attention():
    model = freeze_for_stage2(AMFE())
    ir, vis = torch.rand(2, 1, 24, 24), torch.rand(2, 1, 24, 24)
    terms = Stage2Loss()(model, (ir, vis))
    terms["total"].backward()
    assert torch.isfinite(terms["total"]) and set(terms) == {"total", "intensity", "edge", "ssim"}
    assert all(p.grad is None for p in model.extractor.parameters()) and all(
        p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is not None for p in model.attention.parameters())


# --------------------------------------------------------------------------- MFEIF with the released weights

@pytest.fixture(scope="module")
def released(data_root):
    path = mfeif.released_weights_path()
    if not path.is_file():
        pytest.skip(f"released MFEIF weights not available: {path}")
    return path


def test_released_weights_load_strictly_every_key_and_shape(released):
    blob = torch.load(released, map_location="cpu", weights_only=True)
    mapped = mfeif.released_state(blob, released)
    ours = mfeif.MFEIF().state_dict()
    assert sum(len(blob[p]) for p in mfeif.RELEASED_PARTS) == len(mapped) == len(ours) == 112
    assert set(mapped) == set(ours) and all(mapped[k].shape == ours[k].shape for k in ours)
    model = mfeif.load_released(released)
    assert count_parameters(model) == 371_140
    flushed, _ = mfeif.flush_subnormal(mapped)  # the released values, subnormals as zeros
    assert torch.equal(model.con.layers[1].conv.weight, flushed["con.layers.1.conv.weight"])
    assert torch.equal(model.ext.paths["c"][0].norm.running_var, blob["ext"]["conv_c1.bn.running_var"])


def test_subnormal_released_weights_are_zeroed_without_changing_the_fused_image(released):
    """6,933 released values are subnormal (x86 computes with them through a microcode assist: MFEIF's fuse ran 3x
    slower): zeroing them leaves every other value as released and the fused image of a real pair the same, bit for
    bit."""
    blob = torch.load(released, map_location="cpu", weights_only=True)
    mapped = mfeif.released_state(blob, released)
    flushed, count = mfeif.flush_subnormal(mapped)
    assert count == 6933
    tiny = torch.finfo(torch.float32).tiny
    for key, value in mapped.items():
        kept = ~((value != 0) & (value.abs() < tiny)) if value.is_floating_point() else torch.ones_like(value).bool()
        assert torch.equal(flushed[key][kept], value[kept]) and (flushed[key][~kept] == 0).all(), key
    raw = mfeif.MFEIF()
    raw.load_state_dict(mapped, strict=True)
    raw.eval()
    pair = data.list_pairs("tno42")[0]
    images = data.load_pair(pair)
    ir, vis = images.ir[:, :1, :128, :160], images.vis[:, :1, :128, :160]  # tno42 stores grey as three equal channels
    with torch.inference_mode():
        assert torch.equal(mfeif.load_released(released).fuse(ir, vis), raw.fuse(ir, vis))


@pytest.mark.parametrize("change", ["drop", "reshape"])
def test_released_weights_with_a_missing_or_misshaped_tensor_are_refused(released, tmp_path, change):
    blob = torch.load(released, map_location="cpu", weights_only=True)
    if change == "drop":
        del blob["att"]["conv_4.bias"]
    else:
        blob["ext"]["conv_b1.conv.weight"] = blob["ext"]["conv_b1.conv.weight"][:, :8]
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(buffer.getvalue())
    with pytest.raises(data.DataError, match="do not fit the MFEIF network"):
        mfeif.load_released(bad)


def test_released_key_names_map_one_to_one():
    assert mfeif.released_key("ext", "conv_b2.bn.running_mean") == "ext.paths.b.1.norm.running_mean"
    assert mfeif.released_key("att", "conv_2.conv_2.weight") == "att.pairs.1.dilated.weight"
    assert mfeif.released_key("con", "conv_4.conv.bias") == "con.layers.3.conv.bias"
    with pytest.raises(KeyError):
        mfeif.released_key("ext", "conv_d1.conv.weight")


def test_to_8bit_saturates_and_rounds_half_to_even_like_cv2():
    values = torch.tensor([-0.1, 0.5 / 255, 1.5 / 255, 2.5 / 255, 1.2])
    assert (mfeif.to_8bit(values) * 255).round().tolist() == [0, 0, 2, 2, 255]


def _crop(images: data.PairImages, size: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    return images.ir[..., :size, :size], images.vis[..., :size, :size]


def test_mfeif_fuses_real_tno37_crops_into_plausible_repeatable_8bit_images(released):
    fuser = methods.build_method("mfeif")
    for stem in ("001", "025"):
        ir, vis = _crop(data.load_pair({p.stem: p for p in data.list_pairs("tno37")}[stem]))
        first, second = fuser(ir, vis), fuser(ir, vis)
        assert torch.equal(first, second) and first.shape == ir.shape
        assert 0 <= float(first.min()) and float(first.max()) <= 1 and torch.equal(first * 255, (first * 255).round())
        cc = [float(torch.corrcoef(torch.stack([first.flatten(), s.flatten()]))[0, 1]) for s in (ir, vis)]
        assert sum(cc) / 2 > 0.4, cc  # a fusion of both sources, not noise (a mis-wired network fails this)


def test_mfeif_rules_differ_and_unknown_rules_are_refused(released):
    model = mfeif.load_released(released)
    ir, vis = torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(model.fuse(ir, vis, "code"), model.fuse(ir, vis, "test_py"))
    with pytest.raises(ValueError, match="unknown mfeif rule"):
        mfeif.build(rule="max")


@pytest.mark.slow
def test_mfeif_full_tno37_pair_and_fuse_cli_on_a_folder(released, tmp_path):
    import shutil

    from fusion_core import cli

    pair = {p.stem: p for p in data.list_pairs("tno37")}["025"]
    for side in ("ir", "vis"):
        (tmp_path / side).mkdir()
        shutil.copy(getattr(pair, side), tmp_path / side / getattr(pair, side).name)
    assert cli.main(["fuse", "--method", "mfeif", "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
                     "--out", str(tmp_path / "out")]) == 0
    written = data.read_grey(tmp_path / "out" / "025.png")
    images = data.load_pair(pair)
    direct = methods.build_method("mfeif")(images.ir, images.vis)
    assert written.shape == images.ir.shape and torch.equal(written, direct)


# --------------------------------------------------------------------------- splits and the paper's numbers

def test_committed_splits_are_what_the_seeded_rule_writes(data_root):
    for role, (_, entries) in train.split_lists().items():
        assert data.load_image_list("amfe", role) == entries, role
    trained, held_out = set(data.load_image_list("amfe", "train")), set(data.load_image_list("amfe", "val"))
    assert len(trained) == 200 and len(held_out) == 21 and not trained & held_out


def test_reported_table1_has_five_numbers_per_row_and_the_fifth_is_the_row_maximum_16_times():
    printed = experiment.reported_table1("printed")
    assert printed.shape == (18, 5) and printed.notna().all().all()
    assert int((experiment.best_of_row(printed) == "DD").sum()) == 16  # spec §6: why v5 reads as Ours
    spec = experiment.reported_table1("spec")
    assert list(spec.columns) == ["CBF", "GTF", "JSRSD", "FusionGAN", "Ours"]
    assert spec.loc[("Duine", "SCD"), "Ours"] == 1.93 and spec.loc[("Nato", "MI"), "CBF"] == 1.43


# --------------------------------------------------------------------------- training data and discovery

def test_image_crops_pad_small_images_and_repeat_with_the_same_generator():
    images = [torch.randint(0, 256, (1, 40, 50), dtype=torch.uint8), torch.randint(0, 256, (1, 70, 90),
                                                                                       dtype=torch.uint8)]
    crops = train.ImageCrops([train._pad_to(i, 64).to(torch.uint8) for i in images], 64, 6, ["a", "b"])
    first = crops.take(torch.arange(6), torch.Generator().manual_seed(3))[0]
    again = crops.take(torch.arange(6), torch.Generator().manual_seed(3))[0]
    assert first.shape == (6, 1, 64, 64) and torch.equal(first, again) and len(crops) == 6
    assert 0 <= float(first.min()) and float(first.max()) <= 1
    padded = train._pad_to(images[0], 64)
    assert padded.shape == (1, 64, 64) and torch.equal(padded[:, :40, :50].to(torch.uint8), images[0])


def test_pair_crops_keep_ir_and_vis_registered_under_flips():
    ir = train._pad_to(torch.rand(1, 30, 40), 32)
    crops = train.PairCrops([ir], [ir.clone()], 32, 8, ["p"])
    a, b = crops.take(torch.arange(8), torch.Generator().manual_seed(0))
    assert a.shape == (8, 1, 32, 32) and torch.equal(a, b)


def test_discover_finds_complete_stage2_models_only(tmp_path):
    import json

    for name, done in [("amfe_reduced_seed0", 4), ("amfe_reduced_stage1_seed0", 5), ("amfe_reduced_woS_seed1", 4),
                       ("amfe_reduced_nogan_seed0", 2), ("amfe_quick_seed0", 2)]:
        (tmp_path / f"{name}.pt").write_bytes(name.encode())
        protocol = name.split("_")[1]
        (tmp_path / f"{name}.json").write_text(json.dumps({"epochs_done": done, "epochs": 4 if "stage1" not in name
                                                           else 5, "protocol": protocol}))
    found = train.discover(tmp_path, "reduced")
    assert [(m.variant, m.seed) for m in found] == [("base", 0), ("woS", 1)]


def test_table1_averages_frames_per_sequence_and_labels_columns():
    import pandas as pd

    rows = pd.DataFrame([{"source": s, "rule": r, "role": role, "stem": str(k),
                          **{m: v + k for m in experiment.METRICS}}
                         for s, r, v in (("cbf", "-", 1.0), ("mfeif", "code", 2.0))
                         for role in experiment.SEQUENCES for k in (0, 1)])
    table = experiment.table1(rows)
    wide = experiment.wide(table)
    assert wide.shape == (18, 2) and set(table["frames"]) == {2}
    assert wide.loc[("Tree", "SCD"), "MFEIF (released journal weights)"] == 2.5
    compared = experiment.against_paper(table)
    assert compared.loc[("Nato", "MI"), "paper CBF (CBF)"] == 1.43
    assert compared.loc[("Nato", "MI"), "paper Ours (MFEIF (released journal weights))"] == 2.44


def test_fuse_rules_encodes_once_and_agrees_with_fuse_rule_by_rule():
    net = AMFE().eval()
    ir, vis = torch.rand(1, 1, 20, 22), torch.rand(1, 1, 20, 22)
    with torch.no_grad():
        joint = net.fuse_rules(ir, vis, ["softmax_channel", "none", "no_attention"])
        for rule, fused in joint.items():
            assert torch.allclose(fused, net.fuse(ir, vis, rule), atol=1e-6)
    with pytest.raises(ValueError, match="unknown amfe rule"):
        net.fuse_rules(ir, vis, ["max"])


@pytest.mark.slow
def test_fuse_cli_amfe_uses_the_committed_reduced_checkpoint_by_default(data_root, tmp_path):
    import shutil

    from fusion_core import cli
    from fusion_core.papers.amfe.model import DEFAULT_WEIGHTS

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"{DEFAULT_WEIGHTS}: no committed reduced AMFE checkpoint")
    assert train.progress_of(DEFAULT_WEIGHTS) == (8, 8)  # the complete stage-2 run of the reduced protocol
    pair = data.list_pairs("tno_tree")[0]
    for side in ("ir", "vis"):
        (tmp_path / side).mkdir()
        shutil.copy(getattr(pair, side), tmp_path / side / f"{pair.stem}.png")
    assert cli.main(["fuse", "--method", "amfe", "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
                     "--out", str(tmp_path / "out")]) == 0
    written = data.read_grey(tmp_path / "out" / f"{pair.stem}.png")
    assert written.shape == data.load_pair(pair).ir.shape and 0 < float(written.std())


# --------------------------------------------------------------------------- figures, claims and fidelity

def test_busiest_window_finds_the_textured_square():
    image = torch.zeros(1, 1, 100, 120)
    image[..., 30:50, 70:90] = torch.rand(20, 20)  # the only texture: a 20² square at (30, 70)
    top, left, height, width = experiment.busiest_window(image, size=20)
    assert (round(top * 100), round(left * 120), round(height * 100), round(width * 120)) == (30, 70, 20, 20)


def test_busiest_window_is_clipped_to_small_images():
    assert experiment.busiest_window(torch.rand(1, 1, 40, 50), size=64)[2:] == (1.0, 40 / 50)


def test_fig8_stats_use_the_population_variance_per_method_and_metric():
    import numpy as np
    import pandas as pd

    values = [1.0, 2.0, 4.0]
    rows = pd.DataFrame([{"source": "cbf", "rule": "-", "stem": str(k), **{m: v for m in experiment.METRICS}}
                         for k, v in enumerate(values)])
    stats = experiment.fig8_stats(rows)
    assert list(stats["metric"]) == experiment.METRICS and set(stats["method"]) == {"CBF"}
    mi = stats[stats["metric"] == "MI"].iloc[0]
    assert mi["n"] == 3 and mi["mean"] == pytest.approx(7 / 3)
    assert mi["var"] == pytest.approx(np.var(values)) and mi["var"] != pytest.approx(np.var(values, ddof=1))
    assert mi["std"] == pytest.approx(np.sqrt(mi["var"]))


def test_claim_best_counts_rows_where_a_learned_column_beats_both_classical_ones():
    import pandas as pd

    frame = pd.DataFrame({"CBF": [1.0, 2.0, 3.0], "GTF": [2.0, 1.0, 3.0], "AMFE": [3.0, 1.5, 3.5],
                          "MFEIF": [0.5, 2.5, 4.0]})
    claims = experiment.claim_best(frame, "toy").set_index("column")
    assert claims.loc["AMFE", "beats_cbf_gtf"] == 2 and claims.loc["AMFE", "best_of_ours"] == 1
    assert claims.loc["MFEIF", "beats_cbf_gtf"] == 2 and claims.loc["MFEIF", "best_of_ours"] == 2
    assert not claims["holds"].any() and set(claims.index) == {"AMFE", "MFEIF"}


def test_claim_gan_compares_the_common_epochs_and_the_last_one():
    import pandas as pd

    base = pd.DataFrame({"epoch": [1, 2, 3, 4], "recon": [5.0, 3.0, 2.0, 1.0]})
    nogan = pd.DataFrame({"epoch": [1, 2, 3], "recon": [4.0, 3.5, 2.5]})
    claim = experiment.claim_gan({"base": base, "nogan": nogan}).iloc[0]
    assert (claim["epochs_compared"], claim["gan_lower"], claim["last_epoch"]) == (3, 2, 3) and claim["holds"]
    assert not experiment.claim_gan({"base": nogan, "nogan": base}).iloc[0]["holds"]
    assert experiment.claim_gan({"base": base}).iloc[0]["holds"] is None


def test_table1_cells_pair_classical_columns_with_theirs_amfe_with_ours_and_leave_mfeif_out():
    import pandas as pd

    rows = pd.DataFrame([{"source": s, "rule": r, "role": role, "stem": "0", **{m: 1.0 for m in experiment.METRICS}}
                         for s, r in (("cbf", "-"), ("mfeif", "code"), ("amfe_base_seed0", "softmax_channel"))
                         for role in experiment.SEQUENCES])
    cells = experiment.table1_cells(experiment.table1(rows)).set_index(["dataset", "method", "metric"])
    assert len(cells) == 36 and not any(m.startswith("MFEIF") for m in cells.index.get_level_values("method"))
    assert cells.loc[("Nato", "CBF", "MI"), "reported"] == 1.43  # the paper's CBF
    amfe = "AMFE (ours, substitute data) [base_seed0]"
    assert cells.loc[("Nato", amfe, "MI"), "reported"] == 2.44  # the paper's fifth number (Ours)
    assert cells.loc[("Nato", amfe, "MI"), "delta_pct"] == pytest.approx(100 * (1 - 2.44) / 2.44)


def test_claim_table2_reads_the_papers_ordering_and_marks_untrained_rows_owed():
    import pandas as pd

    reported = experiment.report.load_reported("amfe")
    reported = reported[reported["table"] == "2"]
    ours = reported[reported["method"].isin(["Ours", "Ours w/o A"])][experiment.report.KEYS].copy()
    ours["ours_mean"] = [1.0 if m == "Ours" else 0.5 for m in ours["method"]]  # Ours above w/o A everywhere
    table = experiment.report.side_by_side(reported, ours.assign(ours_std=0.0, n=1))
    claims = experiment.claim_table2(table).set_index("ablation")
    assert claims.loc["Ours w/o A", "paper_metrics_above"] == "MI, VIF, Qabf, SCD, SSIM"  # the paper: CC is not
    assert claims.loc["Ours w/o A", "ours_metrics_above"] == ", ".join(experiment.METRICS)
    assert not claims.loc["Ours w/o A", "same_metrics"]  # CC: the paper's w/o A is above Ours, ours is not
    assert claims.loc["Ours w/o D", "ours_metrics_above"] == "not trained (owed)"
    assert pd.isna(claims.loc["Ours w/o S", "same_metrics"])


@pytest.mark.slow
def test_comparison_figure_shows_every_run_method_and_labels_the_missing_ones(data_root):
    models = train.discover(train.CHECKPOINT_DIR, "reduced")
    fig = experiment.comparison_figure("fig4", models, "quick")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:4] == ["IR", "VIS", "CBF", "GTF"] and titles[4:7] == ["JSRSD", "FusionGAN", "DDcGAN"]
    assert titles[7].startswith("MFEIF") and titles[8].startswith("AMFE") and len(titles) == 9
    tiles = [ax for ax in fig.axes if ax.get_title() in experiment.NOT_BUILT]
    assert all(not ax.images and ax.texts for ax in tiles)  # labelled grey tiles, never a stand-in image
    insets = [sub for ax in fig.axes for sub in ax.child_axes if sub.images]  # zooms are inset (child) axes
    assert len(insets) == 2 * 6  # two zoomed boxes on each of the six image panels


def test_fig6_pairs_base_and_nogan_of_the_same_seed_only():
    from pathlib import Path

    from fusion_core.papers.amfe import experiment as exp
    from fusion_core.train import TrainedModel

    def model(variant, seed):
        return TrainedModel(Path(f"{variant}_{seed}.pt"), "amfe", variant, seed, "reduced", "0" * 16)

    assert exp.gan_models([model("base", 0), model("woD", 0)]) == {}
    assert exp.gan_models([model("base", 0), model("nogan", 1)]) == {}  # different seeds are not a comparison
    pair = exp.gan_models([model("base", 1), model("nogan", 1), model("base", 2), model("nogan", 2)])
    assert [(v, m.seed) for v, m in pair.items()] == [("nogan", 1), ("base", 1)]
    with pytest.raises(ValueError, match="base and nogan models of one seed"):
        exp.fig6([model("base", 0)], "quick")
