"""Metric suite: analytically known values, conventions, the CLI, and agreement with VIFB's MATLAB values."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fusion_core import data
from fusion_core.metrics import CONVENTIONS, METRICS, get_convention, score
from fusion_core.metrics.gradient import DA, DG, KA, KG, TA, TG

RNG = np.random.default_rng(0)


def _image(h=64, w=80, seed=0):
    """A smooth random 8-bit image in [0, 1] (so every local statistic is non-degenerate)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(h // 8 + 2, w // 8 + 2)).astype(float)
    up = np.kron(base, np.ones((8, 8)))[:h, :w]
    noisy = up + rng.normal(0, 20, size=(h, w))
    return np.clip(np.round(noisy), 0, 255) / 255.0


def _values(fused, ir, vis, metrics, convention="tang", **kw):
    return {k: float(v[0]) for k, v in score(fused, ir, vis, metrics, convention, **kw).items()}


# --------------------------------------------------------------------------- analytic values

def test_constant_image_has_zero_information_and_no_edges():
    const = np.full((40, 50), 0.5)
    values = _values(const, None, None, ["EN", "SD", "SF", "AG", "EI"], "vifb")
    assert values == pytest.approx({"EN": 0.0, "SD": 0.0, "SF": 0.0, "AG": 0.0, "EI": 0.0}, abs=1e-12)


def test_ramp_gradient_and_spatial_frequency_match_closed_forms():
    m, n, step = 30, 40, 3.0
    ramp = np.tile(np.arange(n) * step, (m, 1)) / 255.0
    values = _values(ramp, None, None, ["AG", "SF"], "didfuse_spec")
    assert values["AG"] == pytest.approx(m * n * step / math.sqrt(2) / ((m - 1) * (n - 1)), rel=1e-12)
    assert values["SF"] == pytest.approx(step * math.sqrt((n - 1) / n), rel=1e-12)


def test_entropy_of_two_equal_halves_is_one_bit():
    half = np.zeros((20, 20))
    half[:, 10:] = 1.0
    assert _values(half, None, None, ["EN"])["EN"] == pytest.approx(1.0, abs=1e-12)


def test_identical_images_score_perfectly():
    a = _image()
    values = _values(a, a, a, ["MI", "EN", "SSIM", "CC", "SCD", "MSE", "VIF", "Qabf", "CE"], "amfe",
                     options={"SSIM": {"reduce": "mean"}, "VIF": {"kind": "vifp", "reduce": "mean"},
                              "Qabf": {"equal_quirk": False}})
    assert values["MI"] == pytest.approx(2 * values["EN"], rel=1e-12)  # I(A;A) = H(A)
    assert values["SSIM"] == pytest.approx(1.0, abs=1e-12)
    assert values["CC"] == pytest.approx(1.0, abs=1e-12)
    assert values["MSE"] == 0.0 and values["CE"] == 0.0
    assert values["VIF"] == pytest.approx(1.0, abs=1e-9)
    q_perfect = TG / (1 + math.exp(KG * (1 - DG))) * TA / (1 + math.exp(KA * (1 - DA)))
    assert values["Qabf"] == pytest.approx(q_perfect, rel=1e-9)


def test_shifted_copy_loses_information_and_similarity():
    a = _image(seed=1)
    shifted = np.roll(a, 3, axis=1)
    same = _values(a, a, a, ["MI", "SSIM"], "amfe")
    moved = _values(shifted, a, a, ["MI", "SSIM"], "amfe")
    assert moved["MI"] < 0.8 * same["MI"] and moved["SSIM"] < 0.8 * same["SSIM"]


def test_scd_and_mi_are_symmetric_in_the_sources():
    a, b, f = _image(seed=2), _image(seed=3), _image(seed=4)
    ab = _values(f, a, b, ["SCD", "MI", "Qabf"])
    ba = _values(f, b, a, ["SCD", "MI", "Qabf"])
    assert ab == pytest.approx(ba, rel=1e-12)


def test_li_mi_reproduces_the_matlab_bug_next_to_the_correct_value():
    a, b, f = _image(seed=5), _image(seed=6), _image(seed=7)
    values = _values(f, a, b, ["EN", "MI", "MI_correct"], "li")
    assert values["MI"] == pytest.approx(2 * values["EN"], rel=1e-12)
    assert values["MI_correct"] < values["MI"]
    assert _values(f, a, b, ["MI"], "li", mi_matlab_bug=False)["MI"] == pytest.approx(values["MI_correct"])


def test_vifb_mi_is_in_nats_and_tang_mi_in_bits_on_the_same_images():
    a, b, f = _image(seed=8), _image(seed=9), _image(seed=10)
    nats = _values(f, a, b, ["MI"], "vifb")["MI"]
    # tang's Hab.m merges levels 254 and 255 in the joint histogram; without that quirk only the log base differs
    bits = _values(f, a, b, ["MI"], "tang", options={"MI": {"uint8_index": False}})["MI"]
    assert _values(f, a, b, ["MI"], "tang")["MI"] > bits
    # identical histograms (8-bit images spanning 0..255 after min–max), so only the log base differs
    assert nats == pytest.approx(bits * math.log(2), rel=1e-9)


def test_batch_of_images_scores_each_image_independently():
    imgs = [(_image(seed=s), _image(seed=s + 10), _image(seed=s + 20)) for s in range(3)]
    stacked = [torch.tensor(np.stack([t[i] for t in imgs]))[:, None] for i in range(3)]
    batched = score(*stacked, ["EN", "SSIM", "VIF", "Qabf", "MI"], "tang")
    for k, (f, a, b) in enumerate(imgs):
        single = _values(f, a, b, ["EN", "SSIM", "VIF", "Qabf", "MI"])
        assert {n: float(v[k]) for n, v in batched.items()} == pytest.approx(single, rel=1e-12)


def test_every_convention_column_is_a_registered_metric_with_a_direction():
    for conv in CONVENTIONS.values():
        for column in conv.columns.values():
            assert METRICS[column.metric].direction in ("higher", "lower")
    assert METRICS["Qcv"].direction == "lower" and METRICS["VIF"].direction == "higher"


def test_unknown_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown convention"):
        get_convention("nope")
    with pytest.raises(KeyError, match="unknown metric"):
        score(_image(), _image(), _image(), ["NOPE"])


# --------------------------------------------------------------------------- VIFB MATLAB agreement

def _vifb_root():
    try:
        root = data.data_root()
    except data.DataError as exc:
        pytest.skip(f"data root missing: {exc}")
    ref = root.parent / "reference" / "vifb"
    if not ref.is_dir():
        pytest.skip(f"{ref}: VIFB reference values not found")
    return root, ref


# a representative subset: grey-IR pair, a wide pair, a dark pair × classical, CNN and recent methods
VIFB_PAIRS = ["manWalking", "carShadow", "nightCar"]
VIFB_METHODS = ["ADF", "CNN", "SeAFusion"]


@pytest.mark.slow
def test_vifb_convention_matches_the_matlab_values_on_a_subset():
    _vifb_root()
    from fusion_core.metrics.validation import agreement_summary, vifb_agreement

    summary = agreement_summary(vifb_agreement(VIFB_PAIRS, VIFB_METHODS)).set_index("metric")
    assert len(summary) == 13 and (summary["n"] == 9).all()
    assert (summary["median_rel_error"] <= 1e-3).all(), summary
    assert (summary["max_rel_error"] <= 1e-2).all(), summary


def test_didfuse_released_outputs_reproduce_the_spec_fixture_on_the_first_pairs():
    _vifb_root()
    from fusion_core.metrics.validation import didfuse_released_scores

    table = didfuse_released_scores(limit=2, convention="didfuse_spec")
    assert list(table.columns) == ["pair", "EN", "SD", "SF", "VIF", "AG", "SCD"]
    assert table[["EN", "SD", "SF", "VIF", "AG", "SCD"]].notna().all().all()
    assert (table["VIF"] > 0.2).all() and (table["VIF"] < 2).all()  # a sum of two VIFp values
    calibrated = didfuse_released_scores(limit=2)  # the same images under the Table V convention
    assert calibrated[["EN", "AG", "SCD"]].equals(table[["EN", "AG", "SCD"]])
    assert (calibrated["SD"] < table["SD"]).all()  # column-centred SD drops the spread between column means


# --------------------------------------------------------------------------- loop references (tiny images)

def _loop_mef_ssim(seq, f, k=0.03):
    """Direct per-window MEF-SSIM (Ma et al. 2015), written from the paper's algorithm with plain loops."""
    from fusion_core.metrics._core import fspecial_gaussian

    g1 = fspecial_gaussian(11, 1.5).numpy()
    gw = np.outer(g1, g1).ravel(order="F")
    eps = np.finfo(float).eps
    h, w = f.shape
    q = []
    for i in range(5, h - 5):
        for j in range(5, w - 5):
            vecs = [s[i - 5:i + 6, j - 5:j + 6].ravel(order="F") for s in seq]
            mus = [v.mean() for v in vecs]
            eds = [np.sqrt(max(121 * (np.mean(v * v) - m * m), 0)) + 0.001 for v, m in zip(vecs, mus)]
            den = sum(np.linalg.norm(v - m) for v, m in zip(vecs, mus))
            tot = sum(vecs)
            r = (np.linalg.norm(tot - tot.mean()) + eps) / (den + eps)
            r = 1 - eps if r > 1 else r
            p = min(np.tan(np.pi / 2 * r), 10)
            wts = np.array([(e / 11) ** p + eps for e in eds])
            wts = wts / wts.sum()
            rb = sum(wk * (v - m) / e for wk, v, m, e in zip(wts, vecs, mus, eds))
            if np.linalg.norm(rb) > 0:
                rb = rb / np.linalg.norm(rb) * max(eds)
            fv = f[i - 5:i + 6, j - 5:j + 6].ravel(order="F")
            m1, m2 = (gw * rb).sum(), (gw * fv).sum()
            s1, s2 = (gw * (rb - m1) ** 2).sum(), (gw * (fv - m2) ** 2).sum()
            s12 = (gw * (rb - m1) * (fv - m2)).sum()
            c = (k * 255) ** 2
            q.append((2 * s12 + c) / (s1 + s2 + c))
    return float(np.mean(q))


def test_mef_ssim_closed_form_equals_the_window_loop():
    a, b, f = (_image(h=24, w=26, seed=s) * 255 for s in (11, 12, 13))
    ours = _values(f / 255, a / 255, b / 255, ["SSIM"], "seafusion")["SSIM"]  # SeAFusion's SSIM = MEF-SSIM
    assert ours == pytest.approx(_loop_mef_ssim([a, b], f), rel=1e-9)


def _loop_fmi_window(s, f):
    """Fast-FMI of one pair of 3×3 windows, plain loops (Haghighat & Razian 2014)."""
    s = np.ones(9) if s.max() == s.min() else (s - s.min()) / (s.max() - s.min())
    f = np.ones(9) if f.max() == f.min() else (f - f.min()) / (f.max() - f.min())
    seq = lambda v: sum(v.tolist())  # noqa: E731  (MATLAB's left-to-right order; exact zeros matter)
    colsum = lambda v: seq(np.array([seq(v[0:3]), seq(v[3:6]), seq(v[6:9])]))  # noqa: E731
    sp, fp = s / colsum(s), f / colsum(f)
    sc, fc = np.cumsum(sp), np.cumsum(fp)
    st, ft = sp - seq(sp) / 9, fp - seq(fp) / 9
    c = 0.0 if seq(st * ft) == 0 else seq(st * ft) / np.sqrt(seq(st * st) * seq(ft * ft))
    idx = np.arange(1, 10)
    ssd = np.sqrt(seq(idx ** 2 * sp) - seq(idx * sp) ** 2)
    fsd = np.sqrt(seq(idx ** 2 * fp) - seq(idx * fp) ** 2)
    up = lambda x, y: 0.5 * (x + y - abs(x - y))  # noqa: E731
    lo = lambda x, y: 0.5 * (x + y - 1 + abs(x + y - 1))  # noqa: E731
    bound = up if c >= 0 else lo
    if (c == 0 and c >= 0) or ssd == 0 or fsd == 0:
        mix = 0.0
    else:
        cov = sum(bound(fc[i], sc[j]) - fc[i] * sc[j] for i in range(9) for j in range(9))
        mix = c / (cov / (fsd * ssd))
    hj = 0.0
    for i in range(9):
        for j in range(9):
            H = lambda ii, jj: 0.0 if ii < 0 or jj < 0 else bound(fc[ii], sc[jj])  # noqa: E731
            jp = mix * (H(i, j) - H(i - 1, j) - H(i, j - 1) + H(i - 1, j - 1)) + (1 - mix) * fp[i] * sp[j]
            if jp != 0:
                hj += -jp * np.log2(abs(jp))
    hs = -(sp[sp > 0] * np.log2(sp[sp > 0])).sum()
    hf = -(fp[fp > 0] * np.log2(fp[fp > 0])).sum()
    mi = hs + hf - hj
    return 0.0 if mi == 0 else 2 * mi / (hs + hf)


def test_fmi_pixel_vectorised_equals_the_window_loop():
    a, b, f = (_image(h=12, w=13, seed=s) for s in (14, 15, 16))
    b[:5, :5] = f[:5, :5] = 128 / 255  # flat windows exercise the equal-window shortcuts
    a[:4, :4] = 128 / 255
    total = []
    for i in range(1, 11):
        for j in range(1, 12):
            wa, wb, wf = (x[i - 1:i + 2, j - 1:j + 2].ravel(order="F") for x in (a, b, f))
            af = 1.0 if np.array_equal(wa, wf) else _loop_fmi_window(wa, wf)
            f_after = wf if np.array_equal(wa, wf) else (np.ones(9) if wf.max() == wf.min() else (wf - wf.min()) / (wf.max() - wf.min()))
            bf = 1.0 if np.array_equal(wb, f_after) else _loop_fmi_window(wb, wf)
            total.append((af + bf) / 2)
    ours = _values(f, a, b, ["FMI_pixel"], "li")["FMI_pixel"]
    assert ours == pytest.approx(float(np.mean(total)), rel=1e-9)


# --------------------------------------------------------------------------- CLI

def _write(path: Path, array):
    data.write_image(path, torch.tensor(array)[None, None])


def test_cli_scores_a_folder_and_writes_one_row_per_image(tmp_path, capsys):
    from fusion_core.cli import main

    for sub in ("f", "ir", "vis"):
        (tmp_path / sub).mkdir()
    for k in range(2):
        _write(tmp_path / "ir" / f"{k:02d}.png", _image(seed=k))
        _write(tmp_path / "vis" / f"{k:02d}.png", _image(seed=k + 5))
        _write(tmp_path / "f" / f"{k:02d}.png", _image(seed=k + 9))
    out = tmp_path / "scores.csv"
    rc = main(["score", "--fused", str(tmp_path / "f"), "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
               "--metrics", "EN,SD,MI", "--convention", "didfuse", "--out", str(out)])
    assert rc == 0
    table = pd.read_csv(out)
    assert list(table.columns) == ["image", "EN", "SD", "MI"] and list(table["image"]) == [0, 1]
    assert "EN" in capsys.readouterr().out


def test_cli_names_a_fused_image_without_sources_and_writes_nothing(tmp_path, capsys):
    from fusion_core.cli import main

    for sub in ("f", "ir", "vis"):
        (tmp_path / sub).mkdir()
        _write(tmp_path / sub / "01.png", _image())
    _write(tmp_path / "f" / "02.png", _image())
    out = tmp_path / "scores.csv"
    rc = main(["score", "--fused", str(tmp_path / "f"), "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
               "--out", str(out)])
    assert rc == 2 and not out.exists()
    # score is driven by the fused folder (issue 17): a fused image without its sources is the error
    assert "f/02.png: no infrared and visible source with stem '02'" in capsys.readouterr().err


def test_cli_reports_a_size_mismatch_with_the_file(tmp_path, capsys):
    from fusion_core.cli import main

    for sub in ("f", "ir", "vis"):
        (tmp_path / sub).mkdir()
    _write(tmp_path / "f" / "01.png", _image())
    _write(tmp_path / "ir" / "01.png", _image(h=48))
    _write(tmp_path / "vis" / "01.png", _image())
    rc = main(["score", "--fused", str(tmp_path / "f"), "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
               "--out", str(tmp_path / "s.csv")])
    assert rc == 2
    assert "ir/01.png: size 80x48 does not match" in capsys.readouterr().err


# --------------------------------------------------------------------------- convention quirks

def test_tang_psnr_keeps_peak_255_on_unit_range_images():
    a, b, f = _image(seed=21), _image(seed=22), _image(seed=23)
    tang = _values(f, a, b, ["PSNR", "MSE"], "tang")
    standard = _values(f, a, b, ["PSNR"], "didfuse")["PSNR"]  # registry default: grey levels, peak 255
    assert tang["PSNR"] - standard == pytest.approx(20 * math.log10(255), abs=1e-9)
    assert tang["PSNR"] == pytest.approx(20 * math.log10(255 / math.sqrt(tang["MSE"])), rel=1e-12)


def test_tang_cc_mean_bug_is_harmless_because_the_fused_deviations_sum_to_zero():
    a, b, f = _image(seed=24), _image(seed=25) * 0.5, _image(seed=26)  # very different source means
    buggy = _values(f, a, b, ["CC"], "tang")["CC"]
    fixed = _values(f, a, b, ["CC"], "tang", options={"CC": {"tang_mean_bug": False}})["CC"]
    summed = _values(f, a, b, ["CC"], "msfam")["CC"]
    assert buggy == pytest.approx(fixed, rel=1e-9) and summed == pytest.approx(2 * fixed, rel=1e-12)


def test_vifb_per_channel_equals_grey_for_three_equal_channels_except_sf():
    a, b, f = _image(seed=27), _image(seed=28), _image(seed=29)
    rgb = lambda x: np.repeat(x[..., None], 3, axis=-1)  # noqa: E731
    names = ["EN", "MI", "SSIM", "Qabf", "AG"]
    assert _values(rgb(f), rgb(a), b, names, "vifb") == pytest.approx(_values(f, a, b, names, "vifb"), rel=1e-12)
    # SF sees the three channels side by side (MATLAB's m×3n indexing): seams add differences
    assert _values(rgb(f), a, b, ["SF"], "vifb")["SF"] != pytest.approx(_values(f, a, b, ["SF"], "vifb")["SF"])


def test_vifp_sum_is_twice_the_mean_and_bounded_for_a_noisy_copy():
    a = _image(seed=30)
    noisy = np.clip(a + RNG.normal(0, 0.05, a.shape), 0, 1)
    total = _values(noisy, a, a, ["VIF"], "didfuse_spec")["VIF"]
    mean = _values(noisy, a, a, ["VIF"], "msfam")["VIF"]
    assert total == pytest.approx(2 * mean, rel=1e-12) and 0 < mean < 1


def test_cpbd_and_jnb_rank_a_blurred_copy_below_the_sharp_image():
    from scipy import ndimage

    _vifb_root()
    sharp = data.to_grey(data.read_array(data.list_pairs("tno40")[0].vis))
    blurred = np.round(ndimage.gaussian_filter(sharp * 255, 2.0)) / 255
    s = _values(sharp, None, None, ["CPBD", "JNB"], "savf")
    b = _values(blurred, None, None, ["CPBD", "JNB"], "savf")
    assert s["CPBD"] > b["CPBD"] and s["JNB"] > b["JNB"]
    assert _values(np.full((128, 128), 0.5), None, None, ["CPBD", "JNB"], "savf") == {"CPBD": 0.0, "JNB": 0.0}


# --------------------------------------------------------------------------- the speed work keeps the values

# Every column of every convention on a 96×112 crop of VIFB's manWalking (grey IR, colour VIS) fused by CNN
# (FMI, slow, on a 40×48 crop; msfam's MS-SSIM needs > 160 px). First computed before the speed work (scipy
# filters, out-of-place arithmetic); moved since then only by issue 11:
# - Qabf of li/seafusion (0.567647 → 0.569168, GNU Octave's value of the toolbox code): the tie test g_A == g_F
#   compares doubles, which on [0, 1] inputs depend on the Sobel's summation order; OpenCV chose it by CPU
#   features (0.567647 on Intel CI, 0.567662 on an AMD EPYC). The responses are now summed in Octave's conv2
#   order and square-rooted with IEEE sqrt (torch's differs in the last bit on ~1 % of inputs);
#   Nabf of li/seafusion (0.15917 → 0.15730, Octave's value): Kumar's Sobel/8 summed in his sum(sum()) order
#   with IEEE sqrt, so g_F > g_S sees the toolbox's doubles (exact decisions would give 0.14725, 6 % off);
# - tang now follows Linfeng-Tang/Evaluation-for-Image-Fusion (grey levels as double; checked in Octave):
#   SD, SF, Qabf (value_scale 1), MI (Hab.m's uint8 index saturation, also seafusion), SSIM (MATLAB ssim,
#   DynamicRange 1), Nabf (argument order, grey levels), FMI_pixel (edge feature); the old tang values live on
#   as the `seafusion` convention (its VIF with uint8 products).
# Tolerance: rel 1e-12. Across emulated CPU levels (default build = AVX2/FMA OpenCV + torch AVX2;
# ATEN_CPU_CAPABILITY=default with OPENCV_CPU_DISABLE=AVX2,FMA3,AVX,POPCNT,SSSE3) the largest difference of
# any column is 1.3e-14 (VIFp, its flat-region terms follow the filter's summation order), 5.2e-15 (tang SSIM),
# every other column ≤ 4e-16 and Qabf, Nabf, MI, EN, FMI bit-identical; 1e-12 is ~75× that, and 1e-6 below the
# smallest change the guard must catch (another summation order moves li Qabf by ≥ 3e-5 here, tang MI's
# saturation 2.8e-3).
BEFORE_SPEEDUP_CROP = (slice(80, 176), slice(100, 212))
BEFORE_SPEEDUP_REL = 1e-12
BEFORE_SPEEDUP = {
    "vifb": {
        "CE": 1.3697251382391995, "EN": 7.153251871065326, "MI": 2.986648251094323, "PSNR": 50.98375641471001,
        "AG": 7.008863208039316, "EI": 71.2789762879121, "Qabf": 0.5442677717215044, "SD": 45.72531468938564,
        "SF": 21.19341790041397, "RMSE": 0.5190503605293781, "SSIM": 1.2000837862045477, "Qcb": 0.5746787714467687,
        "Qcv": 512.3137552394772},
    "tang": {
        "EN": 7.347582570628217, "SD": 45.866511167818025, "SF": 20.534176805480488, "AG": 6.889487549229594,
        "MI": 4.6398625352791, "VIF": 0.5246926767260228, "SCD": 1.8057545238181194, "CC": 0.6224946082647611,
        "Qabf": 0.5733238850272981, "PSNR": 61.86488574278364, "MSE": 0.04232449515754014,
        "SSIM": 0.47319603129852605, "MS_SSIM": 0.908717079191843, "Nabf": 0.021812109981202712},
    "li": {
        "EN": 7.347582570628217, "MI": 14.695165141256433, "MI_correct": 4.627091292491121,
        "Qabf": 0.5691678110191292, "SCD": 1.8057545238181194, "SSIM": 0.6340488139121282,
        "MEF_SSIM": 0.908717079191843, "Nabf": 0.1573045533241537},
    "didfuse_spec": {  # the didfuse convention of the speed work, before issue 18 renamed it
        "EN": 7.347582570628217, "SD": 45.866511167818025, "SF": 20.430875309751638, "VIF": 0.5246926767260228,
        "AG": 6.889487549229594, "SCD": 1.8057545238181194},
    "msfam": {
        "EN": 7.347582570628217, "MI": 14.695165141256433, "MI_correct": 4.627091292491121,
        "SCD": 1.8057545238181194, "CC": 1.2449892165295218, "CC_mean": 0.6224946082647609,
        "VIF": 0.2623463383630114},
    "amfe": {
        "MI": 4.627091292491121, "CC": 0.6224946082647609, "VIF": 0.4383887847875251, "Qabf": 0.5733040183255389,
        "SCD": 1.8057545238181194, "SSIM": 0.6228748377107235},
    "savf": {
        "EN": 7.347582570628217, "CPBD": 0.6121212121212121, "JNB": 0.13131861924077406, "VIF": 0.2623463383630114,
        "AG": 6.889487549229594, "SSIM": 0.6228748377107235, "MI": 4.627091292491121, "SD": 45.866511167818025,
        "SF": 20.430875309751638, "Qabf": 0.5733040183255389},
    "seafusion": {
        "EN": 7.347582570628217, "SD": 10.590867795169663, "SF": 0.08052618355090388, "AG": 6.889487549229594,
        "MI": 4.6398625352791, "VIF": 0.6058619725347465, "SCD": 1.8057545238181194, "CC": 0.6224946082647611,
        "Qabf": 0.5691678110191292, "PSNR": 61.86488574278364, "MSE": 0.04232449515754014,
        "SSIM": 0.9323907217622565, "MS_SSIM": 0.908717079191843, "Nabf": 0.1573045533241537},
}
BEFORE_SPEEDUP_FMI_CROP = (slice(100, 140), slice(130, 178))
BEFORE_SPEEDUP_FMI = {"FMI_pixel": 0.44467934669644804, "FMI_dct": 0.2744886307399215, "FMI_w": 0.4140530030300609}
# tang/seafusion FMI_pixel is analysis_fmi's default feature, the binary Sobel edge map (issue 11)
BEFORE_SPEEDUP_FMI_EDGE = 0.8678389389195534


def _before_speedup_crop(crop=BEFORE_SPEEDUP_CROP):
    _, ref = _vifb_root()
    pair = next(p for p in data.list_pairs("vifb21") if p.stem == "manWalking")
    paths = (ref / "fused" / "manWalking_CNN.jpg", pair.ir, pair.vis)
    return tuple(data.read_array(path)[crop] for path in paths)


def test_every_convention_keeps_the_values_computed_before_the_speed_work():
    fused, ir, vis = _before_speedup_crop()
    for convention, expected in BEFORE_SPEEDUP.items():
        assert _values(fused, ir, vis, list(expected), convention) == pytest.approx(expected, rel=BEFORE_SPEEDUP_REL), \
            convention
    small = _before_speedup_crop(BEFORE_SPEEDUP_FMI_CROP)
    for convention in ("li", "tang", "seafusion"):
        expected = dict(BEFORE_SPEEDUP_FMI)
        if convention != "li":
            expected["FMI_pixel"] = BEFORE_SPEEDUP_FMI_EDGE
        fmi = _values(*small, list(expected), convention)
        assert fmi == pytest.approx(expected, rel=BEFORE_SPEEDUP_REL), convention


def test_torch_filters_used_off_the_cpu_give_the_same_values(monkeypatch):
    from fusion_core.metrics import _core

    monkeypatch.setattr(_core, "_use_cv2", lambda x: False)  # the conv2d path that CUDA tensors take
    monkeypatch.setattr(_core, "STRIP_ROWS", 10 ** 6)  # and whole planes, not strips
    fused, ir, vis = _before_speedup_crop()
    # conv2d sums in another order than OpenCV: the same 1e-12 (differences seen ≤ 1.3e-14, VIFp)
    for convention in ("vifb", "tang", "li", "amfe"):
        expected = BEFORE_SPEEDUP[convention]
        assert _values(fused, ir, vis, list(expected), convention) == pytest.approx(expected, rel=BEFORE_SPEEDUP_REL), \
            convention


def _reference_qabf(f, a, b, value_scale, order=None):
    """Qabf written from analysis_Qabf.m in NumPy: Sobel by ``conv2(x, h, 'same')`` summed in ``order`` (kernel
    (row, col) pairs; default GNU Octave's: columns last to first, rows top to bottom), IEEE sqrt."""
    order = order or [(r, c) for c in (2, 1, 0) for r in range(3)]
    kernels = (np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]), np.array([[1.0, 2, 1], [0, 0, 0], [-1, -2, -1]]))

    def conv2_same(x, h):
        m, n = x.shape
        padded, full = np.pad(x, 2), np.zeros((m + 2, n + 2))
        for r, c in order:
            if h[r, c]:
                full += h[r, c] * padded[2 - r:m + 4 - r, 2 - c:n + 4 - c]
        return full[1:m + 1, 1:n + 1]

    def strength_angle(x):
        sx, sy = (conv2_same(x * value_scale if value_scale >= 1 else x / 255.0, h) for h in kernels)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(sx * sx + sy * sy), np.where(sx == 0, np.pi / 2, np.arctan(sy / sx))

    (gf, af), *sources = (strength_angle(x.astype(float)) for x in (f, a, b))
    num = den = 0.0
    for gs, as_ in sources:
        with np.errstate(invalid="ignore", divide="ignore"):
            G = np.where(gs == gf, gf, np.minimum(gs, gf) / np.maximum(gs, gf))
        A = 1 - np.abs(as_ - af) / (np.pi / 2)
        q = TG / (1 + np.exp(KG * (G - DG))) * TA / (1 + np.exp(KA * (A - DA)))
        num, den = num + (q * gs).sum(), den + gs.sum()
    return num / den


