"""The generic training loop: in-memory crops, determinism, resume, checkpoint + manifest, the CLI."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from fusion_core import data
from fusion_core.io import sha256_file
from fusion_core.papers.didfuse.loss import DIDFuseLoss
from fusion_core.methods import build_method
from fusion_core.papers.didfuse.model import DIDFuse
from fusion_core.train import (WEIGHTS_FORMAT, CropPairs, TrainConfig, checkpoint_paths, publish_fp16, resume_path, seed_everything,
                               slim_checkpoint, train, weights_checksum)

REPO = Path(__file__).resolve().parents[1]
LOSS_TERMS = ["total", "base", "detail", "ir_rec", "vis_rec", "vis_grad"]


@pytest.fixture(scope="module")
def crops():
    try:
        pairs = data.load_split("didfuse", "train")[:6]
    except data.DataError as exc:
        pytest.skip(f"training data missing: {exc}")
    return CropPairs.from_pairs(pairs, crop=32)


def _run(crops, epochs, seed=0, checkpoint=None, model_seed=None, max_seconds=None, **config):
    seed_everything(seed if model_seed is None else model_seed)
    model = DIDFuse()
    settings = dict(epochs=epochs, batch_size=4, lr=1e-3, milestones=(2,), seed=seed) | config
    history = train(model, DIDFuseLoss("paper"), crops, TrainConfig(**settings), checkpoint=checkpoint,
                    progress=False, log=None, max_seconds=max_seconds)
    return model, history


def test_center_crops_are_cut_once_from_the_middle(crops):
    pair = data.load_split("didfuse", "train")[0]
    images = data.load_pair(pair)
    h, w = images.ir.shape[-2:]
    top, left = (h - 32) // 2, (w - 32) // 2
    ir, vis = crops.take(torch.tensor([0]), torch.Generator())
    torch.testing.assert_close(ir[0], images.ir[0, :, top:top + 32, left:left + 32], rtol=0, atol=0)
    torch.testing.assert_close(vis[0], images.vis[0, :, top:top + 32, left:left + 32], rtol=0, atol=0)


def test_random_crops_are_seeded_and_inside_the_image():
    pairs = data.load_split("didfuse", "train")[:2]
    random_crops = CropPairs.from_pairs(pairs, crop=48, mode="random")
    first = random_crops.take(torch.tensor([0, 1]), torch.Generator().manual_seed(5))
    again = random_crops.take(torch.tensor([0, 1]), torch.Generator().manual_seed(5))
    other = random_crops.take(torch.tensor([0, 1]), torch.Generator().manual_seed(6))
    assert first[0].shape == (2, 1, 48, 48)
    assert torch.equal(first[0], again[0]) and not torch.equal(first[0], other[0])


def test_crop_larger_than_image_names_the_file():
    pair = data.load_split("didfuse", "train")[0]
    with pytest.raises(data.DataError, match=str(pair.ir)):
        CropPairs.from_pairs([pair], crop=10_000)


def test_loss_terms_are_finite_and_decrease_on_a_tiny_overfit(crops):
    _, history = _run(crops, epochs=10, milestones=(), batch_size=6)
    assert list(history.columns[4:]) == LOSS_TERMS
    assert history[LOSS_TERMS].map(lambda v: pd.notna(v) and abs(v) < 1e6).all().all()
    first, last = history.iloc[0], history.iloc[-1]
    assert last["total"] < 0.5 * first["total"]
    assert last["ir_rec"] < first["ir_rec"] and last["vis_rec"] < first["vis_rec"]


def test_same_seed_gives_identical_losses_and_weights(crops):
    model_a, history_a = _run(crops, epochs=1, seed=3)  # 2 iterations (6 pairs, batch 4)
    model_b, history_b = _run(crops, epochs=1, seed=3)
    _, history_c = _run(crops, epochs=1, seed=4)
    assert history_a[LOSS_TERMS].equals(history_b[LOSS_TERMS])
    assert all(torch.equal(a, b) for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values()))
    assert not history_a[LOSS_TERMS].equals(history_c[LOSS_TERMS])


def test_resume_continues_exactly_like_an_uninterrupted_run(crops, tmp_path):
    model_full, history_full = _run(crops, epochs=2, checkpoint=tmp_path / "full.pt", milestones=(1,))
    _run(crops, epochs=1, checkpoint=tmp_path / "part.pt", milestones=(1,))
    # a fresh model with other initial weights: everything must come from the checkpoint
    model_resumed, history_resumed = _run(crops, epochs=2, checkpoint=tmp_path / "part.pt", model_seed=99,
                                          milestones=(1,))
    assert list(history_resumed["lr"]) == pytest.approx([1e-3, 1e-4])
    assert history_resumed[LOSS_TERMS].equals(history_full[LOSS_TERMS])
    assert all(torch.equal(a, b) for a, b in zip(model_full.state_dict().values(), model_resumed.state_dict().values()))


def test_time_budget_stops_after_an_epoch_with_a_checkpoint_and_resumes_exactly(crops, tmp_path):
    model_full, history_full = _run(crops, epochs=3, milestones=(1,))
    # save_every=5 would skip the first epochs: the budget stop must still write the checkpoint
    _, history_part = _run(crops, epochs=3, checkpoint=tmp_path / "run.pt", milestones=(1,), max_seconds=0,
                           save_every=5)
    assert len(history_part) == 1
    manifest = json.loads(checkpoint_paths(tmp_path / "run.pt")[1].read_text())
    assert (manifest["epochs_done"], manifest["epochs"]) == (1, 3)
    _, history_more = _run(crops, epochs=3, checkpoint=tmp_path / "run.pt", milestones=(1,), max_seconds=0,
                           save_every=5)
    assert len(history_more) == 2  # one more epoch per call
    model_resumed, history_resumed = _run(crops, epochs=3, checkpoint=tmp_path / "run.pt", milestones=(1,),
                                          save_every=5)
    assert history_resumed[LOSS_TERMS].equals(history_full[LOSS_TERMS])
    assert all(torch.equal(a, b) for a, b in zip(model_full.state_dict().values(), model_resumed.state_dict().values()))
    with pytest.raises(ValueError, match="checkpoint"):
        _run(crops, epochs=1, max_seconds=10)


def test_a_run_killed_between_saves_resumes_from_the_last_save_exactly(crops, tmp_path):
    model_full, history_full = _run(crops, epochs=4, milestones=(2,))
    loss, calls = DIDFuseLoss("paper"), []

    def killed_in_epoch_3(model, batch):  # 2 iterations per epoch: the 5th call is epoch 3's first
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("killed")
        return loss(model, batch)

    seed_everything(0)
    config = TrainConfig(epochs=4, batch_size=4, lr=1e-3, milestones=(2,), seed=0, save_every=2)
    with pytest.raises(RuntimeError, match="killed"):
        train(DIDFuse(), killed_in_epoch_3, crops, config, checkpoint=tmp_path / "run.pt", progress=False, log=None)
    assert json.loads(checkpoint_paths(tmp_path / "run.pt")[1].read_text())["epochs_done"] == 2
    model_resumed, history_resumed = _run(crops, epochs=4, checkpoint=tmp_path / "run.pt", milestones=(2,),
                                          save_every=2, model_seed=99)
    assert history_resumed[LOSS_TERMS].equals(history_full[LOSS_TERMS])
    assert all(torch.equal(a, b) for a, b in zip(model_full.state_dict().values(), model_resumed.state_dict().values()))


def test_resume_refuses_other_settings(crops, tmp_path):
    _run(crops, epochs=1, checkpoint=tmp_path / "run.pt")
    with pytest.raises(data.DataError, match="lr"):
        _run(crops, epochs=2, checkpoint=tmp_path / "run.pt", lr=1e-2)


def test_checkpoint_manifest_and_history_describe_the_run(crops, tmp_path):
    _, history = _run(crops, epochs=2, checkpoint=tmp_path / "run.pt", batch_size=6)
    checkpoint, manifest_path, history_path = checkpoint_paths(tmp_path / "run.pt")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["sha256"] == sha256_file(checkpoint) and manifest["bytes"] < 5_000_000
    assert manifest["parameters"] == 260_935 and manifest["epochs_done"] == 2 and manifest["seed"] == 0
    assert manifest["data"]["pairs"] == 6 and manifest["data"]["crop"] == 32
    assert manifest["device"].startswith("cpu: ") and len(manifest["device"]) > len("cpu: ")  # the CPU model
    assert manifest["loss"]["preset"] == "paper" and "git_sha" in manifest
    logged = pd.read_csv(history_path)
    assert list(logged["epoch"]) == [1, 2]
    pd.testing.assert_frame_equal(logged[LOSS_TERMS], history[LOSS_TERMS], check_exact=False, rtol=1e-12)


@pytest.mark.slow
def test_train_cli_quick_protocol_writes_a_checkpoint_the_fuse_method_loads(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "fusion_core.papers.didfuse.train", "--protocol", "quick", "--epochs", "1", "--max-pairs", "4",
         "--seed", "1", "--out", str(tmp_path), "--threads", "2", "--no-progress"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    checkpoint = tmp_path / "didfuse_quick_seed1.pt"
    manifest = json.loads(checkpoint.with_suffix(".json").read_text())
    assert manifest["protocol"] == "quick" and manifest["data"]["split"] == "didfuse/train"
    fuser = build_method("didfuse", weights=checkpoint, rule="ave")
    ir, vis = torch.rand(1, 1, 40, 56), torch.rand(1, 1, 40, 56)
    assert fuser(ir, vis).shape == (1, 1, 40, 56)


def test_committed_file_is_weights_only_and_a_rerun_of_a_finished_run_returns_at_once(crops, tmp_path):
    model, history = _run(crops, epochs=1, checkpoint=tmp_path / "run.pt")
    blob = torch.load(tmp_path / "run.pt", weights_only=True)
    assert blob["format"] == WEIGHTS_FORMAT and set(blob) == {"format", "model_class", "model_config", "model"}
    assert (tmp_path / "run.pt").stat().st_size < 1.1 * 4 * 260_935 + 50_000  # fp32 weights and little else
    resume_path(tmp_path / "run.pt").unlink()  # a fresh clone has no resume state
    again, history_again = _run(crops, epochs=1, checkpoint=tmp_path / "run.pt", model_seed=99)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert list(history_again["epoch"]) == [1]
    with pytest.raises(data.DataError, match="no resume state"):
        _run(crops, epochs=2, checkpoint=tmp_path / "run.pt")


def test_slimming_a_full_checkpoint_keeps_the_weights_and_the_results_key(crops, tmp_path):
    model, _ = _run(crops, epochs=1, checkpoint=tmp_path / "run.pt")
    path, manifest_path, _ = checkpoint_paths(tmp_path / "run.pt")
    resume_path(path).replace(path)  # the old layout: the full state in NAME.pt
    manifest = json.loads(manifest_path.read_text())
    manifest.update(sha256=sha256_file(path), bytes=path.stat().st_size)
    del manifest["checksum"]
    manifest_path.write_text(json.dumps(manifest))
    key = sha256_file(path)[:16]
    before, after = slim_checkpoint(path)
    assert after < before / 2 and weights_checksum(path) == key
    manifest = json.loads(manifest_path.read_text())
    assert manifest["sha256"] == sha256_file(path) and manifest["slimmed_from"]["bytes"] == before
    loaded = torch.load(path, weights_only=True)["model"]
    assert all(torch.equal(a, loaded[k]) for k, a in model.state_dict().items())
    path.write_bytes(path.read_bytes() + b"x")  # other weights: the manifest's key no longer applies
    assert weights_checksum(path) == sha256_file(path)[:16]


def test_fp16_publication_halves_the_file_changes_the_results_key_and_loads_into_float32(crops, tmp_path):
    from fusion_core.papers.didfuse.model import load_checkpoint

    model, _ = _run(crops, epochs=1, checkpoint=tmp_path / "run.pt")
    path, manifest_path, _ = checkpoint_paths(tmp_path / "run.pt")
    fp32_bytes, fp32_sha = path.stat().st_size, sha256_file(path)
    publish_fp16(path)
    manifest = json.loads(manifest_path.read_text())
    assert path.stat().st_size < 0.6 * fp32_bytes and manifest["stored"] == "float16"
    assert manifest["fp32_sha256"] == fp32_sha and manifest["sha256"] == sha256_file(path)
    assert weights_checksum(path) == manifest["checksum"] == sha256_file(path)[:16] != fp32_sha[:16]
    loaded = load_checkpoint(path).state_dict()
    for name, value in model.state_dict().items():
        assert loaded[name].dtype == value.dtype
        if value.is_floating_point():  # float16 keeps 11 significant bits: relative error <= 2**-11
            assert torch.allclose(loaded[name], value, rtol=2 ** -11, atol=2 ** -24)
    assert publish_fp16(path) == path and sha256_file(path) == manifest["sha256"]  # idempotent
    resume = resume_path(path)
    with pytest.raises(data.DataError, match="not a fusion_core.weights/1 weights file"):
        publish_fp16(resume)


# --------------------------------------------------------------------------- the models of a notebook profile

def _fake_checkpoint(folder, name, epochs_done, epochs, **manifest):
    (folder / f"{name}.pt").write_bytes(name.encode())
    (folder / f"{name}.json").write_text(json.dumps({"epochs_done": epochs_done, "epochs": epochs, **manifest}))


def test_didfuse_discovers_complete_models_of_one_protocol_by_variant_then_seed(tmp_path):
    from fusion_core.papers.didfuse import train as didfuse

    for name in ("didfuse_reduced_exp5_seed0", "didfuse_reduced_seed10", "didfuse_reduced_seed2", "didfuse_paper_seed0"):
        _fake_checkpoint(tmp_path, name, 12, 12)
    _fake_checkpoint(tmp_path, "didfuse_reduced_exp1_seed0", 7, 12)  # still training
    found = didfuse.discover(tmp_path, "reduced")
    assert [m.key for m in found] == ["base_seed2", "base_seed10", "exp5_seed0"]
    assert found[0].checksum == sha256_file(tmp_path / "didfuse_reduced_seed2.pt")[:16] and found[0].paper == "didfuse"
    assert [m.key for m in didfuse.first_seeds(found, 1)] == ["base_seed2", "exp5_seed0"]
    assert [m.key for m in didfuse.discover(tmp_path, "full")] == ["base_seed0"]  # old name of the paper protocol


def test_didfuse_plans_name_their_protocol_folder_and_seeds():
    from fusion_core.papers.didfuse import train as didfuse

    quick, committed, paper = didfuse.plan("quick"), didfuse.plan("eval"), didfuse.plan("full")
    assert quick.protocol == "quick" and quick.overrides == {"max_pairs": 4} and "build" in quick.checkpoint_dir.parts
    assert committed.protocol == "reduced" and committed.seeds["base"] == (0, 1, 2) and committed.seeds["exp1"] == (0, 1)
    assert paper.protocol == "paper" and len(paper.seeds["exp4"]) == 25
    assert didfuse.plan("eval", "full").protocol == "paper"
    assert didfuse.checkpoint_name("reduced", "base", 0) == "didfuse_reduced_seed0.pt"
    with pytest.raises(ValueError, match="unknown profile 'tiny'"):
        didfuse.plan("tiny")
    with pytest.raises(ValueError, match="not 'quick'"):
        didfuse.plan("eval", "quick")


def test_committed_models_are_what_the_eval_profile_finds():
    from fusion_core.papers.didfuse import train as didfuse
    from fusion_core.papers.res2netfuse import train as res2netfuse

    assert [m.key for m in didfuse.ensure_models("eval", ["base", "exp3"], repeats=2)] == [
        "base_seed0", "base_seed1", "exp3_seed0", "exp3_seed1"]
    assert [m.key for m in res2netfuse.ensure_models("eval")] == ["single_seed0", "single_seed1", "single_seed2",
                                                                  "many_seed0"]
    assert res2netfuse.ensure_models("eval", ["single"], repeats=1)[0].path.name == "r2n_1_seed0.pt"


def test_res2netfuse_eval_names_a_missing_checkpoint_and_skips_other_protocols(tmp_path, monkeypatch):
    from fusion_core.papers.res2netfuse import train as res2netfuse

    _fake_checkpoint(tmp_path, "r2n_1_seed0", 2000, 2000, profile="full")  # an older manifest: profile, old name
    _fake_checkpoint(tmp_path, "r2n_many_seed0", 1, 1, protocol="quick")
    assert [m.key for m in res2netfuse.discover(tmp_path, "paper")] == ["single_seed0"]
    monkeypatch.setattr(res2netfuse, "plan", lambda profile, protocol=None: res2netfuse.Plan("paper", tmp_path,
                                                                                             res2netfuse.SEEDS))
    with pytest.raises(FileNotFoundError, match="r2n_many_seed0.pt: no complete committed checkpoint"):
        res2netfuse.ensure_models("eval", ["many"])


def test_delta_publication_keeps_only_the_changed_tensors_and_loads_the_full_weights(tmp_path):
    """An ablation row trained on frozen parts copied from a base model stores only its own part; loading puts the
    base's tensors back, bit for bit, and refuses a base other than the one the delta was made from."""
    from fusion_core.papers.savf.model import SAVFNet, load_checkpoint
    from fusion_core.train import publish_delta, weights_state

    torch.manual_seed(0)
    base_net = SAVFNet(attention=True)
    row_net = SAVFNet(attention=True, main_cam=False)
    for part in ("backbone", "enhance", "attention"):  # frozen columns copied from the base, as the ablation does
        getattr(row_net, part).load_state_dict(getattr(base_net, part).state_dict())
    files = {}
    for name, net, config in (("base", base_net, {"attention": True}),
                              ("row", row_net, {"attention": True, "main_cam": False})):
        path = tmp_path / f"{name}.pt"
        torch.save(weights_state(net.state_dict(), "SAVFNet", config), path)
        digest = sha256_file(path)
        (tmp_path / f"{name}.json").write_text(json.dumps({"sha256": digest, "checksum": digest[:16]}))
        publish_fp16(path)
        files[name] = path
    full_bytes, full_sha = files["row"].stat().st_size, sha256_file(files["row"])
    expected = load_checkpoint(files["row"]).state_dict()
    publish_delta(files["row"], files["base"])
    manifest = json.loads((tmp_path / "row.json").read_text())
    stored = torch.load(files["row"], weights_only=True)["model"]
    assert not any(k.startswith(("backbone.", "enhance.", "attention.")) for k in stored)  # the columns are gone
    assert any(k.startswith("body.") for k in stored)
    assert files["row"].stat().st_size < 0.5 * full_bytes
    assert manifest["delta_of"]["full_sha256"] == full_sha and manifest["sha256"] == sha256_file(files["row"])
    assert weights_checksum(files["row"]) == sha256_file(files["row"])[:16] != full_sha[:16]
    loaded = load_checkpoint(files["row"]).state_dict()
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], v) for k, v in expected.items())
    assert publish_delta(files["row"], files["base"]) == files["row"]  # idempotent
    with pytest.raises(data.DataError, match="is itself a delta"):
        publish_delta(files["base"], files["row"])
    blob = torch.load(files["base"], weights_only=True)  # another base under the same name: refused, named
    first = next(iter(blob["model"]))
    blob["model"][first] = blob["model"][first] + 1
    torch.save(blob, files["base"])
    with pytest.raises(data.DataError, match=r"row\.pt: was made from another base\.pt"):
        load_checkpoint(files["row"])
    files["base"].unlink()
    with pytest.raises(data.DataError, match=r"row\.pt: holds only what differs from base\.pt"):
        load_checkpoint(files["row"])


