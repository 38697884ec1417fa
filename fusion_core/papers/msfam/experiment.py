"""TEMPLATE experiment: the paper's tables and figures, each declared as sources × data sets × rules.

Replace with one function per table or figure of the paper's experiment section; a notebook cell calls one of
them and writes what it returns. The raw-results engine (:mod:`fusion_core.engine`) fuses and scores each
(source, data set, rule) once, per image, keyed by the weights' checksum, resumable; under the ``eval`` profile it
re-fuses a stated sample and checks it against the committed raw files. Nothing here opens an image file
(:mod:`fusion_core.data`) or trains (``train.py``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import pandas as pd

from ... import data, engine, report
from ...train import TrainedModel
from .model import PAPER

CONVENTION = "tang"  # the metric convention of the paper's tables (python -m fusion_core conventions)
METRICS = ["EN", "SD", "SF", "AG", "MI", "VIF", "Qabf", "SSIM"]  # the columns of the paper's table, its order
RULES = ("ave",)  # the fusion rules the table compares
SUBSTITUTES = ["<what replaces what, one line each: every table, fidelity.json and README.md repeat it>"]


def data_sets(profile: str) -> list[engine.DataSet]:
    """The test pairs: the whole split, or two pairs cropped to 128² under the ``quick`` profile."""
    pairs = tuple(data.load_split(PAPER, "test"))
    if profile == "quick":
        return [engine.DataSet("test", pairs[:2], crop=(128, 128))]
    return [engine.DataSet("test", pairs)]


def sources(models: Sequence[TrainedModel]) -> list[engine.Source]:
    """One source per trained model (``base_seed0``, ...), plus the baselines the table compares with."""
    ours = [dataclasses.replace(engine.method_source(PAPER, weights=m.path, rules=RULES), key=m.key,
                                labels={"variant": m.variant, "seed": m.seed}) for m in models]
    return ours + [engine.method_source("average")]


def main_table(profile: str, models: Sequence[TrainedModel], out: Path, verify: str = "sample") -> pd.DataFrame:
    """Table <N>: mean over the test pairs per training, then mean ± std over trainings, next to the paper."""
    raw = engine.collect(sources(models), data_sets(profile), RULES, metrics=METRICS, convention=CONVENTION,
                         out=out, compute=profile != "eval", verify=verify if profile == "eval" else None)
    long = raw.rows.melt(id_vars=["source", "rule", "stem"], value_vars=METRICS, var_name="metric")
    long = long.assign(table="<N>", dataset="<the dataset label of reported.csv>",
                       method=long["source"].str.replace(r"_seed\d+$", "", regex=True) + "/" + long["rule"])
    per_run = long.groupby(report.KEYS + ["source"], as_index=False)["value"].mean()
    reported = report.load_reported(PAPER)
    return report.side_by_side(reported[reported["table"] == "<N>"], report.summarise(per_run))
