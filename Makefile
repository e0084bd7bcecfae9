# napari-promptseg developer tasks. Plain POSIX make: no GNU-only features.
#
#   make venv    create .venv (if missing) and install the package with its [all,test,sam2] extras
#   make test    the architecture checks (make check), then the whole test suite under Xvfb
#   make run     open napari with the synthetic sample image, the widget and the demo model
#   make run-cli segment the sample image from a points file with the CLI (no GUI)
#   make lint    ruff check + ruff format --check + make check
#   make check   import-linter contracts (docs/architecture.md) and mypy on the engine
#   make bench   run benchmarks/*.py one by one under Xvfb
#   make bench-peers  build micro-sam's own venv (.venv-peers/microsam), then ours vs micro-sam
#
# Knobs (set on the command line or in the environment):
#   PYTHON=python3.12         interpreter used to create the venv
#   PYTEST_ARGS='-k smoke'    extra pytest arguments; e.g. PYTEST_ARGS='tests/qt -x'
#   XVFB_SCREEN='-screen 0 1920x1080x24'
#   RUN_ARGS='--offline'      extra arguments for `make run`'s command (see RUN_CMD below)
#
# Xvfb, xauth, Mesa and the X/xcb libraries Qt needs: sudo bash .ci/install-system-deps

PYTHON ?= python3
VENV = .venv
VPY = $(VENV)/bin/python
# Touched after a successful install; pyproject.toml being newer triggers a re-install.
STAMP = $(VENV)/.promptseg-installed

PYTEST_ARGS ?=
XVFB_SCREEN ?= -screen 0 1600x1000x24
XVFB_RUN = xvfb-run -a -s "$(XVFB_SCREEN)"

# ---- `make run` / `make run-cli` ---------------------------------------------------------
# Both write the synthetic sample image (and one point prompt per cell) into out/ first.
# `make run` opens napari with the image and the widget docked; `make run-cli` segments the
# sample from the points file without a GUI. Both use the demo model, which comes with the
# package (no download, works offline): AIS in the Automatic tab, clicks pick its objects.
# RUN_MODEL=vit_b for SAM (downloaded on first use); RUN_ARGS='--checkpoint my_sam.pth'
# (it takes precedence over the model) for a local checkpoint.
SAMPLE_IMAGE = out/sample_cells.tif
SAMPLE_POINTS = out/sample_cells_points.csv
RUN_MODEL ?= demo
RUN_ARGS ?=
RUN_CMD ?= $(VENV)/bin/promptseg gui $(SAMPLE_IMAGE) --model $(RUN_MODEL) $(RUN_ARGS)
RUN_CLI_CMD ?= $(VENV)/bin/promptseg segment $(SAMPLE_IMAGE) --points $(SAMPLE_POINTS) \
	--model $(RUN_MODEL) -o out/sample_cells_labels.tif $(RUN_ARGS)
# -----------------------------------------------------------------------------------------

CHECK_XVFB = command -v xvfb-run >/dev/null 2>&1 || { \
	echo 'error: xvfb-run not found. The tests need Xvfb and Mesa (software OpenGL); install with' >&2; \
	echo '    sudo bash .ci/install-system-deps' >&2; \
	echo '  or: sudo apt-get install xvfb xauth libgl1-mesa-dri ...  (full list in that script)' >&2; \
	exit 1; }

.PHONY: help venv test run run-cli lint check bench bench-peers

help:
	@sed -n 's/^#   make /  make /p' Makefile

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VPY) || { echo "creating $(VENV) with $(PYTHON)"; $(PYTHON) -m venv $(VENV); }
	$(VPY) -m pip install --upgrade pip
	$(VPY) -m pip install 'setuptools>=77' wheel && SAM2_BUILD_CUDA=0 $(VPY) -m pip install --no-build-isolation -e '.[all,test,sam2]'
	touch $(STAMP)

test: venv check
	@$(CHECK_XVFB)
	PROMPTSEG_REQUIRE_DISPLAY=1 QT_QPA_PLATFORM=xcb $(XVFB_RUN) $(VPY) -m pytest $(PYTEST_ARGS)

run: venv
	$(VPY) -m napari_promptseg._sample_data $(SAMPLE_IMAGE) --points $(SAMPLE_POINTS)
	$(RUN_CMD)

run-cli: venv
	$(VPY) -m napari_promptseg._sample_data $(SAMPLE_IMAGE) --points $(SAMPLE_POINTS)
	$(RUN_CLI_CMD)

lint: venv check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

check: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: venv
	@$(CHECK_XVFB)
	@failed=''; found=''; \
	for f in benchmarks/*.py; do \
	    [ -f "$$f" ] || continue; found=1; \
	    echo "== $$f"; \
	    QT_QPA_PLATFORM=xcb $(XVFB_RUN) $(VPY) "$$f" || failed="$$failed $$f"; \
	done; \
	[ -n "$$found" ] || echo "no benchmarks/*.py to run"; \
	if [ -n "$$failed" ]; then echo "failed:$$failed" >&2; exit 1; fi

bench-peers: venv
	@$(CHECK_XVFB)
	bash benchmarks/peers/setup_microsam.sh
	QT_QPA_PLATFORM=xcb $(XVFB_RUN) $(VPY) benchmarks/bench_peers.py --both
