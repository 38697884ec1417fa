"""DIDFuse experiment driver: model discovery, resumable raw files, ablation variants, Tables III–V."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from fusion_core import data, report
from fusion_core.papers.didfuse.model import DIDFuse, load_checkpoint
from fusion_core.papers.didfuse import experiment as exp
from fusion_core.papers.didfuse.model import TABLE3_RULES
from fusion_core.papers.didfuse.train import ABLATIONS

SMALL = ("08", "05")  # two small tno40 pairs (256², 280²)


def _fake_checkpoint(folder, name, epochs_done, epochs=12):
    (folder / f"{name}.pt").write_bytes(name.encode())
    (folder / f"{name}.json").write_text(json.dumps({"epochs_done": epochs_done, "epochs": epochs}))


def _tiny_source(key="full_seed7", seed=7, variant="full", **config):
    torch.manual_seed(seed)
    model = DIDFuse(**config).eval()
    return exp._net_source(key, variant, seed, f"sum{seed}", lambda: model, None)


@pytest.fixture
def small_pairs(data_root, monkeypatch):
    """Two small TNO pairs, 64² top-left crops, for every split role."""
    by_stem = {p.stem: p for p in data.load_split(exp.PAPER, "test_tno")}
    pairs = [by_stem[s] for s in SMALL]
    monkeypatch.setattr(exp, "split_pairs", lambda role, profile: pairs)
    monkeypatch.setattr(exp, "load_images", lambda pair, profile: data.PairImages(
        pair, *(t[..., :64, :64] for t in (data.load_pair(pair).ir, data.load_pair(pair).vis))))
    return pairs


# --------------------------------------------------------------------------- discovery

def test_discover_keeps_complete_models_of_the_profile(tmp_path):
    _fake_checkpoint(tmp_path, "didfuse_reduced_seed0", 12)
    _fake_checkpoint(tmp_path, "didfuse_reduced_seed1", 7)  # still training
    _fake_checkpoint(tmp_path, "didfuse_reduced_exp3_seed0", 12)
    _fake_checkpoint(tmp_path, "didfuse_quick_seed0", 2, 2)  # another trainer profile
    (tmp_path / "didfuse_reduced_seed4.pt").write_bytes(b"no manifest")
    found = exp.discover(tmp_path, "reduced")
    assert [(s.key, s.variant, s.seed) for s in found] == [("full_seed0", "full", 0), ("exp3_seed0", "exp3", 0)]
    assert found[0].checksum != found[1].checksum


def test_model_profiles_pick_the_checkpoints_and_their_raw_folder(tmp_path):
    assert exp.settings("eval").train_profile == "reduced"
    assert exp.settings("eval", "full").train_profile == "full"
    paper = exp.settings("full")  # the full notebook profile trains the paper's protocol
    assert paper.train_profile == "full" and paper.epochs is None and len(paper.seeds["exp4"]) == 25
    assert exp.settings("full", "reduced").seeds["exp1"] == (0, 1)
    with pytest.raises(ValueError, match="model profile 'tiny'"):
        exp.settings("eval", "tiny")
    assert "128x128" in exp.substitutes("full")[0] and "64x64" in exp.substitutes("eval")[0]
    _fake_checkpoint(tmp_path, "didfuse_full_seed3", 120, 120)
    _fake_checkpoint(tmp_path, "didfuse_reduced_seed3", 12)
    full, reduced = exp.discover(tmp_path, "full")[0], exp.discover(tmp_path, "reduced")[0]
    assert full.key == reduced.key == "full_seed3"  # same key, separate raw folders: no collision
    assert exp.raw_path(tmp_path, full, "val", "sal+cam") == tmp_path / "raw_full" / "val" / "full_seed3_sal-cam.csv"
    assert exp.raw_path(tmp_path, reduced, "val", "sal+cam") == tmp_path / "raw" / "val" / "full_seed3_sal-cam.csv"


def test_repeats_keep_the_lowest_seeds_of_each_variant(tmp_path):
    for name in ("didfuse_reduced_seed2", "didfuse_reduced_seed0", "didfuse_reduced_seed1",
                 "didfuse_reduced_exp1_seed1", "didfuse_reduced_exp1_seed0"):
        _fake_checkpoint(tmp_path, name, 12)
    found = exp.discover(tmp_path)
    assert [s.key for s in exp.first_seeds(found, 2)] == ["full_seed0", "full_seed1", "exp1_seed0", "exp1_seed1"]
    assert [s.key for s in exp.first_seeds(found, None)] == [s.key for s in found]
    with pytest.raises(ValueError, match="repeats"):
        exp.first_seeds(found, 0)


def test_paper_protocol_trains_the_missing_models_as_one_concurrent_sweep(tmp_path, monkeypatch):
    from fusion_core import sweep

    _fake_checkpoint(tmp_path, "didfuse_full_seed0", 120, 120)  # already trained: not run again
    monkeypatch.setattr(exp, "settings", lambda profile, model_profile=None: exp.Settings(
        "full", None, None, None, None, tmp_path, {v: (0, 1) for v in exp.VARIANTS}))
    seen = {}

    def fake_run(jobs, parallel, threads, logs, echo=print, **kwargs):
        seen.update(jobs=jobs, parallel=parallel)
        for job in jobs:
            job.returncode = 0
        return jobs

    monkeypatch.setattr(sweep, "run_jobs", fake_run)
    models = exp.ensure_models("full", ["full", "exp2"], repeats=2, parallel=4, max_minutes=9)
    assert [j.name for j in seen["jobs"]] == ["full_seed1", "exp2_seed0", "exp2_seed1"] and seen["parallel"] == 4
    argv = seen["jobs"][1].argv
    assert argv[argv.index("--profile") + 1] == "full" and argv[argv.index("--ablation") + 1] == "exp2"
    assert argv[argv.index("--max-minutes") + 1] == "9" and argv[argv.index("--out") + 1] == str(tmp_path)
    assert [m.key for m in models] == ["full_seed0"]  # the fake jobs trained nothing
    monkeypatch.setattr(sweep, "run_jobs", lambda jobs, *a, **k: [setattr(j, "returncode", 1) for j in jobs])
    with pytest.raises(RuntimeError, match="training failed for full_seed1"):
        exp.ensure_models("full", ["full"], repeats=2)

def test_discover_orders_variants_then_seeds(tmp_path):
    for name in ("didfuse_reduced_exp5_seed0", "didfuse_reduced_seed10", "didfuse_reduced_seed2",
                 "didfuse_reduced_exp1_seed0"):
        _fake_checkpoint(tmp_path, name, 12)
    assert [s.key for s in exp.discover(tmp_path)] == ["full_seed2", "full_seed10", "exp1_seed0", "exp5_seed0"]


# --------------------------------------------------------------------------- fusion

def test_fuse_with_rules_equals_fusing_rule_by_rule(data_root):
    pair = data.load_split(exp.PAPER, "test_tno")[7]
    images = data.load_pair(pair)
    ir, vis = images.ir[..., :48, :48], images.vis[..., :48, :48]
    model = _tiny_source().model()
    fused = exp.fuse_with_rules(model, ir, vis, ["sal+cam", "ave", "sum"])
    with torch.no_grad():
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
    fused = exp.fuse_with_rules(loaded, ir, vis, [exp.PAPER_RULE])[exp.PAPER_RULE]
    assert fused.shape == ir.shape and 0 <= float(fused.min()) and float(fused.max()) <= 1


# --------------------------------------------------------------------------- raw files

def test_raw_files_are_written_once_then_reused(tmp_path, small_pairs):
    source = _tiny_source()
    calls = []
    fuse = source.fuse
    source.fuse = lambda images, rules: calls.append(list(rules)) or fuse(images, rules)
    paths = exp.compute_raw(source, "test_tno", ["ave", "sal+cam"], "quick", tmp_path)
    assert [p.name for p in paths] == ["full_seed7_ave.csv", "full_seed7_sal-cam.csv"]
    assert calls == [["ave", "sal+cam"]] * 2  # one encoding per pair serves both rules
    frame = pd.read_csv(paths[1], dtype={"stem": str})
    assert list(frame["stem"]) == list(SMALL) and set(exp.METRICS) <= set(frame.columns)
    exp.compute_raw(source, "test_tno", ["ave", "sal+cam"], "quick", tmp_path)
    assert len(calls) == 2


def test_partial_raw_file_resumes_after_the_last_pair(tmp_path, small_pairs):
    source = _tiny_source()
    path = exp.compute_raw(source, "test_tno", ["ave"], "quick", tmp_path)[0]
    done = pd.read_csv(path, dtype={"stem": str, "checksum": str})
    path.unlink()
    done.iloc[:1].to_csv(path.with_suffix(".partial.csv"), index=False)
    fused = []
    fuse = source.fuse
    source.fuse = lambda images, rules: fused.append(images.pair.stem) or fuse(images, rules)
    exp.compute_raw(source, "test_tno", ["ave"], "quick", tmp_path)
    assert fused == [SMALL[1]]
    assert not path.with_suffix(".partial.csv").exists()
    pd.testing.assert_frame_equal(pd.read_csv(path, dtype={"stem": str, "checksum": str}), done)


def test_raw_file_of_other_weights_is_recomputed(tmp_path, small_pairs):
    old = _tiny_source(seed=7)
    path = exp.compute_raw(old, "test_tno", ["ave"], "quick", tmp_path)[0]
    new = _tiny_source(seed=8, key="full_seed7")  # same name, retrained weights
    assert not exp.is_complete(path, small_pairs, new.checksum)
    exp.compute_raw(new, "test_tno", ["ave"], "quick", tmp_path)
    assert set(pd.read_csv(path, dtype={"checksum": str})["checksum"]) == {new.checksum}


def test_eval_collect_verifies_stored_values(tmp_path, small_pairs):
    source = _tiny_source()
    path = exp.compute_raw(source, "test_tno", ["ave"], "quick", tmp_path)[0]
    raw, checks, missing = exp.collect([source], ["test_tno"], ["ave", "sal"], "eval", tmp_path)
    assert missing == ["raw/test_tno/full_seed7_sal.csv"]
    assert len(raw) == 2 and checks["ok"].all() and list(checks["stem"]) == ["08"]  # the smaller pair
    frame = pd.read_csv(path, dtype={"stem": str, "checksum": str})
    frame.loc[frame["stem"] == "08", "SD"] *= 1.01
    frame.to_csv(path, index=False)
    _, checks, _ = exp.collect([source], ["test_tno"], ["ave"], "eval", tmp_path)
    assert not checks["ok"].any()


# --------------------------------------------------------------------------- tables

def _raw_rows(source, variant, seed, rule, role, values):
    return [{"source": source, "variant": variant, "seed": seed, "rule": rule, "role": role, "stem": "01",
             **dict(zip(exp.METRICS, values))}]


def test_table5_puts_ours_next_to_reported_didfuse():
    reported = report.load_reported(exp.PAPER)
    paper_tno = reported[(reported["table"] == "V") & (reported["dataset"] == "TNO") & (reported["method"] == "DIDFuse")]
    values = paper_tno.set_index("metric").loc[exp.METRICS, "value"].tolist()
    rows = (_raw_rows("full_seed0", "full", 0, "sal+cam", "test_tno", values)
            + _raw_rows("full_seed1", "full", 1, "sal+cam", "test_tno", values)
            + _raw_rows("full_seed0", "full", 0, "sum", "test_tno", [2.0] * 6)
            + _raw_rows("tif", "tif", -1, "-", "test_tno", [1.0] * 6))
    table = exp.table5(pd.DataFrame(rows), reported)
    with_sum = table[(table["dataset"] == "TNO") & (table["method"] == "DIDFuse ours + sum")]
    assert with_sum["ours_mean"].eq(2.0).all() and with_sum["reported"].isna().all()
    assert with_sum["ours_note"].str.contains("sum").all()
    ours = table[(table["dataset"] == "TNO") & (table["method"] == "DIDFuse")]
    assert (ours["delta_pct"].abs() < 1e-9).all() and (ours["n"] == 2).all()
    assert table[(table["method"] == "TSIFVS") & (table["dataset"] == "TNO")]["ours_mean"].eq(1.0).all()
    assert set(table[table["dataset"] == "NIR-Forest"]["ours_note"]) == {"data not available"}
    wide = exp.wide5(table)
    assert wide.loc[wide["dataset"] == "NIR-Field", "DIDFuse (ours)"].eq("data not available").all()


def test_table3_compares_every_rule_with_both_reported_scenes():
    reported = report.load_reported(exp.PAPER)
    rows = []
    for i, rule in enumerate(TABLE3_RULES):  # later rules larger, as the paper's order mostly is
        rows += _raw_rows("full_seed0", "full", 0, rule, "val", [1.0 + i] * 6)
    table = exp.table3(pd.DataFrame(rows), reported)
    assert len(table.dropna(subset=["ours_mean", "reported"])) == 72
    paper = reported[reported["table"] == "III"].set_index(["dataset", "method", "metric"])["value"]
    expected = sum(int(paper[(scene, "sal+cam", m)] > paper[(scene, rule, m)])  # ours: sal+cam largest everywhere
                   for scene in exp.VAL_SCENES for m in exp.METRICS for rule in TABLE3_RULES[:-1])
    assert exp.signs3(table) == (60, expected)


def test_table4_counts_larger_values_per_experiment():
    reported = report.load_reported(exp.PAPER)
    rows = _raw_rows("full_seed0", "full", 0, "sal+cam", "val", [5.0] * 6)
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