def test_xz_storage_is_lossless_keeps_the_results_key_and_every_loader_reads_it(crops, tmp_path):
    """publish_xz: a smaller file that decompresses to the very same torch file, so the weights, the results key and a
    delta made from the plain base all stay valid; a second call changes nothing."""
    import lzma

    from fusion_core.io import XZ_MAGIC, content_sha256, torch_load
    from fusion_core.papers.didfuse.model import DIDFuse, load_checkpoint
    from fusion_core.train import load_network, publish_delta, publish_xz, weights_state

    model, _ = _run(crops, epochs=1, checkpoint=tmp_path / "run.pt")
    path, manifest_path, _ = checkpoint_paths(tmp_path / "run.pt")
    publish_fp16(path)
    plain, key = path.read_bytes(), weights_checksum(path)
    expected = load_checkpoint(path).state_dict()
    publish_xz(path)
    stored = path.read_bytes()
    manifest = json.loads(manifest_path.read_text())
    assert stored.startswith(XZ_MAGIC) and len(stored) < 0.95 * len(plain) and lzma.decompress(stored) == plain
    assert manifest["sha256"] == sha256_file(path) and manifest["bytes"] == len(stored)
    assert manifest["stored_as"] == "xz" and manifest["content_sha256"] == content_sha256(path) != sha256_file(path)
    assert weights_checksum(path) == key == manifest["checksum"]  # the raw results computed before stay valid
    loaded = load_checkpoint(path).state_dict()
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], v) for k, v in expected.items())
    assert publish_xz(path) == path and path.read_bytes() == stored  # idempotent
    with pytest.raises(data.DataError, match="not a fusion_core.weights/1 weights file"):
        publish_xz(resume_path(path))

    # a delta whose base is then stored as xz still finds its base (checked by content, not by stored bytes)
    base_net, row_net = DIDFuse(), DIDFuse()
    with torch.no_grad():
        for p in row_net.decoder.parameters():
            p.add_(1.0)  # the row retrains the decoder on the base's frozen encoder
    files = {}
    for name, net in (("base", base_net), ("row", row_net)):
        files[name] = tmp_path / f"{name}.pt"
        torch.save(weights_state(net.state_dict(), "DIDFuse", net.config), files[name])
        digest = sha256_file(files[name])
        (tmp_path / f"{name}.json").write_text(json.dumps({"sha256": digest, "checksum": digest[:16]}))
    publish_delta(files["row"], files["base"])
    for file in (files["base"], files["row"]):
        publish_xz(file)
    assert torch_load(files["row"])["base"]["sha256"] == content_sha256(files["base"]) != sha256_file(files["base"])
    loaded = load_network(files["row"], {"DIDFuse": DIDFuse}).state_dict()
    assert loaded.keys() == row_net.state_dict().keys()
    assert all(torch.equal(loaded[k], v) for k, v in row_net.state_dict().items())


