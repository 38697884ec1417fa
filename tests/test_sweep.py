"""Training sweeps on Dask: job grid, statuses, time-budgeted chunks that resume, a killed worker, same numbers as
direct runs."""
from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from fusion_core import data, sweep
from fusion_core import train as train_module
from fusion_core.train import INCOMPLETE

REPO = Path(__file__).resolve().parents[1]


def _sweep(args, logs, timeout=600):
    return subprocess.run([sys.executable, "-m", "fusion_core.sweep", "--logs", str(logs), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_the_sweep_knows_the_trainers_resume_exit_code_without_importing_torch():
    assert sweep.INCOMPLETE == train_module.INCOMPLETE


def test_seed_lists_and_ranges_parse():
    assert sweep.parse_seeds("0-3,7,2") == [0, 1, 2, 3, 7]
    assert sweep.parse_seeds("5") == [5]
    with pytest.raises(ValueError, match="'x'"):
        sweep.parse_seeds("1,x")
    with pytest.raises(ValueError, match="KEY=V1"):
        sweep.parse_vary(["variant"])


def test_grid_is_variants_times_seeds_with_one_flag_each():
    jobs = sweep.build_jobs(["python", "-m", "m", "--protocol", "paper"], [0, 1],
                            sweep.parse_vary(["variant=base,exp1"]))
    assert [j.name for j in jobs] == ["variant-base_seed0", "variant-base_seed1", "variant-exp1_seed0",
                                      "variant-exp1_seed1"]
    assert jobs[3].argv == [sys.executable, "-m", "m", "--protocol", "paper", "--seed", "1", "--variant", "exp1"]


def test_exit_codes_become_statuses_and_the_sweep_exit_code(tmp_path):
    # the job exits with its own seed: 0 → done, 75 → resumable, 3 → failed
    result = _sweep(["--seeds", "0,75,3", "--parallel", "3", "--", "python", "-c",
                     "import sys; sys.exit(int(sys.argv[2]))"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    table = pd.read_csv(tmp_path / "sweep_summary.csv")
    assert list(table["status"]) == ["done", "resumable", "failed"] and list(table["exit"]) == [0, INCOMPLETE, 3]
    assert (tmp_path / "seed3.log").read_text().startswith("$ ")


def test_deadline_stops_starting_jobs(tmp_path):
    result = _sweep(["--seeds", "0-1", "--deadline-minutes", "0", "--", "python", "-c", "pass"], tmp_path)
    assert result.returncode == INCOMPLETE
    assert list(pd.read_csv(tmp_path / "sweep_summary.csv")["status"]) == ["not started"] * 2


def test_an_existing_cluster_runs_the_jobs_and_gpu_jobs_go_to_workers_with_a_gpu(tmp_path):
    from distributed import Client

    with sweep.local_cluster(1, gpu=True) as cluster, Client(cluster):
        result = _sweep(["--scheduler", cluster.scheduler_address, "--gpu", "--seeds", "0-1", "--", "python", "-c",
                         "pass"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"on {cluster.scheduler_address}" in result.stdout
    assert list(pd.read_csv(tmp_path / "sweep_summary.csv")["status"]) == ["done", "done"]


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.slow
def test_concurrent_time_budgeted_sweep_resumes_to_the_same_weights_as_one_direct_run(didfuse_training_pairs, tmp_path):
    out, logs = tmp_path / "ckpt", tmp_path / "logs"
    train = ["--", "python", "-m", "fusion_core.papers.didfuse.train", "--protocol", "quick", "--epochs", "2", "--max-pairs",
             "4", "--out", str(out), "--no-progress"]
    grid = ["--seeds", "0-1", "--vary", "variant=base,exp5", "--parallel", "2", "--threads", "1"]
    first = _sweep(grid + train + ["--max-minutes", "0"], logs)  # every job stops after its first epoch
    assert first.returncode == INCOMPLETE, first.stdout + first.stderr
    table = pd.read_csv(logs / "sweep_summary.csv")
    assert (table["status"] == "resumable").all() and len(table) == 4
    # two at a time: the second job starts before the first one ends
    assert table["start_s"].iloc[1] < table["start_s"].iloc[0] + table["seconds"].iloc[0]
    names = ["didfuse_quick_seed0", "didfuse_quick_seed1", "didfuse_quick_exp5_seed0", "didfuse_quick_exp5_seed1"]
    for name in names:
        manifest = json.loads((out / f"{name}.json").read_text())
        assert (manifest["epochs_done"], manifest["epochs"]) == (1, 2)
    second = _sweep(grid + train, logs)
    assert second.returncode == 0, second.stdout + second.stderr
    for name in names:
        assert json.loads((out / f"{name}.json").read_text())["epochs_done"] == 2
    direct = subprocess.run([sys.executable, "-m", "fusion_core.papers.didfuse.train", "--protocol", "quick", "--epochs", "2",
                             "--max-pairs", "4", "--out", str(tmp_path / "direct"), "--no-progress", "--seed", "1",
                             "--variant", "exp5"], capture_output=True, text=True, cwd=REPO, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert direct.returncode == 0, direct.stderr
    chunked, whole = _state(out / "didfuse_quick_exp5_seed1.pt"), _state(tmp_path / "direct/didfuse_quick_exp5_seed1.pt")
    assert all(torch.equal(chunked[k], whole[k]) for k in whole)
    other_seed = _state(out / "didfuse_quick_exp5_seed0.pt")
    assert not all(torch.equal(other_seed[k], whole[k]) for k in whole)


def _direct(out, seed, variant, epochs):
    """The same training in this process, one thread (as the sweep's jobs)."""
    from fusion_core.papers.didfuse.train import train_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        checkpoint, _ = train_model("quick", seed, out, variant, epochs=epochs, max_pairs=4, progress=False)
    finally:
        torch.set_num_threads(threads)
    return _state(checkpoint)


@pytest.mark.slow
def test_two_by_two_grid_on_two_workers_survives_a_killed_worker_with_the_weights_of_direct_runs(
        didfuse_training_pairs, tmp_path):
    from distributed import Client

    out, logs, epochs = tmp_path / "ckpt", tmp_path / "logs", 6
    command = ["python", "-m", "fusion_core.papers.didfuse.train", "--protocol", "quick", "--epochs", str(epochs),
               "--max-pairs", "4", "--out", str(out), "--no-progress"]
    jobs = sweep.build_jobs(command, [0, 1], sweep.parse_vary(["variant=base,exp5"]))
    killed = []
    with sweep.local_cluster(2) as cluster, Client(cluster) as client:
        assert all(address.startswith("tcp://127.0.0.1:") for address in cluster.scheduler_info["workers"])

        def kill_the_worker_of_the_first_job_after_its_first_epoch():
            victim, give_up = out / "didfuse_quick_seed0.resume.pt", time.time() + 300
            while not victim.exists() and time.time() < give_up:
                time.sleep(0.02)
            for address, keys in client.processing().items():
                if any("sweep-variant-base_seed0-" in str(key) for key in keys):
                    pid = client.run(os.getpid, workers=[address])[address]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)

        killer = threading.Thread(target=kill_the_worker_of_the_first_job_after_its_first_epoch)
        killer.start()
        sweep.run_jobs(jobs, 2, 1, logs, client=client, echo=lambda message: None)
        killer.join()
    assert killed, "the first job ended before its worker could be killed"
    assert [job.status for job in jobs] == ["done"] * 4
    assert (logs / "variant-base_seed0.log").read_text().count("$ ") == 2  # ran again after the kill
    for job, name in zip(jobs, ["didfuse_quick_seed0", "didfuse_quick_seed1", "didfuse_quick_exp5_seed0",
                                "didfuse_quick_exp5_seed1"]):
        manifest = json.loads((out / f"{name}.json").read_text())
        assert manifest["epochs_done"] == epochs
        seed, variant = int(name[-1]), "exp5" if "exp5" in name else "base"
        direct = _direct(tmp_path / "direct", seed, variant, epochs)
        swept = _state(out / f"{name}.pt")
        assert all(torch.equal(swept[k], direct[k]) for k in direct), job.name


def test_a_finished_job_returns_at_once_without_reading_the_training_images(
        didfuse_training_pairs, tmp_path, monkeypatch):
    from fusion_core.papers.didfuse import train as didfuse_train

    _direct(tmp_path, 0, "base", 1)
    for name in os.listdir(tmp_path):
        if name.endswith(".resume.pt"):
            os.remove(tmp_path / name)  # as after a clone: weights, manifest and history only
    monkeypatch.setattr(didfuse_train.CropPairs, "from_pairs", lambda *a, **k: pytest.fail("images were read"))
    checkpoint, history = didfuse_train.train_model("quick", 0, tmp_path, epochs=1, max_pairs=4, progress=False)
    assert list(history["epoch"]) == [1]


# --------------------------------------------------------------------------- notebook parameters and sweeps

NOTEBOOK = REPO / "notebooks" / "02b_res2netfuse_table3.ipynb"  # the common parameters only
LIST_NOTEBOOK = REPO / "notebooks" / "02_res2netfuse.ipynb"  # has a list parameter (qualitative_pairs)


def _defaults(notebook=NOTEBOOK):
    from fusion_core import params

    return dict(params.notebook_defaults("res2netfuse")[notebook.name])


def test_canonical_parameters_keep_the_canonical_folder_and_others_get_their_own(tmp_path, monkeypatch):
    from fusion_core import params

    monkeypatch.setattr(params, "PARAMS_ROOT", tmp_path / "params")
    canonical = tmp_path / "results" / "res2netfuse"
    (canonical / "raw").mkdir(parents=True)
    values = _defaults() | {"profile": "eval", "verify": "all"}  # run knobs stay canonical
    assert params.redirect("res2netfuse", "eval", canonical, values) == canonical
    said = []
    path = params.redirect("res2netfuse", "eval", canonical, values | {"repeats": 1}, echo=said.append)
    assert path == tmp_path / "params" / "eval" / "res2netfuse" / "repeats-1" and "repeats=1" in said[0]
    assert (path / "raw").resolve() == (canonical / "raw").resolve()  # eval reads the committed raw results
    assert params.redirect("res2netfuse", "eval", canonical, {"__name__": "__main__", "x": 1}) == canonical


def test_every_committed_notebook_accepts_its_own_defaults():
    # a nested default like DIDFuse's fig5_boxes (lists of (top, left, h, w, "ur") records) once failed here,
    # which stopped every DIDFuse notebook at its first results_dir call
    from fusion_core import params
    from fusion_core.reproduce import result_folders

    for paper in set(result_folders().values()):
        for notebook, defaults in params.notebook_defaults(paper).items():
            assert params.check(paper, dict(defaults))[0] == {}, notebook


def test_a_record_parameter_is_checked_field_by_field():
    from fusion_core import params

    default = [[(0.5, 0.1, 0.2, 0.2, "ur")]]
    assert params._fits([[(0.4, 0.1, 0.2, 0.3, "ll"), (0.1, 0.1, 0.1, 0.1, "lr")]], default)
    assert not params._fits([[(0.4, 0.1, 0.2, "ll")]], default)  # a field missing
    assert not params._fits([[(0.4, 0.1, 0.2, 0.3, 7)]], default)  # the corner is a string


def test_a_parameter_of_the_wrong_type_stops_with_one_message_that_says_how_to_pass_it():
    from fusion_core import params

    with pytest.raises(params.ParameterError) as caught:
        params.check("res2netfuse", _defaults(LIST_NOTEBOOK) | {"qualitative_pairs": "['02']", "verify": "some",
                                                                "fig5_pairs": 2.5, "device": "gpu"})
    message = str(caught.value)
    assert "qualitative_pairs=\"['02']\"" in message and '-y "qualitative_pairs: [\'02\']"' in message
    assert "verify='some'" in message and "fig5_pairs=2.5" in message
    assert "device='gpu'" in message  # a run knob with its own choices (cpu, cuda)


def test_notebook_grid_values_are_yaml_and_settings_are_named_by_their_parameters(tmp_path):
    grid = sweep.parse_param_grid([["beta", "1,2"], ["seeds", "[0];[0,1]"]])
    assert grid == [{"beta": 1, "seeds": [0]}, {"beta": 1, "seeds": [0, 1]}, {"beta": 2, "seeds": [0]},
                    {"beta": 2, "seeds": [0, 1]}]
    jobs = sweep.notebook_jobs(NOTEBOOK, grid[:1], "eval", tmp_path)
    assert jobs[0].name == "beta-1_seeds-0" and jobs[0].argv[-5:-3] == ["-y", "{beta: 1, seeds: [0]}"]


def test_a_notebook_sweep_refuses_a_notebook_whose_paired_script_was_edited(tmp_path):
    from fusion_core.reproduce import NotebookPairError

    for suffix in (".ipynb", ".py"):
        shutil.copy(NOTEBOOK.with_suffix(suffix), tmp_path / NOTEBOOK.with_suffix(suffix).name)
    copy = tmp_path / NOTEBOOK.name
    assert sweep.notebook_jobs(copy, [{"repeats": 1}], "eval", tmp_path)  # in sync: accepted
    script = copy.with_suffix(".py")
    script.write_text(script.read_text() + "\n# %%\nprint('an edit not synced')\n")
    with pytest.raises(NotebookPairError, match="make sync"):
        sweep.notebook_jobs(copy, [{"repeats": 1}], "eval", tmp_path)


def _tree_state(folder: Path) -> dict:
    return {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_notebook_sweep_of_two_settings_writes_its_own_folders_and_a_tidy_table(tmp_path):
    try:
        data.load_split("res2netfuse", "test")
    except data.DataError as exc:
        pytest.skip(f"test data missing: {exc}")
    canonical = REPO / "results" / "res2netfuse"
    before = _tree_state(canonical)
    result = subprocess.run([sys.executable, "-m", "fusion_core", "sweep", "--notebook", str(NOTEBOOK), "--profile",
                             "eval", "-p", "repeats", "1;2", "--parallel", "2", "--threads", "1", "--logs",
                             str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert _tree_state(canonical) == before  # the canonical results were not touched
    assert (tmp_path / "repeats-1.ipynb").is_file() and (tmp_path / "repeats-2.ipynb").is_file()
    table = pd.read_csv(tmp_path / "sweep_results.csv")
    assert set(table["repeats"].astype(str)) == {"1", "2"} and (table["sweep_status"] == "done").all()
    assert set(table["sweep_folder"]) == {"build/params/eval/res2netfuse/repeats-1",
                                          "build/params/eval/res2netfuse/repeats-2"}
    reconstruction = table[table["sweep_table"] == "table3_reconstruction"]
    assert set(reconstruction["repeats"].astype(str)) == {"1", "2"}  # the same table, once per setting


@pytest.mark.slow
def test_papermill_with_a_string_for_a_list_parameter_fails_at_once_naming_the_parameter(tmp_path):
    result = subprocess.run([sys.executable, "-m", "papermill", str(LIST_NOTEBOOK), str(tmp_path / "out.ipynb"), "-p",
                             "profile", "eval", "-p", "qualitative_pairs", "['02']", "--cwd", str(NOTEBOOK.parent)],
                            capture_output=True, text=True, cwd=REPO, timeout=600)
    assert result.returncode != 0
    assert "ParameterError" in result.stderr and "qualitative_pairs=" in result.stderr


def test_protocol_is_a_run_knob_with_the_training_protocols_as_choices():
    from fusion_core import params

    defaults = dict(params.notebook_defaults("didfuse")["01a_didfuse_table3_strategies.ipynb"])
    assert params.check("didfuse", defaults | {"protocol": "paper"})[0] == {}  # a run knob stays canonical
    with pytest.raises(params.ParameterError, match="protocol='full'"):  # "full" is a notebook profile
        params.check("didfuse", defaults | {"protocol": "full"})
