# Persévérance: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# make test's image build writes its outcome here (ok or failed) for the container tests.
IMAGES_STATUS := .work/images/beside.status

# No outside network at run time: no telemetry, no update check; Flower and Ray
# keep their state inside the ignored working folder. Flower's home (and the ministry's
# records key in it) is not set here: every command resolves it the same way
# (common/workdirs.py: $FLWR_HOME, else .work/flwr-home of this checkout).
export FLWR_TELEMETRY_ENABLED := 0
export FLWR_DISABLE_UPDATE_CHECK := 1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION := 1
export RAY_TMPDIR := $(CURDIR)/.work/ray
export RAY_USAGE_STATS_ENABLED := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install system-packages demo test test-fast lint typecheck pytest fuzz clean screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing Persévérance and its dependencies into $(VENV) (a few minutes the first time)..."
	@mkdir -p .work/flwr-home .work/ray
	@$(BIN)/pip install -q --upgrade pip > .work/pip.log 2>&1 || true
	@$(BIN)/pip install -q torch==2.13.0 -e '.[dev]' >> .work/pip.log 2>&1 || { grep -v "^WARNING: Location" .work/pip.log | tail -40; echo "make install: pip failed; the full log is .work/pip.log"; exit 1; }
	@touch $(STAMP)

# The deployment tests start a real nginx reverse proxy; the report test renders pages
# in headless Chromium (both Debian's packages).
system-packages:
	@command -v nginx >/dev/null 2>&1 || bash deploy/install-system-packages.sh
	@command -v chromium >/dev/null 2>&1 || bash deploy/install-test-browser.sh

demo: install
	$(BIN)/perseverance-sim run --scenario demo

# The console's and the model card's screenshots (docs/figures/*.png, French, 1280 px),
# regenerated on real runs: about 5 minutes on two cores (tools/screenshots.py).
screenshots: install system-packages
	$(BIN)/python tools/screenshots.py

lint: install
	$(BIN)/ruff check common client server simulations tests tools
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Google's dp-accounting, which recomputes the ledger's figures in make test
# (tests/common/privacy/test_independent_accounting.py), in an environment of its own:
# it pins attrs < 24, which the project's cannot hold (about 20 s the first time).
# Under make test the test fails, never skips, if this environment is missing.
DPACC := .work/dpacc
.PHONY: dp-accounting
dp-accounting: $(DPACC)/.installed
pytest: export PERSEVERANCE_DP_ACCOUNTING := $(CURDIR)/$(DPACC)/bin/python

$(DPACC)/.installed: tools/dpacc/requirements.txt
	@rm -rf $(DPACC) && mkdir -p .work && $(PYTHON) -m venv $(DPACC)
	@$(DPACC)/bin/pip install -q --no-deps -r $< > .work/dpacc-pip.log 2>&1 || { tail -20 .work/dpacc-pip.log; echo "make dp-accounting: pip failed; the full log is .work/dpacc-pip.log"; exit 1; }
	@touch $@

# Every test but the container tests (marker `containers`: make test, test-containers).
pytest: install system-packages dp-accounting
	$(BIN)/python -m pytest -q --durations=20 -n 2 --dist loadgroup -m "not containers"

# make test's pytest: every test, the container tests waiting for images-beside.
pytest-with-containers: export PERSEVERANCE_DP_ACCOUNTING := $(CURDIR)/$(DPACC)/bin/python
pytest-with-containers: export PERSEVERANCE_CONTAINERS_REQUIRED := 1
pytest-with-containers: export PERSEVERANCE_IMAGES_STATUS := $(CURDIR)/$(IMAGES_STATUS)
pytest-with-containers: install system-packages dp-accounting
	$(BIN)/python -m pytest -q --durations=25 -n 2 --dist loadgroup

# Everything CI runs (.ci/run), from a fresh clone: lint, import contracts, types and
# every test at once (`-j3`), with the container images built beside them. pytest's slow
# tests run in two groups, one per worker: the simulated federations, and the
# deployments, whose container tests (the guides' federation in containers, the
# two-node Ray cluster) come last and wait for the build. Timings: README, "Two commands".
test: install system-packages container-tools dp-accounting
	@rm -f $(IMAGES_STATUS)
	@$(MAKE) --no-print-directory -j3 lint typecheck pytest-with-containers images-beside

# The daily loop: lint, import contracts, the unit tests and one federation in process
# (tests/server/test_audit_verify.py's); not the tests marked `slow` (real servers, Ray,
# browsers, the simulation engine, long training) nor `federation` (the other in-process
# federations). `make test` runs them all, as CI does. Timings: README, "Two commands".
test-fast: install
	$(BIN)/ruff check common client server simulations tests tools
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not slow and not federation" -n 2

# Fresh random malformed extracts (many more than `make test` checks, which are fixed).
fuzz: install
	PERSEVERANCE_FUZZ=1 $(BIN)/python -m pytest -q tests/client/ingest/test_malformed.py

clean:
	rm -rf runs .work .pytest_cache .mypy_cache .ruff_cache

# ------------------------------------------------------------- container images
# Offline images (deploy/images/build.sh): wheelhouse, Debian bases (mmdebstrap), then the
# app, SuperLink, SuperNode and proxy images; podman's layer cache makes an unchanged
# rebuild take seconds. Needs root (rootful podman) and the container tools.
.PHONY: container-tools images images-check images-ray test-containers containers images-beside pytest-with-containers

container-tools:
	@bash deploy/install-container-tools.sh

images: install container-tools
	bash deploy/images/build.sh

# The app in the image hashes like this checkout (what a centre approves).
images-check: install
	bash deploy/images/build.sh stage check

# The Ray node image (deploy/ray/Dockerfile): the app image plus Ray, for simulations on a
# Ray cluster (tests/deploy/test_ray_cluster_containers.py; docs/SIMULATION.md).
images-ray: images
	bash deploy/images/build.sh ray

# The deployment end to end in containers (tests/deploy/test_container_federation.py): the
# ministry's and three centres' compose files run with podman, each site on its own
# networks, the guides' own commands, 2 rounds, then nothing of it left. Installs the
# container tools if missing and builds the images first (cached when unchanged).
# Then the simulation on a two-node Ray cluster of containers, compared with one node
# (tests/deploy/test_ray_cluster_containers.py).
test-containers: images images-ray containers

CONTAINER_TESTS := tests/deploy/test_container_federation.py tests/deploy/test_ray_cluster_containers.py
# The container tests alone, on images already built (under make test they fail, never
# skip, when podman or an image is missing).
containers: export PERSEVERANCE_CONTAINERS_REQUIRED := 1
containers: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m containers -s $(CONTAINER_TESTS)

# make test's image build: every image and the Ray node's, quiet (its log in a file); its
# outcome in $(IMAGES_STATUS), which the container tests wait for. Not niced: the
# container tests wait for it, so it is on make test's longest path.
images-beside: install container-tools
	@mkdir -p .work/images
	@echo "make test: building the images beside the tests (log: .work/images/build.log)"
	@start=$$(date +%s); \
	if bash deploy/images/build.sh all ray > .work/images/build.log 2>&1; then \
	  echo ok > $(IMAGES_STATUS); \
	  echo "make test: images ready in $$(( $$(date +%s) - start )) s"; \
	else echo failed > $(IMAGES_STATUS); tail -30 .work/images/build.log; \
	  echo "make test: the image build failed (its log: .work/images/build.log)"; exit 1; fi
