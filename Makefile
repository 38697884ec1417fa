# Two entry points a reader needs: `make reproduce` (the main job) and `make test` (`make test-fast`: the inner loop).
# Both create the virtual environment in .venv on first use.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
PROFILE ?= eval
NB      ?=
VERIFY  ?= sample
PARAMS  ?=

.PHONY: env reproduce test test-fast unit nbval test-portable verify notebook sync bench clean-quick browser

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fusion_core)"
	touch $@

env: $(VENV)/.installed

## make reproduce [PROFILE=eval|quick|full] [NB=didfuse] [VERIFY=sample|all] [PARAMS="device=cuda threads=4"] (the common notebook parameters, CONTRIBUTING; non-default PARAMS write to build/params/, never results/)
reproduce: env
	$(PY) -m fusion_core reproduce --profile $(PROFILE) --verify $(VERIFY) $(if $(NB),--nb $(NB)) $(foreach p,$(PARAMS),--param $(p))

## make test: unit tests, then the notebooks under nbval on the quick profile (everything, slow tests included)
test: unit nbval

## make test-fast: the inner loop: unit tests not marked slow (> 3 s on 2 cores), no notebooks
test-fast: env
	$(PY) -m pytest -q -m "not slow" tests

unit: env
	$(PY) -m pytest -q tests

nbval: env
	FUSION_PROFILE=quick $(PY) -m pytest -q --nbval-lax -p no:cacheprovider notebooks/

## make test-portable [LEVELS=native,avx,sse] [REFUSE=didfuse,res2netfuse]: the tests under emulated CPU levels
## (run before submitting whenever numerics, goldens or nbval-guarded outputs change; CONTRIBUTING)
LEVELS ?= native,avx,sse
REFUSE ?=
test-portable: env
	$(PY) tools/portability.py --levels $(LEVELS) $(if $(REFUSE),--refuse $(REFUSE))

## make browser: Debian's Chromium for the browser test of SAVF's rating page (tests/test_savf_mos.py; the test also
## installs it itself when run as root, and skips with the reason where it cannot). Playwright drives it (pinned in
## requirements.txt); `playwright install` is never needed: the test launches /usr/bin/chromium.
browser:
	@test -x /usr/bin/chromium || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

## make verify: every file in results/MANIFEST.csv exists with its recorded sha256
verify: env
	$(PY) -m fusion_core verify

## make notebook NB=00_datasets: re-execute a committed notebook in place under the quick profile
## (refused while it disagrees with its paired script; the script is synced after)
notebook: env
	$(PY) -m fusion_core.reproduce refresh $(wildcard notebooks/$(NB)*.ipynb)

## make sync: each notebooks/NN_name.ipynb and its paired script NN_name.py (jupytext --sync, notebooks/jupytext.toml)
## get the cells of the newer of the two; outputs stay in the .ipynb; new cells get content-derived ids
sync: env
	$(PY) -m fusion_core.reproduce sync

bench: env
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean-quick:
	rm -rf build/quick

## GPU campaign (fusion_core/campaign.py). Here, once: make gpu-wheels gpu-data (into .carry/, ignored; it travels
## with the tree when a device call carries .carry). There: make gpu-campaign OUT=/path/to/out (python3, no venv).
GPU_WHEELS := kornia==0.9.0 kornia_rs==0.2.0 pytorch-msssim==1.0.0 PyWavelets==1.9.0 dask==2026.8.0 \
              distributed==2026.8.0 partd==1.4.2 locket==1.0.0 tblib==3.2.2 zict==3.0.0 tornado==6.6.1
GPU_PY  ?= 3.12
.PHONY: gpu-wheels gpu-data gpu-campaign

gpu-wheels: env
	$(PY) -m pip download --quiet --no-deps --only-binary=:all: --python-version $(GPU_PY) --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	    --platform any -d .carry/wheels $(GPU_WHEELS)
	$(PY) -m pip wheel --quiet --no-deps -w .carry/wheels dtcwt==0.13.0   # sdist only: built here (pure Python)

gpu-data: env
	$(PY) -m fusion_core.campaign --carry-data

gpu-campaign:
	$(or $(CAMPAIGN_PYTHON),python3) -m fusion_core.campaign $(or $(OUT),$(error give OUT=folder for the archives))
