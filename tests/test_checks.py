"""The portable facts nbval-guarded cells print: they must change when a stage breaks."""
import math

import pandas as pd

from fusion_core import checks


def _long(values):
    return pd.DataFrame([{"dataset": d, "metric": m, "ours_mean": v} for d, m, v in values])


def test_structure_counts_finite_values_per_group_and_passes_valid_scores():
    frame = _long([("TNO", "EN", 6.8), ("TNO", "SCD", 1.6), ("FLIR", "EN", 7.1), ("FLIR", "SCD", -0.3)])
    assert checks.structure(frame, ["dataset"], "ours_mean") == (
        "TNO: 2 finite\nFLIR: 2 finite\noutside the possible range: none")


def test_a_nan_score_changes_the_printed_count():
    good = _long([("TNO", "EN", 6.8), ("TNO", "VIF", 0.6)])
    broken = _long([("TNO", "EN", 6.8), ("TNO", "VIF", math.nan)])
    assert checks.structure(good, ["dataset"], "ours_mean") != checks.structure(broken, ["dataset"], "ours_mean")
    assert checks.finite_counts(broken, ["dataset"], "ours_mean") == {"TNO": 1}


def test_a_score_on_the_wrong_scale_is_named():
    # EN of an 8-bit image is at most 8 bits; SCD is a sum of two correlations; Qabf lies in [0, 1]
    frame = _long([("TNO", "EN", 6.8 * 255), ("TNO", "SCD", 2.5), ("TNO", "Qabf", 0.4), ("TNO", "XYZ", -1e9)])
    assert checks.out_of_range(frame, "ours_mean") == ["EN", "SCD"]


def test_a_value_on_its_bound_with_rounding_is_inside_and_a_real_excess_is_not():
    """MI of a constant fused image is 0, computed as -4.4e-16 on one CPU and +0 on another: the check must not
    depend on that sign. 1e-6 below 0 is a real excess (MI cannot be negative) and is still reported."""
    assert checks.out_of_range(_long([("TNO", "MI", -4.440892098500626e-16)]), "ours_mean") == []
    assert checks.out_of_range(_long([("TNO", "MI", -1e-6)]), "ours_mean") == ["MI"]
    assert checks.out_of_range(_long([("TNO", "Qabf", 1.0 + 1e-12)]), "ours_mean") == []


def test_a_wide_frame_is_checked_column_by_column():
    wide = pd.DataFrame({"seed": [0, 1], "EN": [6.9, 7.0], "MSE": [0.01, 1.5]})
    assert checks.out_of_range(wide, "value", metric=None) == ["MSE"]
