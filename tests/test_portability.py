"""tools/portability.py: the emulated CPU levels the portability check runs the tests under."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("portability", Path(__file__).resolve().parents[1] / "tools" / "portability.py")
portability = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(portability)


def test_at_least_two_emulated_levels_switch_every_dispatching_library():
    emulated = {name: env for name, env in portability.LEVELS.items() if env}
    assert len(emulated) >= 2
    for env in emulated.values():
        assert {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OPENCV_CPU_DISABLE"} <= set(env)


def test_native_level_drops_emulation_inherited_from_the_caller(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    monkeypatch.setenv("OPENCV_CPU_DISABLE", "AVX2")
    env = portability.level_env("native", "quick")
    assert "ATEN_CPU_CAPABILITY" not in env and "OPENCV_CPU_DISABLE" not in env
    assert env["FUSION_PROFILE"] == "quick"
    assert portability.level_env("sse")["ATEN_CPU_CAPABILITY"] == "default"


def test_an_unknown_level_is_one_clear_error(capsys):
    with pytest.raises(SystemExit) as stop:
        portability.main(["--levels", "avx9000", "--only", "none"])
    assert stop.value.code == 2 and "avx9000" in capsys.readouterr().err


@pytest.mark.parametrize("level", [name for name, env in portability.LEVELS.items() if env])
def test_each_level_really_switches_opencv_off_its_vector_paths(level):
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", "import cv2; print(cv2.getCPUFeaturesLine())"],
                         env=portability.level_env(level), capture_output=True, text=True, check=True)
    assert "unknown CPU feature" not in run.stderr  # a misspelt name is ignored by OpenCV with only a warning
    assert "AVX2?" in run.stdout or "AVX2" not in run.stdout  # '?' marks a disabled dispatch target
