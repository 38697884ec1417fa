"""DIDFuse experiments: its sources on the raw-results engine, ablation variants, Tables III–V, the raw CLI."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest
import torch

from fusion_core import data, engine, report
from fusion_core.papers.didfuse import experiment as exp
from fusion_core.report import results_dir
from fusion_core.papers.didfuse import sources
from fusion_core.papers.didfuse.model import TABLE3_RULES, DIDFuse, load_checkpoint
from fusion_core.papers.didfuse.train import ABLATIONS
from fusion_core.papers.msfam import train as msfam_train
from fusion_core.train import TrainedModel, weights_checksum

NESTFUSE_CHECKPOINT = "nestfuse_reduced_seed0.pt"  # MSFAM's, committed

SMALL = ("08", "05")  # two small tno40 pairs (256², 280²)


def _tiny_source(key="base_seed7", seed=7, variant="base", **config):
    torch.manual_seed(seed)
    model = DIDFuse(**config).eval()
    return sources.network_source(key, f"sum{seed}", lambda: model, {"variant": variant, "seed": seed})


@pytest.fixture
def small_sets(data_root, monkeypatch):
    """Every split role: two small TNO pairs, 64² top-left crops."""
    by_stem = {p.stem: p for p in data.load_split(exp.PAPER, "test_tno")}
    pairs = tuple(by_stem[s] for s in SMALL)
    monkeypatch.setattr(exp, "data_set", lambda role, profile: engine.DataSet(role, pairs, (64, 64)))
    return pairs


# --------------------------------------------------------------------------- fusion

def test_fuse_rules_equals_fusing_rule_by_rule(data_root):
    pair = data.load_split(exp.PAPER, "test_tno")[7]
    images = data.load_pair(pair)
    ir, vis = images.ir[..., :48, :48], images.vis[..., :48, :48]
    torch.manual_seed(7)
    model = DIDFuse().eval()
    with torch.no_grad():
        fused = model.fuse_rules(ir, vis, ["sal+cam", "ave", "sum"])
        for rule, image in fused.items():
            assert torch.allclose(image, model.fuse(ir, vis, rule).clamp(0, 1), atol=1e-6), rule


@pytest.mark.parametrize("variant", sorted(ABLATIONS))
def test_ablation_checkpoint_loads_and_fuses(tmp_path, variant, data_root):
    model = DIDFuse(**ABLATIONS[variant].model)
    path = tmp_path / f"didfuse_reduced_{variant}_seed0.pt"
    torch.save({"model_class": "DIDFuse", "model_config": model.config, "model": model.state_dict()}, path)
    loaded = load_checkpoint(path).eval()
    assert loaded.config == model.config
    images = data.load_pair(data.load_split(exp.PAPER, "val")[0])
    ir, vis = images.ir[..., :40, :40], images.vis[..., :40, :40]
    with torch.no_grad():
        fused = loaded.fuse_rules(ir, vis, [exp.PAPER_RULE])[exp.PAPER_RULE]
    assert fused.shape == ir.shape and 0 <= float(fused.min()) and float(fused.max()) <= 1


# --------------------------------------------------------------------------- sources and raw files

def test_a_model_source_encodes_each_pair_once_for_all_rules(tmp_path, small_sets):
    torch.manual_seed(7)
    model = DIDFuse().eval()
    encodings = []
    model.encoder.register_forward_hook(lambda *_: encodings.append(1))
    source = sources.network_source("base_seed7", "sum7", lambda: model, {"variant": "base", "seed": 7})
    result = exp.raw_results([source], ["test_tno"], ["ave", "sal+cam"], "quick", tmp_path)
    assert len(encodings) == 2 * 2  # IR and VIS of each of the two pairs, once for both rules
    assert sorted(p.name for p in (tmp_path / "raw" / "test_tno").iterdir()) == ["base_seed7_ave.csv",
                                                                                 "base_seed7_sal-cam.csv"]
    assert list(result.rows.columns[:3]) == ["source", "variant", "seed"] and set(result.rows["variant"]) == {"base"}
    exp.raw_results([source], ["test_tno"], ["ave", "sal+cam"], "quick", tmp_path)
    assert len(encodings) == 4  # complete files are read, not recomputed


def test_eval_reads_and_verifies_the_smallest_pair(tmp_path, small_sets):
    source = _tiny_source()
    exp.raw_results([source], ["test_tno"], ["ave"], "quick", tmp_path)
    result = exp.raw_results([source], ["test_tno"], ["ave", "sal"], "eval", tmp_path)
    assert result.missing == ["raw/test_tno/base_seed7_sal.csv"]
    assert len(result.rows) == 2 and result.ok and list(result.checks["stem"]) == ["08"]  # the smaller pair


def test_paper_protocol_models_write_to_their_own_raw_folder(tmp_path):
    model = TrainedModel(tmp_path / "didfuse_paper_seed3.pt", "didfuse", "base", 3, "paper", "abc")
    source = exp.model_sources([model])[0]
    assert engine.raw_path(tmp_path, source, "val", "sal+cam") == tmp_path / "raw_paper" / "val" / "base_seed3_sal-cam.csv"
    reduced = exp.model_sources([dataclasses.replace(model, protocol="reduced")])[0]
    assert engine.raw_path(tmp_path, reduced, "val", "sal+cam") == tmp_path / "raw" / "val" / "base_seed3_sal-cam.csv"


def test_released_images_and_baselines_have_no_rule(data_root):
    refs = exp.reference_sources()
    assert [s.key for s in refs["rule-less"]] == ["released_images", "tif"]
    assert all(s.rules is None and s.labels["seed"] == -1 for s in refs["rule-less"])


# --------------------------------------------------------------------------- tables

def _raw_rows(source, variant, seed, rule, role, values, spec=None):
    """One raw row; ``spec``: the didfuse_spec values of SD, SF, VIF (default: the same as the calibrated ones)."""
    row = dict(zip(exp.METRICS, values))
    spec = dict(zip(exp.SPEC_METRICS, spec or [row["SD"], row["SF"], row["VIF"]]))
    return [{"source": source, "variant": variant, "seed": seed, "rule": rule, "role": role, "stem": "01", **row, **spec}]


def _paper_tno(method="DIDFuse"):
    reported = report.load_reported(exp.PAPER)
    cells = reported[(reported["table"] == "V") & (reported["dataset"] == "TNO") & (reported["method"] == method)]
    return reported, cells.set_index("metric").loc[exp.METRICS, "value"].tolist()


def test_table5_puts_both_readings_next_to_the_papers_didfuse():
    reported, values = _paper_tno()
    rows = (_raw_rows("base_seed0", "base", 0, "sum", "test_tno", values)
            + _raw_rows("base_seed1", "base", 1, "sum", "test_tno", values)
            + _raw_rows("base_seed0", "base", 0, "sal+cam", "test_tno", [2.0] * 6)
            + _raw_rows("tif", "tif", -1, "-", "test_tno", [1.0] * 6))
    table = exp.table5(pd.DataFrame(rows), reported)
    code = table[(table["dataset"] == "TNO") & (table["method"] == "DIDFuse (ours, sum)")]
    assert (code["delta_pct"].abs() < 1e-9).all() and (code["n"] == 2).all()
    assert code["ours_note"].str.contains("code reading").all()
    paper = table[(table["dataset"] == "TNO") & (table["method"] == "DIDFuse (ours, sal+cam)")]
    assert paper["ours_mean"].eq(2.0).all() and (paper["n"] == 1).all()
    assert paper.set_index("metric").loc[exp.METRICS, "reported"].tolist() == values
    assert "DIDFuse" not in set(table["method"])  # the paper's DIDFuse value sits next to each reading instead
    assert table[(table["method"] == "TSIFVS") & (table["dataset"] == "TNO")]["ours_mean"].eq(1.0).all()
    assert set(table[table["dataset"] == "NIR-Forest"]["ours_note"]) == {"data not available"}
    assert set(exp.fidelity_rows(table, "code")["method"]) == {"DIDFuse (ours, sum)", "TSIFVS"}
    wide = exp.wide5(table, reported)
    assert list(wide.columns[-3:-1]) == ["DIDFuse (ours, sum) [code reading]", "DIDFuse (ours, sal+cam) [paper reading]"]
    assert wide.loc[wide["dataset"] == "NIR-Field", "DIDFuse (ours, sum) [code reading]"].eq("data not available").all()
    assert wide.loc[wide["dataset"] == "TNO", "DIDFuse (reported)"].tolist() == values
    assert exp.HEADLINE in exp.READINGS and exp.READINGS[exp.HEADLINE] == "sum"


def test_table5_puts_our_nestfuse_next_to_the_papers_nestfuse_with_its_note():
    reported, values = _paper_tno("Nestfuse")
    rows = (_raw_rows("base_seed0", "base", 0, "sum", "test_tno", [3.0] * 6)
            + _raw_rows(sources.NESTFUSE_KEY, "nestfuse", 0, sources.NESTFUSE_RULE, "test_tno", values))
    table = exp.table5(pd.DataFrame(rows), reported)
    nest = table[(table["dataset"] == "TNO") & (table["method"] == exp.NESTFUSE_ROW)]
    assert len(nest) == 6 and (nest["delta_pct"].abs() < 1e-9).all() and (nest["n"] == 1).all()
    assert set(nest["ours_note"]) == {exp.NESTFUSE_NOTE} and "MSFAM" in exp.NESTFUSE_NOTE
    assert table[(table["dataset"] == "FLIR") & (table["method"] == exp.NESTFUSE_ROW)]["ours_mean"].isna().all()
    assert exp.NESTFUSE_ROW not in set(exp.fidelity_rows(table, "code")["method"])  # not DIDFuse's fidelity
    wide = exp.wide5(table, reported)
    column = f"{exp.NESTFUSE_ROW} (ours: MSFAM's reduced training)"
    assert wide.loc[wide["dataset"] == "TNO", column].tolist() == [f"{v:.3f} (n=1)" for v in values]


def test_nestfuse_rows_come_from_msfams_committed_checkpoint_except_under_quick(monkeypatch, tmp_path):
    source = sources.nestfuse_source()
    assert source is not None and source.key == sources.NESTFUSE_KEY and source.raw_dir == "raw"
    assert tuple(source.rules) == (sources.NESTFUSE_RULE,)
    assert source.checksum == weights_checksum(msfam_train.CHECKPOINT_DIR / NESTFUSE_CHECKPOINT)
    assert exp.nestfuse_raw("quick", tmp_path) is None  # the quick profile's output does not depend on MSFAM's
    monkeypatch.setattr(sources, "nestfuse_source", lambda device="cpu": None)
    assert exp.nestfuse_raw("eval", tmp_path) is None  # a checkout without it: no column, no error


def test_conventions5_counts_cells_within_5_percent_before_and_after_the_calibration():
    reported, values = _paper_tno()
    _, tsifvs = _paper_tno("TSIFVS")
    # sum: calibrated SD/SF/VIF at the paper's value, the spec's reading 10 % above; TSIFVS: the other way round
    spec_up = [1.1 * values[exp.METRICS.index(m)] for m in ("SD", "SF", "VIF")]
    rows = (_raw_rows("base_seed0", "base", 0, "sum", "test_tno", values, spec_up)
            + _raw_rows("tif", "tif", -1, "-", "test_tno", [1.1 * v for v in tsifvs],
                        [tsifvs[exp.METRICS.index(m)] for m in ("SD", "SF", "VIF")]))
    table = exp.conventions5(pd.DataFrame(rows), reported)
    counts = exp.within5(table).set_index(["method", "dataset"])
    assert counts.loc[("DIDFuse (ours, sum)", "TNO"), ["within didfuse_spec", "within didfuse"]].tolist() == [3, 6]
    assert counts.loc[("TSIFVS", "all three"), ["cells", "within didfuse_spec", "within didfuse"]].tolist() == [6, 3, 0]
    per_metric = exp.within5_by_metric(table, "DIDFuse (ours, sum)").set_index("metric")
    assert per_metric.loc["SF"].tolist() == [0, 1] and per_metric.loc["EN"].tolist() == [1, 1]
    with pytest.raises(ValueError, match="raw files hold"):
        exp.run_means(pd.DataFrame(rows), "tang")


def test_table3_compares_every_rule_with_both_reported_scenes():
    reported = report.load_reported(exp.PAPER)
    rows = []
    for i, rule in enumerate(TABLE3_RULES):  # later rules larger, as the paper's order mostly is
        rows += _raw_rows("base_seed0", "base", 0, rule, "val", [1.0 + i] * 6)
    table = exp.table3(pd.DataFrame(rows), reported)
    assert len(table.dropna(subset=["ours_mean", "reported"])) == 72
    paper = reported[reported["table"] == "III"].set_index(["dataset", "method", "metric"])["value"]
    expected = sum(int(paper[(scene, "sal+cam", m)] > paper[(scene, rule, m)])  # ours: sal+cam largest everywhere
                   for scene in exp.VAL_SCENES for m in exp.METRICS for rule in TABLE3_RULES[:-1])
    assert exp.signs3(table) == (60, expected)


def test_table4_counts_larger_values_per_experiment():
    reported = report.load_reported(exp.PAPER)
    rows = _raw_rows("base_seed0", "base", 0, "sal+cam", "val", [5.0] * 6)
    rows += _raw_rows("exp1_seed0", "exp1", 0, "sal+cam", "val", [4.0] * 6)  # loses everywhere
    rows += _raw_rows("exp2_seed0", "exp2", 0, "sal+cam", "val", [6.0, 6.0, 4.0, 4.0, 4.0, 4.0])
    table = exp.table4(pd.DataFrame(rows), reported)
    counts = exp.larger_counts(table).set_index("experiment")
    assert counts.loc["exp1", ["ours_ours_larger", "ours_cells"]].tolist() == [6, 6]
    assert counts.loc["exp2", ["ours_ours_larger", "ours_test_larger"]].tolist() == [4, 2]
    assert counts.loc["exp3", "ours_cells"] == 0  # no ablation model yet: nothing counted
    assert counts["paper_ours_larger"].tolist() == [12, 10, 11, 9, 12]
    total, agree = exp.signs4(table)
    assert total == 24 and agree == 12 + 8  # exp1: all 12 paper cells say Ours > Test; exp2: 8 of 12 agree
    rows += _raw_rows("exp1_seed0", "exp1", 0, "sum", "val", [6.0] * 6)  # the code reading: exp1 wins instead
    code = exp.larger_counts(exp.table4(pd.DataFrame(rows), reported, "sum")).set_index("experiment")
    assert code.loc["exp1", ["ours_ours_larger", "ours_cells", "n_ours"]].tolist() == [0, 6, 0]  # no base row with sum
    assert exp.table4(pd.DataFrame(rows), reported, "sum")["rule"].eq("sum").all()


def test_fig6_keeps_one_series_per_reading():
    rows = []
    for seed in (0, 1):
        rows += _raw_rows(f"base_seed{seed}", "base", seed, "sum", "test_tno", [7.1 + seed] * 6)
        rows += _raw_rows(f"base_seed{seed}", "base", seed, "sal+cam", "test_tno", [6.0] * 6)
    raw = pd.DataFrame(rows)
    runs = pd.concat([exp.fig6_runs(raw, rule) for rule in exp.READINGS.values()], ignore_index=True)
    assert runs.groupby("rule")["seed"].nunique().to_dict() == {"sal+cam": 2, "sum": 2}
    summary = exp.fig6_summary(runs, exp.competitor_lines(report.load_reported(exp.PAPER)))
    tno_en = summary[(summary["dataset"] == "TNO") & (summary["metric"] == "EN")].set_index("reading")
    assert tno_en.loc["code", "ours_mean"] == pytest.approx(7.6) and tno_en.loc["paper", "ours_mean"] == 6.0
    assert tno_en.loc["code", "runs_above_best"] == 2 and tno_en.loc["paper", "runs_above_best"] == 0  # best: 7.025


def test_competitor_lines_exclude_didfuse():
    lines = exp.competitor_lines(report.load_reported(exp.PAPER)).set_index(["dataset", "metric"])
    assert lines.loc[("TNO", "SF"), ["best_method", "second_method"]].tolist() == ["Nestfuse", "U2fusion"]
    assert lines.loc[("NIR-Country", "SD"), "best"] == 46.446


def test_zoom_boxes_add_one_inset_per_box_and_panel():
    import numpy as np

    image = np.linspace(0, 1, 40 * 60).reshape(40, 60)
    fig = report.image_grid([[image, image], [image, image]], ["a", "b"], ["x", "y"])
    report.zoom_boxes(fig, [[(0.1, 0.1, 0.2, 0.2), (0.5, 0.5, 0.3, 0.3, "ul")], [(0.0, 0.0, 0.5, 0.5)]])
    assert [len(ax.child_axes) for ax in fig.axes] == [2, 1, 2, 1]  # column 0 has two boxes, column 1 one
    inset = fig.axes[0].child_axes[0]
    assert np.allclose(inset.images[0].get_array(), image[4:12, 6:18])


def test_cli_without_a_complete_model_says_so(tmp_path, capsys):
    code = exp.main(["raw", "--profile", "quick", "--variant", "exp2", "--seeds", "99", "--out", str(tmp_path)])
    assert code == 2 and "no complete quick 'exp2' model" in capsys.readouterr().err


def test_cli_computes_a_classical_baseline_with_the_old_flag_names(tmp_path, small_sets):
    code = exp.main(["raw", "--profile", "quick", "--variant", "tif", "--sets", "test_tno", "--model-profile",
                     "reduced", "--strategies", "sal+cam", "--out", str(tmp_path)])
    assert code == 0 and len(engine.read_raw(tmp_path / "raw" / "test_tno" / "tif.csv")) == 2


def test_profile_line_records_the_device_it_is_given():
    model = TrainedModel(None, "didfuse", "base", 0, "reduced", "abc")
    line = exp.profile_line("eval", [model], "cuda")
    assert (line["device"], line["trainings"], line["protocol"]) == ("cuda", "base n=1", "reduced")


def test_the_didfuse_method_as_an_engine_source_encodes_each_pair_once(small_sets, monkeypatch):
    """``compare`` runs learned methods through ``engine.method_source``: several rules, one encoding per pair."""
    import fusion_core.methods as methods

    encodings, real_build = [], methods.build_method

    def counting_build(*args, **kwargs):
        fuser = real_build(*args, **kwargs)
        fuser.model.encoder.register_forward_hook(lambda *_: encodings.append(1))
        return fuser

    monkeypatch.setattr(methods, "build_method", counting_build)
    source = engine.method_source("didfuse", rules=["ave", "sum"])
    fused = source.fuse(engine.DataSet("test_tno", small_sets, (48, 48)).images(small_sets[0]), ["ave", "sum"])
    assert sorted(fused) == ["ave", "sum"] and len(encodings) == 2  # IR and VIS once, for both rules
    assert all(0 <= float(f.min()) and float(f.max()) <= 1 for f in fused.values())


def test_eval_reads_the_committed_nestfuse_rows_of_every_test_set(data_root):
    result = exp.nestfuse_raw("eval", results_dir(exp.PAPER, "eval"), verify=None)
    assert result is not None and not result.missing, "results/didfuse/raw/: NestFuse's committed rows incomplete"
    rows = result.rows
    sizes = {role: len(data.load_split(exp.PAPER, role)) for role in exp.TEST_SETS}
    assert rows.groupby("role").size().to_dict() == sizes
    assert (rows["source"] == sources.NESTFUSE_KEY).all()
    assert (rows["checksum"] == weights_checksum(msfam_train.CHECKPOINT_DIR / NESTFUSE_CHECKPOINT)).all()


def test_cli_without_msfams_nestfuse_names_its_training_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sources, "nestfuse_source", lambda device="cpu": None)
    code = exp.main(["raw", "--variant", "nestfuse", "--out", str(tmp_path)])
    assert code == 2 and "msfam.train --protocol reduced --variant nestfuse" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written
