"""Res2NetFuse (paper 002): architecture, code-faithful loss quirks, fusion rules, training, the method."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from fusion_core import cli, data
from fusion_core.papers.res2netfuse.loss import MSSSIM_WEIGHTS, Res2NetFuseLoss, msssim_code, ssim_code
from fusion_core.nets.blocks import count_parameters
from fusion_core.papers.res2netfuse.model import RULES, Res2NetFuse, postprocess
from fusion_core.papers.res2netfuse.train import ImageStack, train_model


def test_parameter_counts_match_the_spec():
    assert count_parameters(Res2NetFuse()) == 89_617
    assert count_parameters(Res2NetFuse().encoder) == 29_456
    assert count_parameters(Res2NetFuse(share_branch_convs=False)) == 101_217


def test_res2net_block_passes_the_first_group_through_unchanged():
    block = Res2NetFuse().encoder.res2net
    x = torch.rand(1, 64, 8, 8)
    reduced = block.reduce(x)
    seen = {}
    block.expand.register_forward_pre_hook(lambda module, inputs: seen.setdefault("cat", inputs[0]))
    block(x)
    assert torch.equal(seen["cat"][:, :16], reduced[:, :16])  # y1 = x1
    assert not torch.equal(seen["cat"][:, 16:32], reduced[:, 16:32])  # y2 = F(x2)


def test_code_msssim_is_one_for_identical_images_and_has_the_precedence_quirk():
    torch.manual_seed(0)
    x = torch.rand(1, 1, 128, 128) * 255
    y = (x + 25 * torch.randn_like(x)).clamp(0, 255)
    assert msssim_code(x, x).item() == pytest.approx(1.0, abs=1e-6)
    ssims, css = [], []
    a, b = x, y
    for _ in MSSSIM_WEIGHTS:
        s, c = ssim_code(a, b)
        ssims.append((s + 1) / 2), css.append((c + 1) / 2)
        a, b = torch.nn.functional.avg_pool2d(a, 2), torch.nn.functional.avg_pool2d(b, 2)
    w = MSSSIM_WEIGHTS
    quirk = np.prod([css[i].item() ** w[i] for i in range(4)]) * ssims[4].item() ** (4 * w[4])
    textbook = np.prod([css[i].item() ** w[i] for i in range(4)]) * ssims[4].item() ** w[4]
    assert msssim_code(x, y).item() == pytest.approx(quirk, rel=1e-5)
    assert abs(quirk - textbook) > 1e-4  # the quirk is a different number


def test_code_ssim_guesses_the_dynamic_range_from_its_first_argument():
    torch.manual_seed(1)
    # Small variances: the stabilising C2 = (0.03 L)^2 decides, so the guessed L shows.
    x = 60 + 2 * torch.randn(1, 1, 32, 32)  # max ≤ 128 → L = 1
    y = x + 70 + torch.randn_like(x)  # max > 128 → L = 255
    # Real SSIM is symmetric; the code's range guess makes it depend on the argument order.
    assert abs(ssim_code(x, y)[0].item() - ssim_code(y, x)[0].item()) > 0.05
    # With L guessed consistently it is scale-invariant: SSIM(x, y; L=1) = SSIM(255x, 255y; L=255).
    a, b = x / 120, (x + torch.randn_like(x)) / 120  # a ≤ 1 (L = 1); 255·a reaches past 128 (L = 255)
    assert float(a.max()) <= 1 and float((a * 255).max()) > 128
    assert ssim_code(a, b)[0].item() == pytest.approx(ssim_code(a * 255, b * 255)[0].item(), rel=1e-3)


def test_l1_rule_weights_by_activity_and_halves_where_both_are_zero():
    a = torch.zeros(1, 4, 2, 2)
    a[..., 0, 0] = 3.0
    b = torch.zeros(1, 4, 2, 2)
    b[..., 0, 0] = 1.0
    fused = RULES["l1"](a, b)
    assert fused[0, 0, 0, 0].item() == pytest.approx(0.75 * 3 + 0.25 * 1)
    assert torch.equal(fused[..., 1, 1], torch.zeros(1, 4))
    assert torch.equal(RULES["l1"](a, torch.zeros_like(a)), a)


def test_mean_rules_keep_identical_features_and_add_doubles_them():
    phi = torch.rand(1, 8, 5, 5)
    assert torch.allclose(RULES["mean_code"](phi, phi), phi, atol=1e-4)
    assert torch.allclose(RULES["mean_paper"](phi, phi), phi, atol=1e-6)
    assert torch.equal(RULES["add"](phi, phi), 2 * phi)


def test_code_postprocessing_stretches_and_truncates_to_8_bits():
    out = torch.linspace(-3, 7, 100).view(1, 1, 10, 10)
    image = postprocess(out, "code")
    levels = image * 255
    assert torch.equal(levels, torch.floor(levels))
    assert image.min().item() == 0.0 and image.max().item() == pytest.approx(254 / 255)  # truncation never reaches 255
    assert postprocess(out * 100, "clip_round").max().item() == 1.0


def test_loss_terms_and_flags():
    model = Res2NetFuse()
    x = torch.rand(2, 1, 32, 32) * 255
    code, paper = Res2NetFuseLoss("code")(model, (x,)), Res2NetFuseLoss("paper", "ssim")(model, (x,))
    assert code["pixel"].item() == pytest.approx(paper["pixel"].item() / x.numel(), rel=1e-5)
    assert code["total"].item() == pytest.approx(code["pixel"].item() + code["ssim"].item(), rel=1e-6)
    with pytest.raises(ValueError, match="pixel_norm"):
        Res2NetFuseLoss("twice")


def test_single_image_training_is_deterministic_and_learns(tmp_path):
    torch.set_num_threads(1)
    ckpt_a, hist_a = train_model("quick", 0, tmp_path / "a", "single", progress=False)
    ckpt_b, hist_b = train_model("quick", 0, tmp_path / "b", "single", progress=False)
    assert hist_a["total"].tolist() == hist_b["total"].tolist()
    assert hist_a["total"].iloc[-1] < 0.7 * hist_a["total"].iloc[0]
    assert (tmp_path / "a" / "r2n_1_seed0.json").is_file()


def test_cli_time_budget_stops_early_and_the_rerun_finishes(tmp_path):
    from fusion_core.papers.res2netfuse import train as train_res2netfuse
    from fusion_core.train import INCOMPLETE

    torch.set_num_threads(1)
    args = ["--variant", "single", "--protocol", "quick", "--out", str(tmp_path), "--device", "cpu", "--no-progress"]
    assert train_res2netfuse.main(args + ["--max-minutes", "0"]) == INCOMPLETE
    assert json.loads((tmp_path / "r2n_1_seed0.json").read_text())["epochs_done"] == 1
    assert train_res2netfuse.main(args) == 0
    assert json.loads((tmp_path / "r2n_1_seed0.json").read_text())["epochs_done"] == 20


def test_natural_image_specs_and_errors(data_root):
    assert data.natural_image("skimage:camera").shape == (512, 512)
    grey = data.natural_image("flir_train180/001/vis")
    assert grey.dtype == np.uint8 and grey.ndim == 2
    with pytest.raises(data.DataError, match="ships no image"):
        data.natural_image("skimage:nothing_here")
    with pytest.raises(data.DataError, match="is not a pair"):
        data.natural_image("tno40/999/ir")


def test_res2netfuse_method_fuses_from_the_cli(data_root, tmp_path, capsys):
    ckpt, _ = train_model("quick", 0, tmp_path / "ckpt", "single", progress=False)
    pair = data.list_pairs("tno40")[0]
    for side in ("ir", "vis"):
        (tmp_path / side).mkdir()
        image = data.read_grey(getattr(pair, side))[..., :96, :128]
        data.write_image(tmp_path / side / "01.png", image)
    for rule in ("l1", "mean_code"):
        code = cli.main(["fuse", "--method", "res2netfuse", "--weights", str(ckpt), "--rule", rule,
                         "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"), "--out", str(tmp_path / rule)])
        assert code == 0
        fused = data.read_grey(tmp_path / rule / "01.png")
        assert fused.shape == (1, 1, 96, 128) and fused.std() > 0.01
    assert cli.main(["fuse", "--method", "res2netfuse", "--weights", str(tmp_path / "none.pt"), "--ir", str(tmp_path / "ir"),
                     "--vis", str(tmp_path / "vis"), "--out", str(tmp_path / "x")]) == 2
    assert "none.pt: Res2NetFuse checkpoint not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- experiment on the raw-results engine

def _committed(variant="single", seed=0):
    from fusion_core.papers.res2netfuse.train import CHECKPOINT_DIR, discover

    found = [m for m in discover(CHECKPOINT_DIR) if (m.variant, m.seed) == (variant, seed)]
    if not found:
        pytest.skip(f"no committed {variant} seed {seed} checkpoint in {CHECKPOINT_DIR}")
    return found[0]


def test_quick_raw_results_carry_the_paper_labels(data_root, tmp_path):
    from fusion_core.papers.res2netfuse import experiment as exp

    result = exp.raw_results([_committed()], "quick", tmp_path)
    assert sorted(p.name for p in (tmp_path / "raw" / "test").iterdir()) == ["single_seed0_l1.csv",
                                                                             "single_seed0_mean_code.csv"]
    assert set(zip(result.rows["model"], result.rows["strategy"])) == {("Res2NetFuse_1", "l1"),
                                                                       ("Res2NetFuse_1", "mean")}
    assert len(result.rows) == 4 and result.checks.empty


def test_table4_competitors_are_scored_rows_labelled_with_the_paper_row_and_no_rule(data_root, tmp_path):
    from fusion_core import report
    from fusion_core.papers.res2netfuse import experiment as exp

    result = exp.raw_results([_committed()], "quick", tmp_path, competitors=True)
    assert (tmp_path / "raw" / "test" / "dchwt.csv").is_file()
    dchwt = result.rows[result.rows["source"] == "dchwt"]
    assert len(dchwt) == 2 and set(dchwt["model"]) == {"DCHWT"} and dchwt["strategy"].isna().all()
    runs = exp.per_run_means(result.rows, "IV", model_names={"Res2NetFuse_1": "Res2NetFuse"})
    assert set(runs["method"]) == {"DCHWT", "Res2NetFuse/l1", "Res2NetFuse/mean"}
    table = report.side_by_side(report.load_reported(exp.PAPER).query("table == 'IV'"), report.summarise(runs))
    cells = table[(table["method"] == "DCHWT") & table["ours_mean"].notna()]
    assert set(exp.METRICS) <= set(cells["metric"]) and cells["reported"].notna().sum() == len(exp.METRICS)
    mean_en = float(cells.loc[cells["metric"] == "EN", "ours_mean"].iloc[0])
    assert mean_en == pytest.approx(dchwt["EN"].mean(), rel=1e-12)  # the mean over the pairs, not another row's
    assert "dchwt" not in set(exp.raw_results([_committed()], "quick", tmp_path).rows["source"])  # Table II: models only


@pytest.mark.slow
def test_eval_verifies_the_committed_raw_files(data_root):
    from fusion_core import engine
    from fusion_core.papers.res2netfuse import experiment as exp
    from fusion_core.report import results_dir

    result = exp.raw_results([_committed()], "eval", results_dir(exp.PAPER, "eval"), competitors=True)
    assert result.missing == [] and len(result.rows) == 3 * 20  # two rules of the model, and DCHWT
    assert list(zip(result.checks["source"], result.checks["rule"])) == [
        ("single_seed0", "l1"), ("single_seed0", "mean_code"), ("dchwt", engine.NO_RULE)] and result.ok, result.checks


def test_recon_verification_uses_the_engine_table(data_root, tmp_path):
    import pandas as pd

    from fusion_core import engine
    from fusion_core.papers.res2netfuse import experiment as exp
    from fusion_core.report import results_dir

    model = _committed()
    _, checks = exp.recon_raw([model], "eval", results_dir(exp.PAPER, "eval"))
    assert list(checks.columns) == engine.CHECK_COLUMNS and list(checks["stem"]) == ["flir_test40/14"]  # the smallest image
    assert checks["ok"].all(), checks
    stored = pd.read_csv(results_dir(exp.PAPER, "eval") / "raw" / "recon_Res2NetFuse_1_seed0.csv")
    stored.loc[stored["image"] == "flir_test40/14", "PSNR"] *= 1.01
    (tmp_path / "raw").mkdir()
    stored.to_csv(tmp_path / "raw" / "recon_Res2NetFuse_1_seed0.csv", index=False)
    assert not exp.recon_raw([model], "eval", tmp_path)[1]["ok"].any()
