# The README's two commands are `make train DATASET=digits` and `make test`; .ci/run calls `make test`.
# Every target sets up .venv first (once; again when pyproject.toml or TORCH_PINS changes).

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
# nbgrader shells out to `alembic`, and notebooks run on the `python3` kernel: both must
# resolve inside the venv even when it is not activated.
export PATH := $(BIN):$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# torch is pinned here (CI and local use), never in pyproject.toml: Colab brings its own.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

DATASET ?= cifar10
DATA_ROOT ?= data
OUT ?= runs/$(DATASET)
TRAIN_ARGS ?=
BENCH_ARGS ?=
ifeq ($(DATASET),digits)
# the offline demo: scikit-learn's 1,797 handwritten digits, a 32x32 grey DCGAN (ngf = ndf = 32),
# 36 epochs of 28 steps: recognisable digits in about 2 minutes on 2 idle CPU cores (README).
# Instance noise keeps D from winning outright in the first hundred steps; samples come from an EMA of G.
EPOCHS ?= 36
IMAGE_SIZE ?= 32
DEMO_ARGS ?= --ngf 32 --ndf 32 --batch-size 64 --instance-noise 0.2 --ema-decay 0.995 --log-every 28
else ifeq ($(DATASET),synthetic)
# procedural shapes, offline: a smoke run more than a demo (colour blobs after a few minutes)
EPOCHS ?= 5
IMAGE_SIZE ?= 32
else
EPOCHS ?= 25
IMAGE_SIZE ?= 64
endif
DEMO_ARGS ?=

.PHONY: setup train test lint lessons bench clean dist test-oldest sandbox FORCE

# The pins as a file, rewritten only when they change: a new pin makes the stamp below stale, so
# the next target reinstalls torch (pip replaces the old version) instead of keeping a stale one.
$(VENV)/torch-pins: FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH_PINS)' | cmp -s - $@ || echo '$(TORCH_PINS)' > $@

$(BIN)/.installed: pyproject.toml $(VENV)/torch-pins
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e ".[instructor,cluster,dev,fid,fid-offline]"
	touch $@

setup: $(BIN)/.installed  ## create .venv with everything (torch pinned)

train: setup  ## the main job: train the reference DCGAN (DATASET=digits: the offline demo)
	$(BIN)/python -m dcgan_ref train --dataset $(DATASET) --data-root $(DATA_ROOT) \
		--image-size $(IMAGE_SIZE) --epochs $(EPOCHS) --out $(OUT) $(DEMO_ARGS) $(TRAIN_ARGS)

lint: setup
	$(BIN)/ruff check .

# Two pytest workers on two cores: one torch thread each (notebook kernels inherit it), else
# every worker spawns a thread per core and they fight.
# Trusted grading runs the student's code in bubblewrap (Debian's bubblewrap package): installed here
# when missing and we are root (CI is); otherwise grading says it falls back to a weaker containment.
sandbox:  ## install bubblewrap, the grading sandbox
	@command -v bwrap >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
		else echo "bubblewrap is not installed: grading will use a weaker containment (see README)"; fi; }

test: setup lint sandbox  ## lint, then every test (CPU, offline)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=15

lessons: setup  ## regenerate lessons/ from solutions/ with nbgrader
	$(BIN)/python -m autograder release

# What would be uploaded to PyPI: sdist + wheel of the version in dcgan_ref/_version.py, built
# from this tree (--no-isolation: .venv's setuptools, no download) and checked by twine.
dist: setup  ## build dist/dcgan_course-<version>.tar.gz and -py3-none-any.whl, twine-checked
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .
	$(BIN)/python -m twine check --strict dist/*

# The oldest versions pyproject.toml claims: every `>=` bound of the core requirements and of the
# instructor, dev and fid extras pinned (tools/lower_bounds.py) in .venv-oldest, then the checks'
# tests, every lesson notebook (run top to bottom, and graded) and FID there. Downloads torch
# (minutes): not in CI.
OLDEST := $(CURDIR)/.venv-oldest
test-oldest:  ## the check tests and lesson notebooks on the lowest supported torch/torchvision/numpy/...
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python tools/lower_bounds.py instructor cluster dev fid fid-offline > $(OLDEST)/constraints.txt
	$(OLDEST)/bin/python -m pip install -q -c $(OLDEST)/constraints.txt -e ".[instructor,cluster,dev,fid,fid-offline]"
	$(OLDEST)/bin/python -c "import torch, torchvision; print('oldest: torch', torch.__version__, 'torchvision', torchvision.__version__)"
	PATH=$(OLDEST)/bin:$$PATH OMP_NUM_THREADS=1 $(OLDEST)/bin/python -m pytest -n 2 --dist loadfile -q -p no:cacheprovider \
		tests/test_checks_lesson*.py tests/test_notebooks_execute.py tests/test_notebooks_gpu_profile.py \
		tests/test_solution_notebooks.py tests/test_solution_notebooks_user.py tests/test_fid.py

bench: setup  ## training throughput, dcgan_ref vs the pytorch/examples loop (about a minute on a CPU)
	$(BIN)/python benchmarks/bench_train.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(CURDIR)/.venv-oldest runs dist build .pytest_cache .ruff_cache