def _levels(x):
    """The conventions' input: 8-bit levels, MATLAB rgb2gray for colour."""
    from fusion_core.metrics._core import rgb2gray

    t = torch.tensor(np.round(np.asarray(x, dtype=float) * 255))
    t = rgb2gray(t.permute(2, 0, 1)[None], rounded=True)[0, 0] if t.dim() == 3 else t
    return t.numpy().astype(np.int64)


def test_qabf_ties_follow_the_toolbox_code_summed_in_octaves_order_and_a_guard_sees_another_order():
    fused, ir, vis = _before_speedup_crop()
    f, a, b = (_levels(x) for x in (fused, ir, vis))
    for convention, value_scale in (("li", 1 / 255), ("tang", 1.0)):  # vifb scores colour per channel
        ours = _values(fused, ir, vis, ["Qabf"], convention)["Qabf"]
        assert ours == pytest.approx(_reference_qabf(f, a, b, value_scale), rel=1e-12), convention
    # on grey levels the sums are integers: any order gives the same ties; on [0, 1] another order moves li Qabf
    row_major = [(r, c) for r in range(3) for c in range(3)]
    assert _reference_qabf(f, a, b, 1.0, row_major) == _reference_qabf(f, a, b, 1.0)
    other = _reference_qabf(f, a, b, 1 / 255, row_major)
    assert abs(other - BEFORE_SPEEDUP["li"]["Qabf"]) > 1e4 * BEFORE_SPEEDUP_REL * BEFORE_SPEEDUP["li"]["Qabf"]