def test_the_shared_train_cli_parses_the_common_options_and_each_paper_adds_its_own(capsys):
    import importlib
    from pathlib import Path

    from fusion_core.train import cli_parser

    parser = cli_parser("demo", "doc", {"quick": 1, "reduced": 2}, ("base", "other"), Path("checkpoints/demo"))
    args = parser.parse_args([])
    assert (args.protocol, args.variant, args.seed, args.out, args.threads, args.max_minutes, args.no_progress) == (
        "quick", "base", 0, Path("checkpoints/demo"), None, None, False)
    args = parser.parse_args(["--protocol", "reduced", "--variant", "other", "--max-minutes", "9", "--no-progress"])
    assert (args.protocol, args.variant, args.max_minutes, args.no_progress) == ("reduced", "other", 9.0, True)
    with pytest.raises(SystemExit) as bad:
        parser.parse_args(["--variant", "nope"])
    assert bad.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
    for paper, own in (("amfe", "--stage1-only"), ("msfam", "--publish-fp16"), ("savf", "--backbone-weights")):
        with pytest.raises(SystemExit) as shown:
            importlib.import_module(f"fusion_core.papers.{paper}.train").main(["--help"])
        text = capsys.readouterr().out
        assert shown.value.code == 0 and "--max-minutes" in text and "--no-progress" in text and own in text, paper
