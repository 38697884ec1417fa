"""Data access: registry counts, pairing rules, reading/writing, and one clear error per bad input."""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fusion_core import data


def _save(path, array, fmt="PNG"):
    Image.fromarray(array).save(path, format=fmt)
    return path


@pytest.mark.parametrize("name", [n for n, d in data.DATASETS.items() if d.expected_pairs is not None])
def test_registered_set_has_expected_pairs(data_root, name):
    pairs = data.list_pairs(name)
    assert len(pairs) == data.DATASETS[name].expected_pairs
    assert len({p.stem for p in pairs}) == len(pairs)


def test_fel_sequence_pairs_thermal_with_visual_frame(data_root):
    pairs = data.list_pairs("tno_duine")
    assert all(p.ir.name == f"{p.stem}i.png" and p.vis.name == f"{p.stem}v.png" for p in pairs)


def test_tno_scene_pairs_skip_nir_and_reference_images(data_root):
    pairs = {p.stem: p for p in data.list_pairs("tno_scenes")}
    kaptein = pairs["Triclobs_images__Kaptein_1123"]
    assert (kaptein.ir.name, kaptein.vis.name) == ("Kaptein_1123_IR.png", "Kaptein_1123_Vis.png")
    assert not any("NIR" in p.ir.name or "REF" in p.vis.name for p in pairs.values())


def test_real_pairs_load_as_unit_range_tensors(data_root):
    for name in ["tno40", "tno42", "vifb21", "flir_train180"]:
        images = data.load_pair(data.list_pairs(name)[0])
        assert images.ir.dtype == torch.float32 and images.ir.ndim == 4 and images.ir.shape[:2] == (1, 1)
        assert images.ir.shape == images.vis.shape
        assert 0 <= images.ir.min() and images.ir.max() <= 1


def test_grey_stored_as_rgb_is_read_as_grey_without_chroma(data_root):
    images = data.load_pair(data.list_pairs("tno42")[0])  # tno42 stores grey content as RGB
    raw = data.read_array(images.pair.vis)
    assert images.cbcr is None
    assert torch.equal(images.vis[0, 0], torch.from_numpy(raw[..., 0]).float())


def test_colour_visible_keeps_chroma_for_reattachment(data_root):
    images = data.load_pair(data.list_pairs("vifb21")[0])
    assert images.cbcr is not None and images.cbcr.shape == (1, 2) + images.vis.shape[-2:]


def test_ycbcr_round_trip_is_lossless_to_8_bits():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3)).astype(np.float64) / 255
    back = data.ycbcr_to_rgb(data.rgb_to_ycbcr(rgb))
    assert np.abs(np.round(back * 255) - rgb * 255).max() == 0


def test_write_then_read_colour_image_restores_pixels(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (20, 30, 3)).astype(np.uint8)
    src = _save(tmp_path / "src.png", rgb)
    y, cbcr = data.read_vis(src)
    out = data.write_image(tmp_path / "out.png", y, cbcr)
    assert np.array_equal(np.asarray(Image.open(out)), rgb)
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_sixteen_bit_images_are_scaled_with_a_warning(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(path)
    with pytest.warns(UserWarning, match="16-bit"):
        grey = data.read_grey(path)
    assert torch.allclose(grey, torch.ones_like(grey))


def _decoded_files(decoded, count, timeout=60.0):
    """Wait until the decoding process has written ``count`` files."""
    import time

    deadline = time.monotonic() + timeout
    while len(list(decoded.folder.glob("*[0-9].npy"))) < count:
        assert time.monotonic() < deadline, f"{count} images not decoded ahead in {timeout} s"
        time.sleep(0.02)


@pytest.fixture
def two_cpus(monkeypatch):
    """decoding_ahead forks only with 2+ CPUs: pretend there are two, so its forked path runs on any machine."""
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)


