# The README's two commands are `make train` and `make test`; .ci/run calls `make test`.
# Every target sets up .venv first (once; again when pyproject.toml changes).

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
ifeq ($(DATASET),synthetic)
# the offline demo: small enough for a few minutes on 2 CPU cores
EPOCHS ?= 5
IMAGE_SIZE ?= 32
else
EPOCHS ?= 25
IMAGE_SIZE ?= 64
endif

.PHONY: setup train test lint lessons bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e ".[instructor,dev,fid,fid-offline]"
	touch $@

setup: $(BIN)/.installed  ## create .venv with everything (torch pinned)

train: setup  ## the main job: train the reference DCGAN (DATASET=synthetic works offline)
	$(BIN)/python -m dcgan_ref train --dataset $(DATASET) --data-root $(DATA_ROOT) \
		--image-size $(IMAGE_SIZE) --epochs $(EPOCHS) --out $(OUT) $(TRAIN_ARGS)

lint: setup
	$(BIN)/ruff check .

# Two pytest workers on two cores: one torch thread each (notebook kernels inherit it), else
# every worker spawns a thread per core and they fight.
test: setup lint  ## lint, then every test (CPU, offline)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 --dist loadfile -q --durations=15

lessons: setup  ## regenerate lessons/ from solutions/ with nbgrader
	$(BIN)/python -m autograder release

bench: setup
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