def test_qabf_sobel_takes_the_fast_filter_only_on_whole_numbers_and_it_gives_the_ordered_sums_bit_for_bit():
    from fusion_core.metrics import gradient

    fused, ir, vis = _before_speedup_crop()
    for x in (_levels(fused), _levels(ir) * 255):  # grey levels, and VIFB's levels ×255
        t = torch.tensor(x, dtype=torch.float64)[None]
        fast = gradient._sobel_pair(t)
        ordered = (gradient._conv2_same_in_order(t, gradient._SOBEL_X), gradient._conv2_same_in_order(t, gradient._SOBEL_Y))
        assert all(torch.equal(a, b) for a, b in zip(fast, ordered))
        assert not torch.equal(fast[0], fast[1])
    # on [0, 1] values the sums round, so they keep Octave's order: a 3x3 correlation in row-major order differs
    unit = torch.tensor(_levels(vis) / 255.0)[None]
    assert not gradient._integral(unit)
    ordered = gradient._conv2_same_in_order(unit, gradient._SOBEL_X)
    assert torch.equal(gradient._sobel_pair(unit)[0], ordered)
    row_major = torch.zeros_like(unit)
    padded = torch.nn.functional.pad(unit, (1, 1, 1, 1))
    h, w = unit.shape[-2:]
    for r in range(3):
        for c in range(3):
            k = float(torch.flip(gradient._SOBEL_X, dims=(0, 1))[r, c])
            if k:
                row_major += k * padded[..., r:r + h, c:c + w]
    assert not torch.equal(row_major, ordered)


