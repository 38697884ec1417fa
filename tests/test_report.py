"""Reported vs ours: joins, Δ%, the fidelity summary's exact keys, sign agreement, Markdown."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from fusion_core import report


def _reported():
    return pd.DataFrame({
        "table": ["T4"] * 4, "dataset": ["tno"] * 4, "method": ["full", "no_base", "full", "no_base"],
        "metric": ["EN", "EN", "SD", "SD"], "value": [7.0, 6.0, 40.0, 42.0],
    })


def _runs():
    rows = []
    for seed, (en_full, en_nb, sd_full, sd_nb) in enumerate([(7.1, 6.5, 41.0, 40.0), (7.3, 6.7, 43.0, 41.0)]):
        rows += [("T4", "tno", "full", "EN", en_full), ("T4", "tno", "no_base", "EN", en_nb),
                 ("T4", "tno", "full", "SD", sd_full), ("T4", "tno", "no_base", "SD", sd_nb)]
    return pd.DataFrame(rows, columns=["table", "dataset", "method", "metric", "value"])


def test_summary_is_mean_and_sample_std_over_runs():
    ours = report.summarise(_runs()).set_index(["method", "metric"])
    assert ours.loc[("full", "EN"), "ours_mean"] == pytest.approx(7.2)
    assert ours.loc[("full", "EN"), "ours_std"] == pytest.approx(0.1414213, rel=1e-5)
    assert ours.loc[("full", "EN"), "n"] == 2


def test_side_by_side_delta_and_fidelity_counts():
    table = report.side_by_side(_reported(), report.summarise(_runs()))
    cell = table.set_index(["method", "metric"]).loc[("full", "SD")]
    assert cell["reported"] == 40.0 and cell["delta_pct"] == pytest.approx(5.0)
    total, agree = report.sign_agreement(table, "full", ["no_base"])
    assert (total, agree) == (2, 1)  # EN keeps the paper's sign, SD flips it
    summary = report.fidelity(table, ["tno40 for TNO-20"], (total, agree))
    # EN full 7.2 (+2.9 %), no_base 6.6 (+10 %), SD full 42 (+5 %), no_base 40.5 (-3.6 %)
    assert summary == {"cells": 4, "within_5pct": 3, "sign_total": 2, "sign_agree": 1,
                       "substitutes": ["tno40 for TNO-20"]}


def test_fidelity_file_has_exactly_the_agreed_keys(tmp_path):
    with pytest.raises(ValueError, match="fidelity keys"):
        report.write_fidelity(tmp_path, {"cells": 1})
    path = report.write_fidelity(tmp_path, {"cells": 1, "within_5pct": 0, "sign_total": 0, "sign_agree": 0,
                                            "substitutes": []})
    assert set(json.loads(path.read_text())) == set(report.FIDELITY_KEYS)


def test_readings_sum_their_own_parts_and_the_scoreboard_lists_the_headline_first(tmp_path):
    def piece(cells, within):
        return {"cells": cells, "within_5pct": within, "sign_total": 0, "sign_agree": 0, "substitutes": ["s"]}

    folder = tmp_path / "paper"
    report.write_fidelity(folder, piece(18, 9), part="01", label="code: sum (headline)")
    report.write_fidelity(folder, piece(72, 3), part="01a")  # a part without a label keeps the headline's
    report.write_fidelity(folder, piece(18, 2), part="01", reading="paper", label="paper: sal+cam")
    report.write_fidelity(folder, piece(72, 3), part="01a", reading="paper")
    headline, other = (json.loads((folder / name).read_text()) for name in ("fidelity.json", "fidelity_paper.json"))
    assert (headline["cells"], headline["within_5pct"], headline["reading"]) == (90, 12, "code: sum (headline)")
    assert (other["cells"], other["within_5pct"], other["reading"]) == (90, 5, "paper: sal+cam")
    board = report.collect_fidelity(tmp_path)
    assert list(board["paper"]) == ["paper", "paper [paper]"] and list(board["within_5pct"]) == [12, 5]
    with pytest.raises(ValueError, match="plain name"):
        report.write_fidelity(folder, piece(1, 0), part="01", reading="../x")


def test_markdown_table_has_header_rule_and_rows(tmp_path):
    csv_path, md_path = report.write_table(pd.DataFrame({"a": [1.23456, float("nan")], "b": ["x", "y"]}), tmp_path,
                                           "t", "Caption", {"profile": "quick"})
    lines = md_path.read_text().splitlines()
    assert lines[0] == "**Caption**" and "profile=quick" in lines[2]
    assert lines[4:] == ["| a | b |", "|---|---|", "| 1.2346 | x |", "|  | y |"]
    assert pd.read_csv(csv_path).shape == (2, 2)


def test_quick_profile_never_writes_into_results():
    assert "results" not in report.results_dir("didfuse", "quick").parts
    with pytest.raises(ValueError, match="unknown profile"):
        report.results_dir("didfuse", "fast")


def test_fidelity_parts_add_up_across_notebooks(tmp_path):
    one = {"cells": 4, "within_5pct": 3, "sign_total": 2, "sign_agree": 1, "substitutes": ["a", "b"]}
    two = {"cells": 6, "within_5pct": 1, "sign_total": 0, "sign_agree": 0, "substitutes": ["b", "c"]}
    report.write_fidelity(tmp_path, one, part="02_main")
    path = report.write_fidelity(tmp_path, two, part="02a_table2")
    assert json.loads(path.read_text()) == {"cells": 10, "within_5pct": 4, "sign_total": 2, "sign_agree": 1,
                                            "substitutes": ["a", "b", "c"]}
    report.write_fidelity(tmp_path, {**two, "cells": 7}, part="02a_table2")  # a rerun replaces its part
    assert json.loads(path.read_text())["cells"] == 11


def test_paired_effects_against_a_given_noise_floor():
    stems = ["a", "b", "c"]
    base = pd.DataFrame({"source": "base_seed0", "role": "test", "stem": stems, "EN": [1.0, 2.0, 3.0]})
    row = base.assign(source="row_seed0", EN=[1.5, 2.5, 2.0])
    effects = report.paired_effects(pd.concat([base, row]), ["EN"], "base", {"row": "the row"},
                                    noise=pd.Series({"EN": 0.1}))
    assert effects.loc[0, "mean_diff"] == pytest.approx(0.0) and effects.loc[0, "pairs_above"] == 2
    assert effects.loc[0, "noise"] == 0.1 and not effects.loc[0, "beyond_noise"]
    effects = report.paired_effects(pd.concat([base, row.assign(EN=[2.0, 3.0, 4.0])]), ["EN"], "base",
                                    {"row": "the row"}, noise=pd.Series({"EN": 0.1}))
    assert effects.loc[0, "mean_diff"] == pytest.approx(1.0) and bool(effects.loc[0, "beyond_noise"])
    assert "noise" not in report.paired_effects(pd.concat([base, row]), ["EN"], "base", {"row": "r"}).columns
