"""The command line: datasets listing, fuse on real pairs, clear errors and no partial output."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from fusion_core import cli, data


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "fusion_core", *args], capture_output=True, text=True)


def test_datasets_lists_every_registered_set(data_root):
    result = run_cli("datasets")
    assert result.returncode == 0, result.stderr
    for name in data.DATASETS:
        assert name in result.stdout


def test_fuse_average_on_real_colour_pairs_writes_colour_pngs(data_root, tmp_path):
    pairs = data.list_pairs("vifb21")[:2]
    for pair in pairs:
        for side in ("ir", "vis"):
            (tmp_path / side).mkdir(exist_ok=True)
            shutil.copy(getattr(pair, side), tmp_path / side / getattr(pair, side).name)
    assert cli.main(["fuse", "--method", "average", "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
                     "--out", str(tmp_path / "out")]) == 0
    for pair in pairs:
        fused = np.asarray(Image.open(tmp_path / "out" / f"{pair.stem}.png"))
        images = data.load_pair(pair)
        assert fused.shape == images.ir.shape[-2:] + (3,)
        # Y of the written colour image is the average of the two Y inputs (to 8-bit rounding of RGB).
        y = data.rgb_to_ycbcr(fused / 255.0)[..., 0]
        expected = 0.5 * (images.ir + images.vis)[0, 0].numpy()
        assert np.abs(y - expected).mean() < 1.5 / 255


def test_fuse_with_a_mismatched_pair_writes_nothing(tmp_path, capsys):
    for side, width in (("ir", 8), ("vis", 9)):
        (tmp_path / side).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / side / "a.png")
        Image.fromarray(np.zeros((8, width), np.uint8)).save(tmp_path / side / "b.png")
    code = cli.main(["fuse", "--method", "average", "--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vis"),
                     "--out", str(tmp_path / "out")])
    assert code == 2
    assert "b.png: size 8x8 does not match" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_method_is_one_clear_error(tmp_path, capsys):
    code = cli.main(["fuse", "--method", "nope", "--ir", str(tmp_path), "--vis", str(tmp_path), "--out", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_classical_method_rejects_weights(data_root, tmp_path, capsys):
    pair = data.list_pairs("tno40")[0]
    code = cli.main(["fuse", "--method", "average", "--weights", "x.pt", "--ir", str(pair.ir.parent),
                     "--vis", str(pair.vis.parent), "--out", str(tmp_path / "out")])
    assert code == 2 and "takes no --weights" in capsys.readouterr().err
