"""Conventions: each toolbox's definitions as data — which metrics, with which options — not as branches.

A convention fixes how images enter the metrics (``colour``, ``quantize``) and, per reported column,
the registered metric and its options. ``docs/metric_conventions.md`` explains every entry.

``colour``: ``grey`` converts any RGB input with MATLAB ``rgb2gray`` (rounded, as on uint8 images);
``per_channel`` (VIFB) scores each RGB channel of the fused image against the same channel of each
RGB source (a one-channel source is used as is) and averages the three values.
``quantize``: round to 8-bit grey levels first, as the MATLAB toolboxes read saved uint8 images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

U8 = 1.0 / 255.0  # value_scale that turns grey levels into im2double's [0, 1]


@dataclass(frozen=True)
class Column:
    """A reported column: the registered metric it comes from and the options the toolbox uses."""

    metric: str
    options: Mapping = field(default_factory=dict)
    colour: str | None = None  # per-metric override of the convention's colour handling


@dataclass(frozen=True)
class Convention:
    name: str
    description: str
    columns: Mapping[str, Column]
    colour: str = "grey"
    quantize: bool = True
    default: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        """The column ``name``: the convention's own, else the registered metric with its defaults."""
        return self.columns.get(name, Column(name))

    @property
    def default_columns(self) -> tuple[str, ...]:
        return self.default or tuple(self.columns)


def _conv(name, description, columns, **kw) -> Convention:
    return Convention(name, description, MappingProxyType(dict(columns)), **kw)


VIFB = _conv(
    "vifb",
    "VIFB benchmark (Zhang, Ye, Xiao, CVPRW 2020), its 13 MATLAB metrics in metrics/*.m, called as "
    "metricsX(imgVI, imgIR, fused) on the decoded JPEGs, colour evaluated per channel.",
    {
        "CE": Column("CE"),
        "EN": Column("EN", {"binning": "floor"}),
        "MI": Column("MI", {"log_base": 2.718281828459045, "normalise": "minmax", "reduce": "sum"}),
        "PSNR": Column("PSNR", {"form": "sqrt_sse_over_mn", "peak": 255.0}),
        "AG": Column("AG", {"mode": "matlab"}),
        "EI": Column("EI", {"boundary": "replicate"}),
        "Qabf": Column("Qabf", {"value_scale": 255.0, "equal_quirk": True}),
        "SD": Column("SD"),
        "SF": Column("SF", {"normalise": "mn"}, colour="side_by_side"),
        "RMSE": Column("RMSE", {"form": "sqrt_sse_over_mn"}),
        "SSIM": Column("SSIM", {"reduce": "sum", "shape": "valid", "data_range": 255.0}),
        "Qcb": Column("Qcb"),
        "Qcv": Column("Qcv"),
    },
    colour="per_channel",
)

TANG = _conv(
    "tang",
    "Tang's toolbox (Linfeng-Tang/Evaluation-for-Image-Fusion, Evaluation/analysis_Reference.m; easy = 1 for the "
    "default set, easy = 0 for Nabf, SSIM, MS_SSIM and the FMIs), used by many recent IVIF papers: uint8 grey "
    "images; EN and MI on uint8, every other metric on im2double(·)·255 = grey levels as double. Checked against "
    "the toolbox's own .m files run in GNU Octave (tests/data/tang_toolbox_octave.csv).",
    {
        "EN": Column("EN"),
        "SD": Column("SD"),
        "SF": Column("SF", {"normalise": "count"}),
        "AG": Column("AG", {"mode": "matlab"}),
        "MI": Column("MI", {"log_base": 2.0, "reduce": "sum", "uint8_index": True}),
        "VIF": Column("VIF", {"kind": "vifp", "reduce": "sum", "noise_var": 2.0}),
        "SCD": Column("SCD"),
        "CC": Column("CC", {"reduce": "mean", "tang_mean_bug": True}),
        "Qabf": Column("Qabf", {"equal_quirk": True}),
        "PSNR": Column("PSNR", {"value_scale": U8, "peak": 255.0}),
        "MSE": Column("MSE", {"value_scale": U8}),
        # easy = 0: SSIM is MATLAB ssim on double grey levels (DynamicRange 1 for double), averaged over F–IR
        # and F–VIS; MS_SSIM the 3-level analysis_ms_ssim.m (MEF-SSIM); Nabf with the toolbox's argument order;
        # FMI_pixel is analysis_fmi's default feature, a binary Sobel edge map
        "SSIM": Column("SSIM", {"reduce": "mean", "shape": "same", "boundary": "replicate", "data_range": 1.0}),
        "MS_SSIM": Column("MEF_SSIM", {"levels": 3}),
        "Nabf": Column("Nabf", {"value_scale": 1.0, "tang_argument_order": True}),
        "FMI_pixel": Column("FMI_pixel", {"feature": "edge", "value_scale": 1.0}),
        "FMI_dct": Column("FMI_dct", {"value_scale": 1.0}),
        "FMI_w": Column("FMI_w", {"value_scale": 1.0}),
    },
    default=("EN", "SD", "SF", "AG", "MI", "VIF", "SCD", "CC", "Qabf", "PSNR", "MSE"),
)

