# Persévérance app image: the project's code and dependencies, with Flower's SuperExec.
#
# One image, two roles (the same Flower app runs on both sides):
#   - ministry: ServerApp executor  (deploy/ministry/compose.yaml, service `serverapp`),
#               and the operators' tools (`perseverance-server`, `flwr`; service `operator`);
#   - centre:   ClientApp runtime `perseverance-clientapp` (deploy/centre/compose.yaml,
#               service `clientapp`): runs only the apps the centre approved.
# Build with `make images` (deploy/images/build.sh): it makes the wheelhouse and stages the
# app's files first, then, from the repository root:
#   podman build -f deploy/app.Dockerfile --ignorefile deploy/app.Dockerfile.dockerignore \
#     -t localhost/perseverance/app:0.1.0 .
# Offline: the base is made from Debian's archive (deploy/images/make-base.sh) and every
# Python package comes from the wheelhouse (--no-index), pinned by
# deploy/images/requirements.lock (torch==2.13.0, CPU build; flwr==1.42.0 without Ray).
# /app/src holds the app's files exactly as in the checkout (the files of its FAB, staged
# by deploy/images/stage_app_source.py): `perseverance-client app hash /app/src` in the
# image gives the SHA-256 a centre computes on the reviewed source.

ARG BASE_IMAGE=localhost/perseverance-base:bookworm-r1
# The build stage: the same Debian and Python, plus binutils (strip); never shipped.
ARG BUILD_IMAGE=localhost/perseverance-build-base:bookworm-r1

# ---------------------------------------------------------------- build stage
FROM ${BUILD_IMAGE} AS build
COPY deploy/images/requirements.lock .work/images/app-runtime.txt /wheels/
COPY .work/images/wheelhouse/ /wheels/
COPY deploy/images/strip_shared_libraries.py /usr/local/lib/
# The dependencies first (a change of the app's code does not reinstall them), in one
# layer with what is removed from them (a second layer would copy every stripped library
# again): never used at run time (the app image stays under 1.5 GB), the packages' own
# test suites, torch's C++ test programs, headers and CMake files (torch_shm_manager,
# which torch's multiprocessing uses, stays; `testing` modules stay: torch imports them),
# and the shared libraries' debugging symbols (strip --strip-unneeded, as Debian's
# packages, kept only where the stripped library still loads:
# deploy/images/strip_shared_libraries.py).
RUN python3 -m venv /opt/perseverance \
    && /opt/perseverance/bin/pip install --no-cache-dir --no-index --find-links /wheels \
       --disable-pip-version-check --constraint /wheels/requirements.lock \
       --requirement /wheels/app-runtime.txt \
    && cd /opt/perseverance/lib/python3.11/site-packages \
    && find . -depth -type d -name tests -prune -exec rm -rf {} + \
    && rm -rf torch/test torch/include torch/share/cmake \
    && find torch/bin -mindepth 1 ! -name torch_shm_manager -exec rm -rf {} + \
    && python3 /usr/local/lib/strip_shared_libraries.py .
# The project, non-editable, from its packages whole (their data files too); --no-deps:
# its dependencies are above, without flwr's [simulation] extra.
COPY .work/images/project/ /tmp/project/
RUN /opt/perseverance/bin/pip install --no-cache-dir --no-index --find-links /wheels \
       --disable-pip-version-check --no-deps /tmp/project

# ---------------------------------------------------------------- the image
FROM ${BASE_IMAGE}
# Code and packages belong to root: the app cannot change what the centre approved.
COPY --from=build /opt/perseverance /opt/perseverance
# The app's files exactly as in the checkout (those of its FAB; never built or edited).
COPY .work/images/app-src/ /app/src/
# Folders that become volumes take their owner from here (uid 49999, as Flower's images).
RUN mkdir -p /app/work/runs /state /data /operator /ministry-key /keeper /keeper-state \
    && chown -R app:app /app/work /state /operator /ministry-key /keeper /keeper-state \
    && /opt/perseverance/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11), "the app needs Python 3.11"' \
    # The app's components (pyproject's [tool.flwr.app.components]) import without Ray.
    && /opt/perseverance/bin/python -c 'import importlib, tomllib, flwr, torch; c = tomllib.load(open("/app/src/pyproject.toml", "rb"))["tool"]["flwr"]["app"]["components"]; [importlib.import_module(r.split(":")[0]) for r in c.values()]; print("flwr", flwr.__version__, "torch", torch.__version__, "components", *c.values())' \
    && command -v /opt/perseverance/bin/perseverance-clientapp /opt/perseverance/bin/flower-superexec

ENV PATH=/opt/perseverance/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    FLWR_HOME=/app/work/flwr-home \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER app

# ServerApps write their run folders under /app/work/runs (a volume on the ministry side).
WORKDIR /app/work
ENTRYPOINT ["flower-superexec"]