def test_qabf_and_nabf_on_unit_range_images_are_octaves_values_of_the_toolbox_code():
    root, _ = _vifb_root()
    from fusion_core.metrics._core import rgb2gray

    table = pd.read_csv(Path(__file__).parent / "data" / "qabf_unit_range_octave.csv", comment="#", dtype={"pair": str})
    for row in table.itertuples():
        if row.pair == "manWalking":
            fused, ir, vis = _before_speedup_crop()
        else:
            r, c = TANG_OCTAVE_CROPS[row.pair]
            ir, vis = (rgb2gray(torch.tensor(data.read_array(root / "tno42" / band / f"{row.pair}.png") * 255.0)
                                .permute(2, 0, 1)[None], rounded=True)[0, 0, r:r + 256, c:c + 256].long()
                       for band in ("ir", "vis"))
            fused = (ir + vis + 1) // 2 if row.method == "mean" else torch.maximum(ir, vis)
            fused, ir, vis = (x.double() / 255 for x in (fused, ir, vis))
        # largest difference seen: 1.1e-15 (the weighted sums run in another order than Octave's)
        expected = {k: getattr(row, k) for k in ("Qabf", "Nabf") if not pd.isna(getattr(row, k))}
        assert _values(fused, ir, vis, list(expected), "li") == pytest.approx(expected, rel=1e-12), row.pair


