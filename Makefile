# Two entry points a reader needs: `make reproduce` (the main job) and `make test`.
# Both create the virtual environment in .venv on first use.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
PROFILE ?= eval
NB      ?=
VERIFY  ?= sample
PARAMS  ?=

.PHONY: env reproduce test unit nbval test-portable verify notebook bench clean-quick

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=python3.11)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (fusion_core)"
	touch $@

env: $(VENV)/.installed

## make reproduce [PROFILE=eval|quick|full] [NB=didfuse] [VERIFY=sample|all] [PARAMS="repeats=25 model_profile=full"]
reproduce: env
	$(PY) -m fusion_core reproduce --profile $(PROFILE) --verify $(VERIFY) $(if $(NB),--nb $(NB)) $(foreach p,$(PARAMS),--param $(p))

## make test: unit tests, then the notebooks under nbval on the quick profile
test: unit nbval

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

## make verify: every file in results/MANIFEST.csv exists with its recorded sha256
verify: env
	$(PY) -m fusion_core verify

## make notebook NB=00_datasets: re-execute a committed notebook in place under the quick profile
notebook: env
	$(PY) -m fusion_core.reproduce refresh $(wildcard notebooks/$(NB)*.ipynb)

bench: env
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean-quick:
	rm -rf build/quick