def test_decoding_ahead_serves_read_pixels_values_from_another_process(data_root, two_cpus, monkeypatch):
    import os

    pairs = data.list_pairs("tno42")[:2]
    paths = [path for pair in pairs for path in (pair.ir, pair.vis)]  # colour-stored and grey 8-bit PNGs
    expected = [data.read_pixels(path) for path in paths]
    with data.decoding_ahead(paths + paths[:1]) as decoded:  # a path named twice is decoded once
        assert decoded.pid and decoded.pid != os.getpid()
        _decoded_files(decoded, len(paths))
        folder, pid = decoded.folder, decoded.pid
        with monkeypatch.context() as m:  # from the files now, not by decoding here
            m.setattr(data, "read_pixels", lambda path: pytest.fail(f"decoded {path} again"))
            for path, want in zip(paths, expected):
                got = decoded(path)
                assert got.dtype == want.dtype and np.array_equal(got, want)
                if want.ndim == 3:  # grey stored as RGB: one channel, seen three times, read-only
                    assert got.strides[-1] == 0 and not got.flags.writeable
        other = data.list_pairs("tno42")[2].ir  # not asked for: decoded on the spot
        assert np.array_equal(decoded(other), data.read_pixels(other))
    assert not folder.exists()
    with pytest.raises(ChildProcessError):  # reaped
        os.waitpid(pid, os.WNOHANG)


def test_decoding_ahead_leaves_bad_and_16_bit_images_to_the_reader(tmp_path, two_cpus):
    good = _save(tmp_path / "good.png", np.arange(48, dtype=np.uint8).reshape(6, 8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(deep)
    with data.decoding_ahead([bad, deep, good]) as decoded:
        _decoded_files(decoded, 1)
        assert sorted(p.name for p in decoded.folder.iterdir()) == ["2.npy"]
        with pytest.raises(data.DataError, match=f"{bad}: not a readable image"):
            decoded(bad)
        with pytest.warns(UserWarning, match="16-bit"):
            assert decoded(deep).dtype == np.float64
        assert np.array_equal(decoded(good), data.read_pixels(good))


def test_decoding_ahead_stopped_early_still_reads_everything(data_root, two_cpus):
    paths = [pair.vis for pair in data.list_pairs("tno42")[:6]]
    with data.decoding_ahead(paths) as decoded:
        decoded.stop()
        assert decoded.pid == 0
        for path in paths:
            assert np.array_equal(decoded(path), data.read_pixels(path))


def test_read_pixels_keeps_8_bit_levels_and_read_array_is_them_over_255(tmp_path):
    rng = np.random.default_rng(2)
    grey = rng.integers(0, 256, (6, 7)).astype(np.uint8)
    rgb = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    images = {"grey.png": Image.fromarray(grey), "rgb.png": Image.fromarray(rgb),
              "palette.png": Image.fromarray(rgb).convert("P"), "alpha.png": Image.fromarray(rgb).convert("RGBA"),
              "grey_alpha.png": Image.fromarray(grey).convert("LA")}
    for name, image in images.items():
        image.save(tmp_path / name)
        pixels = data.read_pixels(tmp_path / name)
        assert pixels.dtype == np.uint8 and pixels.flags.writeable, name
        assert np.array_equal(data.read_array(tmp_path / name), pixels / 255.0), name
    assert np.array_equal(data.read_pixels(tmp_path / "grey.png"), grey)
    assert np.array_equal(data.read_pixels(tmp_path / "alpha.png"), rgb)
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    with pytest.warns(UserWarning, match="16-bit"):
        assert data.read_pixels(tmp_path / "deep.png").dtype == np.float64
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(data.DataError, match=r"broken\.png: not a readable image"):
        data.read_pixels(tmp_path / "broken.png")


def test_missing_partner_names_the_file(tmp_path):
    (tmp_path / "ir").mkdir(), (tmp_path / "vis").mkdir()
    grey = np.zeros((4, 4), np.uint8)
    _save(tmp_path / "ir" / "a.png", grey), _save(tmp_path / "vis" / "a.png", grey)
    _save(tmp_path / "ir" / "b.png", grey)
    with pytest.raises(data.DataError, match=r"b\.png: no partner with stem 'b'"):
        data.pairs_from_dirs(tmp_path / "ir", tmp_path / "vis")


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "ir").mkdir(), (tmp_path / "vis").mkdir()
    with pytest.raises(data.DataError, match="no images"):
        data.pairs_from_dirs(tmp_path / "ir", tmp_path / "vis")


def test_size_mismatch_names_both_files(tmp_path):
    pair = data.Pair("t", "x", _save(tmp_path / "ir.png", np.zeros((4, 5), np.uint8)),
                     _save(tmp_path / "vis.png", np.zeros((4, 6), np.uint8)))
    with pytest.raises(data.DataError, match=r"ir\.png: size 5x4 does not match its partner .*vis\.png"):
        data.check_pair(pair)
    with pytest.raises(data.DataError, match="does not match"):
        data.load_pair(pair)


def test_unsupported_bit_depth_is_rejected(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(path)  # mode 'F': 32-bit float
    with pytest.raises(data.DataError, match=r"float\.tif: unsupported image mode 'F'"):
        data.read_grey(path)


def test_unknown_data_set_lists_the_known_ones():
    with pytest.raises(data.DataError, match="unknown data set 'nope'; known: tno40"):
        data.get_dataset("nope")


def test_missing_data_root_says_how_to_set_it(monkeypatch, tmp_path):
    monkeypatch.setenv("FUSION_DATA", str(tmp_path / "absent"))
    with pytest.raises(data.DataError, match="Set FUSION_DATA="):
        data.data_root()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=2048), suffix=st.sampled_from([".png", ".bmp", ".jpg"]))
