"""Raw-results engine: file layout, resume after an interrupt, stale checksums, one verification policy."""
from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from fusion_core import data, engine

METRICS = ["EN", "SD"]
CONVENTION = "didfuse"
SMALL = ("08", "05")  # two small tno40 pairs (256², 280²); 08 is the smaller


@pytest.fixture
def tno(data_root):
    """Two small tno40 pairs, 48² top-left crops."""
    by_stem = {p.stem: p for p in data.list_pairs("tno40")}
    return engine.DataSet("tno40", tuple(by_stem[s] for s in SMALL), crop=(48, 48))


def _collect(sources, tno, out, **kwargs):
    kwargs.setdefault("compute", True)
    return engine.collect(sources, [tno], [None], metrics=METRICS, convention=CONVENTION, out=out, **kwargs)


def test_raw_path_layout(tmp_path):
    source = engine.Source("base_seed0", "didfuse", "abc", fuse=None, rules=("sal+cam",), raw_dir="raw_paper")
    assert engine.raw_path(tmp_path, source, "val", "sal+cam") == tmp_path / "raw_paper" / "val" / "base_seed0_sal-cam.csv"
    classical = engine.Source("tif", "tif", "tif", fuse=None)
    assert engine.raw_path(tmp_path, classical, "tno40", None) == tmp_path / "raw" / "tno40" / "tif.csv"


def test_classical_source_rows(tno, tmp_path):
    source = engine.method_source("average")
    assert (source.key, source.checksum, source.rules) == ("average", "average", None)
    result = _collect([source], tno, tmp_path)
    assert list(result.rows.columns) == ["source", "rule", "role", "dataset", "stem", *METRICS, "checksum", "convention"]
    assert list(result.rows["stem"]) == list(SMALL) and set(result.rows["rule"]) == {"-"}
    assert result.missing == [] and result.checks.empty and result.ok


def test_rows_match_fuse_and_score(tno, tmp_path):
    """The engine's value is the one :func:`fusion_core.evaluate.fuse_and_score` gives (8-bit fused image)."""
    from fusion_core import evaluate

    rows = _collect([engine.method_source("average")], tno, tmp_path).rows
    direct = evaluate.fuse_and_score("average", tno.pairs, CONVENTION, METRICS, crop=tno.crop, progress=False)
    assert rows[METRICS].values.tolist() == direct[METRICS].values.tolist()


def test_learned_source_has_its_weights_checksum():
    from fusion_core.papers.res2netfuse.model import DEFAULT_WEIGHTS
    from fusion_core.train import weights_checksum

    if not DEFAULT_WEIGHTS.is_file():
        pytest.skip(f"{DEFAULT_WEIGHTS} not committed")
    source = engine.method_source("res2netfuse", rules=["l1"])
    assert source.checksum == weights_checksum(DEFAULT_WEIGHTS) and source.rules == ("l1",)
    with pytest.raises(ValueError, match="rules \\['add'\\] not among"):
        source.wanted(["add"])


def test_resume_after_interrupt_loses_no_finished_pair(tno, tmp_path):
    calls = []
    average = engine.method_source("average")

    def interrupted(images, rules):
        calls.append(images.pair.stem)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return average.fuse(images, rules)

    source = dataclasses.replace(average, fuse=interrupted)
    with pytest.raises(KeyboardInterrupt):
        engine.compute(source, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)
    path = engine.raw_path(tmp_path, source, "tno40", None)
    assert not path.exists() and list(engine.read_raw(engine.partial_path(path))["stem"]) == [SMALL[0]]
    resumed = dataclasses.replace(average, fuse=lambda images, rules: (calls.append(images.pair.stem),
                                                                         average.fuse(images, rules))[1])
    engine.compute(resumed, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)
    assert calls == [SMALL[0], SMALL[1], SMALL[1]]  # the finished pair is not fused again
    assert list(engine.read_raw(path)["stem"]) == list(SMALL) and not engine.partial_path(path).exists()


def test_complete_file_is_left_untouched(tno, tmp_path):
    source = engine.method_source("average")
    path = engine.compute(source, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)[0]
    before = path.stat().st_mtime_ns
    never = dataclasses.replace(source, fuse=lambda images, rules: pytest.fail("a complete file was recomputed"))
    engine.compute(never, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)
    assert path.stat().st_mtime_ns == before


def test_stale_checksum_is_recomputed(tno, tmp_path):
    source = engine.method_source("average")
    path = engine.compute(source, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)[0]
    retrained = dataclasses.replace(source, checksum="retrained")
    assert not engine.is_complete(path, tno.pairs, "retrained")
    assert _collect([retrained], tno, tmp_path, compute=False).missing == ["raw/tno40/average.csv"]
    engine.compute(retrained, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)
    assert set(engine.read_raw(path)["checksum"]) == {"retrained"}