# --------------------------------------------------------------------------- Tang's toolbox, run in Octave

TANG_OCTAVE = Path(__file__).parent / "data" / "tang_toolbox_octave.csv"
TANG_OCTAVE_CROPS = {"01": (200, 300), "05": (12, 12), "17": (100, 200)}


def test_tang_convention_matches_the_toolbox_run_in_octave():
    root, _ = _vifb_root()
    from fusion_core.metrics._core import rgb2gray

    table = pd.read_csv(TANG_OCTAVE, comment="#", dtype={"pair": str})
    for row in table.itertuples():
        r, c = TANG_OCTAVE_CROPS[row.pair]
        ir, vis = (rgb2gray(torch.tensor(data.read_array(root / "tno42" / band / f"{row.pair}.png") * 255.0)
                            .permute(2, 0, 1)[None], rounded=True)[0, 0, r:r + 256, c:c + 256].long()
                   for band in ("ir", "vis"))
        fused = (ir + vis + 1) // 2 if row.method == "mean" else torch.maximum(ir, vis)
        expected = {k: getattr(row, k) for k in table.columns[2:] if not pd.isna(getattr(row, k))}
        small = [k for k in expected if k.startswith("FMI")]
        ours = _values(fused.double() / 255, ir.double() / 255, vis.double() / 255,
                       [k for k in expected if k not in small], "tang")
        if small:
            crop = (slice(0, 48), slice(0, 48))
            ours.update(_values(*(x[crop].double() / 255 for x in (fused, ir, vis)), small, "tang"))
        # largest difference seen: 1.3e-12 (SCD; Octave's and our sums run in different orders); Nabf, 2.0e-8 off
        # while its Sobel was summed in another order, now agrees to 9e-16; the causes fixed in issue 11 moved
        # values by ≥ 2.6e-4 (MI), 4.6e-4 (Qabf)
        for k, v in expected.items():
            assert ours[k] == pytest.approx(v, rel=1e-10), (row.pair, row.method, k)
