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


# --------------------------------------------------------------------------- issue 17: defaults, tables, score

SMALL = ("08", "05", "11")  # the three smallest tno42 pairs (256² and 280²): real data, quick to score


def _fused_folder(tmp_path, stems=SMALL, dataset="tno42"):
    """A folder of 'fused' images: each pair's infrared image under its stem (real data, known sources)."""
    pairs = {p.stem: p for p in data.list_pairs(dataset)}
    folder = tmp_path / "fused"
    folder.mkdir()
    for stem in stems:
        shutil.copy(pairs[stem].ir, folder / f"{stem}.png")
    return folder


def _pair_folders(tmp_path, stems, dataset="tno42"):
    pairs = {p.stem: p for p in data.list_pairs(dataset)}
    for side in ("ir", "vis"):
        (tmp_path / side).mkdir()
        for stem in stems:
            shutil.copy(getattr(pairs[stem], side), tmp_path / side / f"{stem}.png")
    return tmp_path / "ir", tmp_path / "vis"


@pytest.mark.parametrize("method, weights_name", [("didfuse", "weights"), ("res2netfuse", "r2n_1_seed0.pt"),
                                                  ("nestfuse", "nestfuse_reduced_seed0.pt")])
def test_learned_method_fuses_without_weights_and_says_which(data_root, tmp_path, method, weights_name):
    from fusion_core.methods import resolve_weights

    ir, vis = _pair_folders(tmp_path, ["08"])
    extra = ["--rule", "sum"] if method == "didfuse" else []
    result = run_cli("fuse", "--method", method, "--ir", str(ir), "--vis", str(vis), "--out", str(tmp_path / "out"),
                     *extra)
    assert result.returncode == 0, result.stderr
    path, note = resolve_weights(method)
    assert path.name == weights_name and f"{method}: weights {path} (default: " in result.stdout
    assert (tmp_path / "out" / "08.png").is_file()


def test_didfuse_default_is_the_released_weights_else_the_reference_checkpoint(data_root, tmp_path, monkeypatch):
    from fusion_core.papers.didfuse import model as didfuse

    released = didfuse.released_weights_dir()
    if all((released / name).is_file() for name in didfuse.RELEASED_FILES):
        assert didfuse.default_weights().path == released
    (tmp_path / "data").mkdir()  # a data root with no reference folder beside it
    monkeypatch.setenv("FUSION_DATA", str(tmp_path / "data"))
    fallback = didfuse.default_weights()
    assert fallback.path == didfuse.REFERENCE_CHECKPOINT and fallback.path.is_file()
    assert "no released weights in" in fallback.reason


def test_explicit_weights_override_the_default(data_root, tmp_path):
    from fusion_core.papers.didfuse.model import REFERENCE_CHECKPOINT

    ir, vis = _pair_folders(tmp_path, ["08"])
    result = run_cli("fuse", "--method", "didfuse", "--weights", str(REFERENCE_CHECKPOINT), "--rule", "sum",
                     "--ir", str(ir), "--vis", str(vis), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert f"weights {REFERENCE_CHECKPOINT} (--weights)" in result.stdout


def test_fuse_takes_a_registered_dataset(data_root, tmp_path):
    code = cli.main(["fuse", "--method", "average", "--dataset", "tno_marne_04", "--out", str(tmp_path / "out")])
    assert code == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"{data.list_pairs('tno_marne_04')[0].stem}.png"]


@pytest.mark.parametrize("args, message", [
    (["--dataset", "nope"], "unknown data set 'nope'"),
    (["--dataset", "tno42", "--ir", "x"], "either --dataset or --ir/--vis"),
    (["--ir", "x"], "--dataset NAME, or both --ir DIR and --vis DIR"),
])
def test_fuse_bad_source_options_are_one_error_and_write_nothing(tmp_path, capsys, args, message):
    code = cli.main(["fuse", "--method", "average", *args, "--out", str(tmp_path / "out")])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_methods_table_describes_every_method(tmp_path, monkeypatch):
    from fusion_core import methods

    table_csv = tmp_path / "speed.csv"
    table_csv.write_text("method,s_per_pair\naverage,0.0123\n")
    monkeypatch.setattr(methods, "SPEED_TABLE", table_csv)
    table = methods.method_table()
    lines = {line.split()[0]: line for line in table.splitlines() if line.split()}
    for name in methods.method_names():
        assert name in lines
    assert "0.01" in lines["average"] and "not measured" in lines["cbf"]
    assert "learned" in lines["didfuse"] and "sal+cam" in lines["didfuse"] and "Zhao et al. 2020" in lines["didfuse"]
    assert "classical" in lines["cbf"] and "Kumar 2015" in lines["cbf"]
    assert "r2n_1_seed0.pt" in lines["res2netfuse"]