def test_another_convention_or_a_missing_metric_column_is_recomputed(tno, tmp_path):
    source = engine.method_source("average")
    path = engine.compute(source, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)[0]
    column_centred = engine.read_raw(path)["SD"]
    assert engine.is_complete(path, tno.pairs, "average", METRICS, CONVENTION)
    assert not engine.is_complete(path, tno.pairs, "average", METRICS, "didfuse_spec")
    assert not engine.is_complete(path, tno.pairs, "average", [*METRICS, "SF"], CONVENTION)
    engine.compute(source, tno, [None], metrics=["EN", "SD"], convention="didfuse_spec", out=tmp_path)
    rescored = engine.read_raw(path)
    assert set(rescored["convention"]) == {"didfuse_spec"}
    assert (rescored["SD"] != column_centred).all()  # didfuse_spec centres SD on the global mean
    legacy = rescored.drop(columns="convention")  # files written before the column existed are taken as they are
    engine.write_csv(path, legacy)
    assert engine.is_complete(path, tno.pairs, "average", METRICS, CONVENTION)


def test_partial_rows_of_other_weights_are_dropped(tno, tmp_path):
    source = engine.method_source("average")
    path = engine.raw_path(tmp_path, source, "tno40", None)
    stale = {"source": "average", "rule": "-", "role": "tno40", "dataset": "tno40", "stem": SMALL[0], "EN": 0.0,
             "SD": 0.0, "checksum": "old"}
    engine.write_csv(engine.partial_path(path), pd.DataFrame([stale]))
    engine.compute(source, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)
    assert (engine.read_raw(path)["EN"] > 0).all()


def test_verification_passes_on_untouched_files_and_samples_the_smallest_pair(tno, tmp_path):
    source = engine.method_source("average")
    _collect([source], tno, tmp_path)
    result = _collect([source], tno, tmp_path, compute=False, verify="sample")
    assert list(result.checks.columns) == engine.CHECK_COLUMNS
    assert list(result.checks["stem"]) == ["08"] and result.ok and result.checks["max_rel_diff"].max() == 0.0
    assert len(_collect([source], tno, tmp_path, compute=False, verify="all").checks) == 2


def test_verification_detects_a_changed_stored_value(tno, tmp_path):
    source = engine.method_source("average")
    path = engine.compute(source, tno, [None], metrics=METRICS, convention=CONVENTION, out=tmp_path)[0]
    frame = engine.read_raw(path)
    frame.loc[frame["stem"] == "08", "SD"] *= 1 + 3 * engine.VERIFY_RTOL
    engine.write_csv(path, frame)
    result = _collect([source], tno, tmp_path, compute=False, verify="sample")
    assert not result.ok and result.checks["max_rel_diff"].iloc[0] == pytest.approx(3 * engine.VERIFY_RTOL / (1 + 3 * engine.VERIFY_RTOL), rel=1e-6)
    assert "1 NOT within" in result.summary()


def test_missing_files_are_listed_not_computed(tno, tmp_path):
    result = _collect([engine.method_source("average"), engine.method_source("max")], tno, tmp_path, compute=False)
    assert result.missing == ["raw/tno40/average.csv", "raw/tno40/max.csv"] and result.rows.empty
    assert not (tmp_path / "raw").exists()


def test_relative_difference_is_relative_to_the_stored_value():
    assert engine.relative_difference(1.1, 1.0) == pytest.approx(0.1)
    assert engine.relative_difference(0.0, 0.0) == 0.0
    assert engine.relative_difference(1e-12, 0.0) == pytest.approx(1.0)


def test_unknown_verify_policy_is_named(tno):
    with pytest.raises(ValueError, match="verify 'some'"):
        tno.sample("some")


def test_merge_joins_results_in_call_order():
    def result(source, missing, ok=True):
        rows = pd.DataFrame({"source": [source], "EN": [1.0]})
        checks = pd.DataFrame([{"source": source, "role": "r", "rule": "-", "stem": "01", "max_rel_diff": 0.0, "ok": ok}])
        return engine.RawResults(rows, checks, missing)

    empty = engine.RawResults(pd.DataFrame(), pd.DataFrame(columns=engine.CHECK_COLUMNS), [])
    merged = engine.merge([result("b", ["x.csv"]), empty, result("a", [], ok=False)])
    assert list(merged.rows["source"]) == ["b", "a"] and list(merged.checks["source"]) == ["b", "a"]
    assert merged.missing == ["x.csv"] and not merged.ok
    assert engine.merge([empty]).rows.empty and engine.merge([empty]).ok


def test_complete_rows_without_a_checksum_takes_one_checkpoint_only(tmp_path):
    pairs = [data.Pair("s", stem, tmp_path / f"{stem}_ir.png", tmp_path / f"{stem}_vis.png") for stem in ("01", "02")]
    path = tmp_path / "rows.csv"
    pd.DataFrame({"stem": ["01", "02"], "EN": [1.0, 2.0], "checksum": ["aa", "aa"], "convention": "tang"}).to_csv(path, index=False)
    assert len(engine.complete_rows(path, pairs, None, ["EN"], "tang")) == 2
    assert engine.complete_rows(path, pairs, "bb", ["EN"], "tang") is None  # a given checksum must match
    assert engine.complete_rows(path, pairs, None, ["EN"], "vifb") is None  # another convention
    pd.DataFrame({"stem": ["01", "02"], "EN": [1.0, 2.0], "checksum": ["aa", "bb"]}).to_csv(path, index=False)
    assert engine.complete_rows(path, pairs, None, ["EN"]) is None  # rows of two checkpoints mixed