def test_random_bytes_give_one_clear_error(tmp_path, payload, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(payload)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = data.read_grey(path)
    except data.DataError as exc:
        assert str(exc).startswith(str(path))
    else:  # astronomically unlikely, but if the bytes decode, the result must be a valid image
        assert image.ndim == 4 and 0 <= image.min() <= image.max() <= 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 40), width=st.integers(1, 40), fmt=st.sampled_from(["PNG", "BMP", "JPEG"]),
       cut=st.floats(0.05, 0.9))
def test_truncated_images_never_decode_silently_wrong(tmp_path, height, width, fmt, cut):
    """A cut file gives one error naming it, or (cut only in trailing metadata) exactly the full image."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(height * width).integers(0, 256, (height, width), dtype=np.uint8)).save(buffer, format=fmt)
    blob = buffer.getvalue()
    whole, path = tmp_path / f"whole.{fmt.lower()}", tmp_path / f"cut.{fmt.lower()}"
    whole.write_bytes(blob)
    path.write_bytes(blob[: max(1, int(len(blob) * cut))])
    try:
        grey = data.read_grey(path)
    except data.DataError as exc:
        assert str(exc).startswith(str(path))
    else:
        assert torch.equal(grey, data.read_grey(whole))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(height=st.integers(1, 37), width=st.integers(1, 37), fmt=st.sampled_from(["PNG", "BMP"]))
def test_odd_sizes_round_trip_exactly(tmp_path, height, width, fmt):
    pixels = np.random.default_rng(height + 100 * width).integers(0, 256, (height, width), dtype=np.uint8)
    path = _save(tmp_path / f"odd.{fmt.lower()}", pixels, fmt)
    grey = data.read_grey(path)
    assert grey.shape == (1, 1, height, width)
    assert np.array_equal(data.to_uint8(grey), pixels)


def test_pixel_hash_ignores_container_format(tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (9, 7), dtype=np.uint8)
    assert data.pixel_hash(_save(tmp_path / "a.png", pixels)) == data.pixel_hash(_save(tmp_path / "a.bmp", pixels, "BMP"))


def test_checksums_of_a_real_set_verify(data_root):
    checked, problems = data.verify_checksums("tno_tree")
    assert checked == 38 and problems == []