@pytest.mark.slow
def test_methods_and_conventions_commands_print_their_tables():
    from fusion_core.metrics import CONVENTIONS

    methods_out = run_cli("methods")
    assert methods_out.returncode == 0 and "default weights" in methods_out.stdout
    conventions_out = run_cli("conventions")
    assert conventions_out.returncode == 0
    for name in CONVENTIONS:
        assert f"\n{name} " in conventions_out.stdout
    assert "Evaluation-for-Image-Fusion" in conventions_out.stdout


@pytest.mark.slow
def test_help_lists_methods_and_conventions_and_speaks_to_users():
    top = run_cli("--help").stdout
    assert "Thin" not in top and "fuse --method" in top
    fuse_help = run_cli("fuse", "--help").stdout
    assert all(name in fuse_help for name in ("didfuse", "res2netfuse", "cbf", "gff"))
    score_help = run_cli("score", "--help").stdout
    assert all(name in score_help for name in ("tang", "vifb", "li", "didfuse"))


def test_score_by_dataset_prints_mean_and_std_skips_sources_without_fused(data_root, tmp_path):
    fused = _fused_folder(tmp_path)
    result = run_cli("score", "--fused", str(fused), "--dataset", "tno42", "--metrics", "EN,SD,Qabf")
    assert result.returncode == 0, result.stderr
    assert "scored 3 images" in result.stdout and "39 source pairs without a fused image skipped" in result.stdout
    en = next(line for line in result.stdout.splitlines() if line.split()[:1] == ["EN"])
    assert "±" in en
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused"]  # nothing written without --out


