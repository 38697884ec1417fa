"""Classical baselines: CLI on real crops, identities, known answers, and agreement with VIFB's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from fusion_core import cli, data
from fusion_core.classical import VIFB_RGB, classical_names, fuse_rgb_per_channel
from fusion_core.classical import _vifb as vifb
from fusion_core.methods import build_method, method_names

method_names()  # registers everything
CLASSICAL = classical_names()
EXPECTED = {"adf", "average", "cbf", "dchwt", "dtcwt", "dwt", "gff", "gtf", "lp", "max", "msvd", "pca", "rp", "tif"}
# fusing A with B equals fusing B with A (up to ties); GTF (IR intensities, VIS gradients) and GFF
# (ties to the first source) are asymmetric by design
SYMMETRIC = sorted(set(CLASSICAL) - {"gtf", "gff"})


@pytest.fixture(scope="module")
def crop_pair(data_root):
    """A real 72×96 crop of one VIFB pair (IR grey, VIS Y), float64 1×1×H×W."""
    pair = next(p for p in data.list_pairs("vifb21") if p.stem == "walking")
    images = data.load_pair(pair)
    window = (..., slice(100, 172), slice(120, 216))
    return images.ir[window].double(), images.vis[window].double()


def test_every_listed_method_is_registered():
    assert EXPECTED <= set(CLASSICAL)


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_fusing_an_image_with_itself_returns_it(method, crop_pair):
    ir, _ = crop_pair
    fused = build_method(method)(ir, ir.clone())
    assert fused.shape == ir.shape
    assert torch.allclose(fused, ir, atol=1e-6), float((fused - ir).abs().max())


@pytest.mark.parametrize("method", SYMMETRIC)
def test_symmetric_methods_do_not_depend_on_input_order(method, crop_pair):
    ir, vis = crop_pair
    fuse = build_method(method)
    assert torch.allclose(fuse(ir, vis), fuse(vis, ir), atol=1e-6)


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_batch_equals_one_by_one_and_is_deterministic(method, crop_pair):
    ir, vis = crop_pair
    fuse = build_method(method)
    batch = fuse(torch.cat([ir, vis]), torch.cat([vis, ir]))
    assert torch.equal(batch[:1], fuse(ir, vis))
    assert torch.equal(batch[1:], fuse(vis, ir))


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_mismatched_shapes_are_rejected_with_the_shapes(method):
    with pytest.raises(ValueError, match=r"\(1, 1, 8, 8\)"):
        build_method(method)(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 9))


@pytest.mark.parametrize("method", sorted(EXPECTED - {"average"}))
def test_classical_methods_reject_weights(method):
    with pytest.raises(ValueError, match="--weights"):
        build_method(method, weights="x.pth")


def test_gtf_keeps_ir_when_it_differs_from_vis_by_a_constant(crop_pair):
    _, vis = crop_pair
    ir = vis + 0.1  # u - v constant: zero TV and zero fidelity cost at y = u - v
    assert torch.allclose(build_method("gtf")(ir, vis), ir, atol=1e-5)


def test_gtf_removes_a_small_ir_spot_and_keeps_a_large_one():
    vis = torch.zeros(1, 1, 64, 64, dtype=torch.float64)
    ir = vis.clone()
    ir[..., 5:7, 5:7] = 1.0  # 2×2: perimeter cost λ·8 > area cost 4 -> removed
    ir[..., 20:50, 20:50] = 1.0  # 30×30: kept
    fused = build_method("gtf")(ir, vis)
    assert float(fused[..., 5:7, 5:7].max()) < 0.1
    assert float(fused[..., 25:45, 25:45].min()) > 0.9


def test_cbf_edge_strength_matches_the_covariance_definition():
    from fusion_core.classical.cbf import edge_strength

    rng = np.random.default_rng(0)
    detail = rng.normal(size=(9, 11))
    strength = edge_strength(detail, 5)
    padded = np.pad(detail, 2, mode="reflect")  # mirror without repeating the edge
    for i, j in [(0, 0), (4, 5), (8, 10), (2, 9)]:
        window = padded[i : i + 5, j : j + 5]
        expected = np.trace(np.cov(window, rowvar=False)) + np.trace(np.cov(window, rowvar=True))
        assert strength[i, j] == pytest.approx(expected, rel=1e-9)


def test_cbf_gives_flat_regions_equal_weights_exactly():
    """Where both sources are flat the details are exactly 0 (not rounding noise), so both weights are
    ε and the result is the mean, whatever the CPU (docs/portability.md)."""
    from fusion_core.classical.cbf import cbf_array, cross_bilateral_detail

    ir, vis = np.full((24, 30), 200 / 255), np.full((24, 30), 51 / 255)
    vis[:, 20:] = 90 / 255  # a step: the detail is 0 only away from it
    assert np.all(cross_bilateral_detail(ir * 255, vis * 255) == 0)
    assert np.array_equal(cbf_array(ir, vis)[:, :8], np.full((24, 8), (200 + 51) / 2 / 255))


# The CBF output must not depend on the SIMD level of torch, numpy or OpenCV: it once did (noise weights
# in flat regions; 1,797 8-bit values of vifb21 changed under ATEN_CPU_CAPABILITY=default). On this
# 160×448 strip of carWhite the former version gave 3 different 8-bit values (smaller crops hid it).
_FUSE_CROP = """
import sys, numpy as np, torch
from fusion_core import data
from fusion_core.classical import _vifb as vifb
pair = next(p for p in data.list_pairs("vifb21") if p.stem == "carWhite")
ir, vis = vifb.load_rgb_pair(pair)
fused = vifb.VIFB_RGB["cbf"](ir[..., :160, :].double(), vis[..., :160, :].double())
sys.stdout.write(fused.numpy().tobytes().hex())
"""


@pytest.mark.slow
def test_cbf_output_is_bit_identical_under_other_simd_levels(data_root):
    import os
    import subprocess
    import sys

    def run(**env):
        done = subprocess.run([sys.executable, "-c", _FUSE_CROP], capture_output=True, text=True, check=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1", **env})
        return done.stdout

    scalar = run(ATEN_CPU_CAPABILITY="default", NPY_DISABLE_CPU_FEATURES="X86_V3",
                 OPENCV_CPU_DISABLE="AVX2,FMA3,AVX")
    assert run() == scalar


def test_dchwt_and_msvd_decompositions_reconstruct_exactly():
    from fusion_core.classical.dchwt import dchwt_forward, dchwt_inverse
    from fusion_core.classical.msvd import msvd

    x = np.random.default_rng(1).random((37, 50))
    assert np.allclose(dchwt_inverse(dchwt_forward(x), x.shape), x, atol=1e-12)
    t, u = msvd(x[:36])
    assert np.allclose(u.T @ u, np.eye(4), atol=1e-12)
    # columns: 2×2 blocks read column-major, blocks in column-major order (MATLAB's layout)
    assert np.allclose(u @ t, np.stack([x[:36:2, ::2].ravel("F"), x[1:36:2, ::2].ravel("F"),
                                        x[:36:2, 1::2].ravel("F"), x[1:36:2, 1::2].ravel("F")]), atol=1e-12)


@pytest.mark.parametrize("split, merge", [(np.subtract, np.add), (np.divide, np.multiply)])
def test_gaussian_pyramid_bands_collapse_back_to_the_image(split, merge, crop_pair):
    from fusion_core.classical._multiscale import collapse, gaussian_pyramid_bands

    ir = crop_pair[0][0, 0, :71, :93].numpy() + 0.1  # odd sizes; positive for the ratio pyramid
    bands = gaussian_pyramid_bands(ir, 4, split)
    assert [b.shape for b in bands] == [(71, 93), (36, 47), (18, 24), (9, 12), (5, 6)]
    assert np.allclose(collapse(bands, merge), ir, atol=1e-12)
    assert len(gaussian_pyramid_bands(ir[:1, :7], 4, split)) == 1  # nothing left to halve


def test_lp_and_rp_fuse_their_pyramids_with_the_documented_rules(crop_pair):
    from fusion_core.classical import lp, rp
    from fusion_core.classical._multiscale import collapse

    a, b = (t[0, 0].numpy() for t in crop_pair)
    la, lb = lp.laplacian_pyramid(a), lp.laplacian_pyramid(b)
    details = [np.where(np.abs(x) >= np.abs(y), x, y) for x, y in zip(la[:-1], lb[:-1])]
    assert np.allclose(lp.lp_array(a, b), collapse(details + [(la[-1] + lb[-1]) / 2], np.add), atol=1e-12)
    ra, rb = rp.ratio_pyramid(a + rp.OFFSET), rp.ratio_pyramid(b + rp.OFFSET)
    ratios = [np.where(np.abs(x - 1) >= np.abs(y - 1), x, y) for x, y in zip(ra[:-1], rb[:-1])]
    fused = collapse(ratios + [(ra[-1] + rb[-1]) / 2], np.multiply) - rp.OFFSET
    assert np.allclose(rp.rp_array(a, b), fused, atol=1e-12)


def test_rgb_per_channel_helper_fuses_each_channel_with_the_ir():
    ir, vis = torch.rand(1, 1, 16, 16), torch.rand(1, 3, 16, 16)
    out = fuse_rgb_per_channel(torch.maximum, ir, vis)
    assert torch.equal(out, torch.maximum(ir, vis))
    with pytest.raises(ValueError, match="N×3×H×W"):
        fuse_rgb_per_channel(torch.maximum, ir, vis[:, :2])


@pytest.mark.parametrize("method", sorted(EXPECTED))
def test_cli_fuses_a_folder_of_real_crops(method, data_root, tmp_path):
    stems = ["walking", "fight"]
    for pair in (p for p in data.list_pairs("vifb21") if p.stem in stems):
        for side in ("ir", "vis"):
            (tmp_path / side).mkdir(exist_ok=True)
            pixels = np.round(data.read_array(getattr(pair, side))[60:108, 80:144] * 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / side / f"{pair.stem}.png")
    code = cli.main(["fuse", "--method", method, "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
                     "--out", str(tmp_path / "out")])
    assert code == 0
    for stem in stems:
        fused = np.asarray(Image.open(tmp_path / "out" / f"{stem}.png"))
        assert fused.shape == (48, 64, 3)
        y = data.rgb_to_ycbcr(fused / 255.0)[..., 0]
        ir = data.read_grey(tmp_path / "ir" / f"{stem}.png")[0, 0].numpy()
        vis = data.read_grey(tmp_path / "vis" / f"{stem}.png")[0, 0].numpy()
        # the fused image carries the sources' structure
        corr = max(np.corrcoef(y.ravel(), ir.ravel())[0, 1], np.corrcoef(y.ravel(), vis.ravel())[0, 1])
        assert corr > 0.5, corr


# SSIM of our VIFB-style colour output against VIFB's stored JPEG, on two small pairs (full images:
# the mean filters of TIF and GFF see the whole image). MSVD is not here: on peopleshadow VIFB's
# MATLAB returned other singular-vector signs than LAPACK's (see the MSVD tests below).
@pytest.mark.parametrize("method", ["adf", "gff", "tif", "gtf"])
@pytest.mark.parametrize("stem", ["walking", "peopleshadow"])
def test_agrees_with_vifb_fused_image(method, stem, data_root):
    pair = next(p for p in data.list_pairs("vifb21") if p.stem == stem)
    ir, vis = vifb.load_rgb_pair(pair)
    ours = vifb.fuse_like_vifb(method, ir, vis)
    theirs = vifb.read_rgb8(vifb.reference_path(stem, method))
    result = vifb.agreement(ours, theirs)
    assert result["ssim"] >= 0.95, result
    assert result["psnr"] >= 30.0, result


def test_every_vifb_overlap_has_a_colour_variant():
    assert set(vifb.VIFB_NAMES) <= set(VIFB_RGB)


# Stored as VIFB stored its outputs (quality-75 JPEG, which PIL encodes like MATLAB), our ADF, CBF,
# TIF, MSVD (LAPACK's singular-vector signs) and GFF (inputs re-encoded like VIFB did) reproduce
# VIFB's files exactly on this pair: any change to their arithmetic breaks this.
# carWhite: CBF with flat regions in both sources (equal weights there, as VIFB's MATLAB had).
@pytest.mark.parametrize("method, stem", [("adf", "walking"), ("cbf", "walking"), ("tif", "walking"),
                                          ("gff", "walking"), ("msvd", "walking"), ("cbf", "carWhite")])
def test_reproduces_vifb_file_exactly_after_jpeg(method, stem, data_root):
    pair = next(p for p in data.list_pairs("vifb21") if p.stem == stem)
    ir, vis = vifb.load_rgb_pair(pair)
    ours = vifb.fuse_like_vifb(method, ir, vis)
    result = vifb.jpeg_agreement(ours, vifb.read_rgb8(vifb.reference_path(stem, method)))
    assert result["px_equal"] >= 0.999, result


def test_vifb_files_are_quality_75_jpegs(data_root):
    for stem, method in [("walking", "gff"), ("labMan", "msvd"), ("running", "tif")]:
        assert vifb.jpeg_quality(vifb.reference_path(stem, method)) == vifb.JPEG_QUALITY


def test_vifb_gff_did_not_fuse_the_pairs_with_a_single_channel_ir_file(data_root):
    pairs = {p.stem: p for p in data.list_pairs("vifb21")}
    assert {s for s, p in pairs.items() if not vifb.vifb_fused("gff", p)} == {
        "manWalking", "running", "walking2", "walkingnight"}
    assert all(vifb.vifb_fused("msvd", p) for p in pairs.values())
    # VIFB's file is the visible image with its green plane replaced by the IR image, value for value
    pair = pairs["running"]
    theirs = vifb.read_rgb8(vifb.reference_path("running", "gff"))
    assert vifb.jpeg_agreement(vifb.vifb_gff_unfused(pair), theirs)["px_equal"] == 1.0
    ours = vifb.fuse_like_vifb("gff", *vifb.load_rgb_pair(pair))
    assert vifb.agreement(ours, theirs)["ssim"] < 0.8  # a real fusion is far from it


def test_msvd_disagreement_with_vifb_is_singular_vector_signs_only(data_root):
    """peopleshadow: with LAPACK's signs SSIM ~0.75; flipping two of U's columns on the visible side
    (what VIFB's MATLAB returned) reproduces VIFB's file value for value after JPEG storage."""
    pair = next(p for p in data.list_pairs("vifb21") if p.stem == "peopleshadow")
    ours = vifb.fuse_like_vifb("msvd", *vifb.load_rgb_pair(pair))
    assert vifb.agreement(ours, vifb.read_rgb8(vifb.reference_path("peopleshadow", "msvd")))["ssim"] < 0.8
    found = vifb.msvd_signs_reproducing_vifb(pair)
    assert found["px_equal"] == 1.0, found
    assert all(f == [1, -1, -1, 1] for f in found["flips"]), found