SEAFUSION = _conv(
    "seafusion",
    "The older copy of Tang's code in Linfeng-Tang/SeAFusion (Evaluation/analysis_Reference.m), which feeds uint8 "
    "images to SD and VIF and im2double [0, 1] images to SF, Qabf, Nabf and the FMIs, and reports MEF-SSIM as SSIM. "
    "Read from the code, not run.",
    {
        "EN": Column("EN"),
        "SD": Column("SD", {"uint8_saturation": True}),
        "SF": Column("SF", {"value_scale": U8, "normalise": "count"}),
        "AG": Column("AG", {"mode": "matlab"}),
        "MI": Column("MI", {"log_base": 2.0, "reduce": "sum", "uint8_index": True}),
        "VIF": Column("VIF", {"kind": "vifp", "reduce": "sum", "noise_var": 2.0, "uint8_products": True}),
        "SCD": Column("SCD"),
        "CC": Column("CC", {"reduce": "mean", "tang_mean_bug": True}),
        "Qabf": Column("Qabf", {"value_scale": U8, "equal_quirk": True}),
        "PSNR": Column("PSNR", {"value_scale": U8, "peak": 255.0}),
        "MSE": Column("MSE", {"value_scale": U8}),
        "SSIM": Column("MEF_SSIM", {"levels": 1}),
        "MS_SSIM": Column("MEF_SSIM", {"levels": 3}),
        "Nabf": Column("Nabf", {"value_scale": U8}),
        "FMI_pixel": Column("FMI_pixel", {"feature": "edge"}),
        "FMI_dct": Column("FMI_dct"),
        "FMI_w": Column("FMI_w"),
    },
    default=("EN", "SD", "SF", "AG", "MI", "VIF", "SCD", "CC", "Qabf", "PSNR", "MSE", "SSIM"),
)

LI = _conv(
    "li",
    "Li/Wu lab MATLAB set (DenseFuse analysis_Reference.m; NestFuse, Res2NetFuse): im2double [0, 1] images. "
    "MI is reported with the analysis_MI.m bug (= 2·EN); MI_correct is the intended value.",
    {
        "EN": Column("EN"),
        "MI": Column("MI", {"matlab_bug": True}),
        "MI_correct": Column("MI", {"log_base": 2.0, "reduce": "sum"}),
        "Qabf": Column("Qabf", {"value_scale": U8, "equal_quirk": True}),
        "FMI_pixel": Column("FMI_pixel"),
        "FMI_dct": Column("FMI_dct"),
        "FMI_w": Column("FMI_w"),
        "SCD": Column("SCD"),
        "SSIM": Column("SSIM", {"reduce": "mean", "shape": "same", "boundary": "replicate", "data_range": 255.0}),
        "MEF_SSIM": Column("MEF_SSIM"),
        "Nabf": Column("Nabf", {"value_scale": U8}),
    },
)

DIDFUSE = _conv(
    "didfuse",
    "DIDFuse (TNNLS extension of IJCAI 2020) Table V as calibrated on its deterministic TSIFVS column "
    "(python -m fusion_core.papers.didfuse.calibration, docs/metric_conventions.md 'DIDFuse Table V calibration'; "
    "alias didfuse_calibrated): our tif images reproduce all 18 TSIFVS cells (6 metrics x TNO, FLIR, NIR-Country) within 0.1 % with EN, AG (MATLAB "
    "gradient), SCD as in didfuse; SD centred on the column means (MATLAB mean(F) of a matrix, broadcast); SF "
    "with one zero-padded difference past the last column and row (2-tap filter, 'same' output), / MN; VIF = "
    "VIFF (Han et al. 2013, the VIFF_Public.m of fusion toolboxes), not VIFp.",
    {
        "EN": Column("EN"),
        # SD_col: the paper's Eq. 19 with mu taken per column; the global SD is 4.6-8.5 % higher on TSIFVS
        "SD": Column("SD", {"centre": "column"}),
        # 2-tap difference filter with zero padding, 'same' output: +10-30 % over the interior-only SF on TSIFVS
        "SF": Column("SF", {"normalise": "mn", "boundary": "zero"}),
        # the paper's prose ('blocks ... integrated') fits any VIF; VIFF reproduces the three TSIFVS cells
        "VIF": Column("VIF", {"kind": "viff"}),
        "AG": Column("AG", {"mode": "matlab"}),
        "SCD": Column("SCD"),
        # optional: didfuse_spec's three differing columns, so one run scores both readings on the same images
        "SD_spec": Column("SD"),
        "SF_spec": Column("SF", {"normalise": "mn"}),
        "VIF_spec": Column("VIF", {"kind": "vifp", "reduce": "sum", "noise_var": 2.0}),
    },
    default=("EN", "SD", "SF", "VIF", "AG", "SCD"),
)