def test_score_command_exits_with_its_outputs_complete_and_its_scratch_removed(data_root, tmp_path):
    """`python -m fusion_core score` leaves without the interpreter's teardown (os._exit): everything printed and
    written must be there, the exit code must be the command's, and the decoded-ahead images must be gone."""
    import os

    fused = _fused_folder(tmp_path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    # Buffered output, as a pipe gets it by default: what the command does not flush before os._exit is lost.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}, "TMPDIR": str(scratch)}
    done = subprocess.run([sys.executable, "-m", "fusion_core", "score", "--fused", str(fused), "--dataset", "tno42",
                           "--metrics", "EN,VIF", "--out", str(tmp_path / "s.csv")], capture_output=True, text=True,
                          env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].split()[0] == "VIF"  # the last line printed arrived
    assert [row.split(",")[0] for row in (tmp_path / "s.csv").read_text().splitlines()] == ["image", "05", "08", "11"]
    assert list(scratch.iterdir()) == []
    failed = subprocess.run([sys.executable, "-m", "fusion_core", "score", "--fused", str(fused), "--dataset", "tno42",
                             "--metrics", "EN,NOPE"], capture_output=True, text=True, env=env)
    assert failed.returncode == 2 and "unknown metric 'NOPE'" in failed.stderr
    assert list(scratch.iterdir()) == []


def test_score_starts_decoding_the_images_before_torch_is_imported(data_root, tmp_path):
    """What makes `score` decode while torch loads: neither the parser nor the source matching imports torch."""
    fused = _fused_folder(tmp_path, stems=["08"])
    probe = f"""
import sys
from fusion_core import cli, data
seen = []
decoding_ahead = data.decoding_ahead
def spy(paths):
    seen.append('torch' in sys.modules)
    return decoding_ahead(paths)
data.decoding_ahead = spy
assert cli.main(['score', '--fused', {str(fused)!r}, '--dataset', 'tno42', '--metrics', 'EN']) == 0
print('torch imported when decoding started:', seen)
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torch imported when decoding started: [False]" in done.stdout


def test_score_in_parallel_equals_one_process_and_folders_equal_dataset(data_root, tmp_path):
    import csv

    fused = _fused_folder(tmp_path)
    ir, vis = _pair_folders(tmp_path, SMALL)
    runs = {"jobs2": ["--dataset", "tno42", "--jobs", "2"], "jobs1": ["--dataset", "tno42", "--jobs", "1"],
            "dirs": ["--ir", str(ir), "--vis", str(vis), "--jobs", "2"]}
    tables = {}
    for name, args in runs.items():
        assert cli.main(["score", "--fused", str(fused), *args, "--out", str(tmp_path / f"{name}.csv")]) == 0
        tables[name] = list(csv.DictReader(open(tmp_path / f"{name}.csv")))
    assert [row["image"] for row in tables["jobs1"]] == ["05", "08", "11"]
    assert tables["jobs2"] == tables["jobs1"] == tables["dirs"]  # same digits, whatever the process count


def test_score_fused_image_without_sources_is_an_error_and_writes_nothing(data_root, tmp_path, capsys):
    fused = _fused_folder(tmp_path)
    shutil.copy(fused / "08.png", fused / "extra.png")
    code = cli.main(["score", "--fused", str(fused), "--dataset", "tno42", "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {fused / 'extra.png'}: no infrared and visible source")
    ir, vis = _pair_folders(tmp_path, ["08", "05"])  # 11 has no sources in these folders
    code = cli.main(["score", "--fused", str(fused), "--ir", str(ir), "--vis", str(vis), "--out", str(tmp_path / "s.csv")])
    assert code == 2 and f"{fused / '11.png'}: no infrared and visible source" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "nope"], "unknown data set 'nope'"),
    (["--dataset", "tno42", "--ir", "x"], "either --dataset or --ir/--vis"),
    (["--vis", "x"], "--dataset NAME, or both --ir DIR and --vis DIR"),
    (["--dataset", "tno42", "--convention", "nope"], "unknown convention 'nope'"),
    (["--dataset", "tno42", "--metrics", "EN,NOPE"], "unknown metric 'NOPE'"),
    (["--dataset", "tno42", "--jobs", "0"], "--jobs 0"),
])
def test_score_bad_options_are_one_error_and_write_nothing(data_root, tmp_path, capsys, args, message):
    fused = _fused_folder(tmp_path, stems=["08"])
    code = cli.main(["score", "--fused", str(fused), *args, "--out", str(tmp_path / "s.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err
    assert not (tmp_path / "s.csv").exists()


def test_score_out_must_be_a_file(data_root, tmp_path, capsys):
    fused = _fused_folder(tmp_path, stems=["08"])
    code = cli.main(["score", "--fused", str(fused), "--dataset", "tno42", "--out", str(tmp_path)])
    assert code == 2 and f"{tmp_path}: is a folder" in capsys.readouterr().err


def test_threaded_box_filter_gives_one_threads_values():
    import torch

    from fusion_core.rules import box_filter

    x = torch.rand(1, 9, 40, 50)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = box_filter(x, 7)
        torch.set_num_threads(3)
        assert torch.equal(box_filter(x, 7), one)
    finally:
        torch.set_num_threads(threads)


def test_a_default_checkpoint_missing_from_the_checkout_is_one_clear_error_and_marked_in_methods(tmp_path, monkeypatch):
    import dataclasses

    from fusion_core import methods

    info = methods.method_info("res2netfuse")
    missing = tmp_path / "gone_seed0.pt"
    fake = dataclasses.replace(info, default_weights=lambda: methods.DefaultWeights(
        missing, "a test default", "train it with `make something`"))
    monkeypatch.setitem(methods._INFO, "res2netfuse", fake)
    with pytest.raises(FileNotFoundError) as error:
        methods.resolve_weights("res2netfuse")
    assert str(missing) in str(error.value) and "no --weights" in str(error.value) and "make something" in str(error.value)
    assert methods.resolve_weights("res2netfuse", tmp_path / "mine.pt")[0] == tmp_path / "mine.pt"  # --weights wins
    table = methods.method_table()
    assert "none here (gone_seed0.pt not committed)" in table and "NOT in this checkout: train it with" in table