DIDFUSE_SPEC = _conv(
    "didfuse_spec",
    "DIDFuse Table V as spec_001 §5.2 reads it (the repository's didfuse convention until the TSIFVS calibration "
    "of issue 18): EN, SD, SF (1/MN), VIF = VIFp(IR) + VIFp(VIS), AG (MATLAB gradient), SCD on uint8 grey levels.",
    {
        "EN": Column("EN"),
        "SD": Column("SD"),
        "SF": Column("SF", {"normalise": "mn"}),
        "VIF": Column("VIF", {"kind": "vifp", "reduce": "sum", "noise_var": 2.0}),
        "AG": Column("AG", {"mode": "matlab"}),
        "SCD": Column("SCD"),
    },
)

MSFAM = _conv(
    "msfam",
    "Paper 003 (MSFAM, Sensors 2022), spec_003 §5.2: NestFuse MATLAB MI (= 2·EN) next to the correct MI, "
    "CC as a sum (paper values > 1), VIF and MS-SSIM averaged over the two sources.",
    {
        "EN": Column("EN"),
        "MSSIM": Column("MS_SSIM", {"reduce": "mean", "data_range": 255.0}),
        "MI": Column("MI", {"matlab_bug": True}),
        "MI_correct": Column("MI", {"log_base": 2.0, "reduce": "sum"}),
        "SCD": Column("SCD"),
        "CC": Column("CC", {"reduce": "sum"}),
        "CC_mean": Column("CC", {"reduce": "mean"}),
        "VIF": Column("VIF", {"kind": "vifp", "reduce": "mean"}),
    },
)

AMFE = _conv(
    "amfe",
    "Paper 004 (AMFE), spec_004 §5.2: MI summed (bits), CC averaged, VIFF, Qabf, SCD, SSIM averaged (L = 255).",
    {
        "MI": Column("MI", {"log_base": 2.0, "reduce": "sum"}),
        "CC": Column("CC", {"reduce": "mean"}),
        "VIF": Column("VIF", {"kind": "viff"}),
        "Qabf": Column("Qabf", {"equal_quirk": False}),
        "SCD": Column("SCD"),
        "SSIM": Column("SSIM", {"reduce": "mean", "shape": "valid", "data_range": 255.0}),
    },
)

SAVF = _conv(
    "savf",
    "Paper 000 (SAVF), spec_000 §5.2: EN, CPBD, JNB, VIF (VIFp, mean), AG, SSIM (mean), MI (sum, bits); "
    "extras SD, SF, Qabf.",
    {
        "EN": Column("EN"),
        "CPBD": Column("CPBD"),
        "JNB": Column("JNB"),
        "VIF": Column("VIF", {"kind": "vifp", "reduce": "mean"}),
        "AG": Column("AG", {"mode": "matlab"}),
        "SSIM": Column("SSIM", {"reduce": "mean", "shape": "valid", "data_range": 255.0}),
        "MI": Column("MI", {"log_base": 2.0, "reduce": "sum"}),
        "SD": Column("SD"),
        "SF": Column("SF", {"normalise": "mn"}),
        "Qabf": Column("Qabf", {"equal_quirk": False}),
    },
)

CONVENTIONS: dict[str, Convention] = {c.name: c for c in (VIFB, TANG, SEAFUSION, LI, DIDFUSE, DIDFUSE_SPEC, MSFAM, AMFE,
                                                          SAVF)}
# paper aliases: the convention each paper's tables used
ALIASES: dict[str, str] = {"res2netfuse": "li", "densefuse": "li", "nestfuse": "li", "didfuse_calibrated": "didfuse"}
# VIFB's file suffixes (metrics_single/<pair>_<method>_<suffix>.txt) → our column names
VIFB_SUFFIX = {
    "Avg_gradient": "AG", "Cross_entropy": "CE", "Edge_intensity": "EI", "Entropy": "EN", "Mutinf": "MI",
    "Psnr": "PSNR", "Qabf": "Qabf", "Qcb": "Qcb", "Qcv": "Qcv", "Rmse": "RMSE", "Spatial_frequency": "SF",
    "Variance": "SD", "Ssim": "SSIM",
}


def get_convention(name: str) -> Convention:
    key = ALIASES.get(name, name)
    try:
        return CONVENTIONS[key]
    except KeyError:
        known = ", ".join(sorted(set(CONVENTIONS) | set(ALIASES)))
        raise ValueError(f"unknown convention '{name}'; known: {known}") from None
