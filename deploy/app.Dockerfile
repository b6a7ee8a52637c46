# Persévérance app image: Flower's SuperExec with the project's code and dependencies.
#
# One image, two roles (the same Flower app runs on both sides):
#   - ministry: ServerApp executor  (deploy/ministry/compose.yaml, service `serverapp`),
#               and the operators' tools (`perseverance-server`, `flwr`; service `operator`);
#   - centre:   ClientApp runtime `perseverance-clientapp` (deploy/centre/compose.yaml,
#               service `clientapp`): runs only the apps the centre approved.
# Build from the repository root:
#   docker build -f deploy/app.Dockerfile -t perseverance/app:0.1.0 .
# Runtime dependency installation is off everywhere: no package is installed at run time;
# at a centre, perseverance-clientapp runs only the app versions the centre approved.

# Pinned to the flwr version of pyproject.toml (tests/deploy/test_containers.py checks it).
FROM flwr/superexec:1.42.0

USER root
# Folders that become volumes take their owner from here (the images run as uid 49999).
RUN mkdir -p /app/work/runs /state /data /operator \
    && chown -R app:app /app/work /state /operator
USER app

ENV FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    FLWR_HOME=/app/work/flwr-home \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# torch is pinned and CPU-only: an open range pulls a multi-GB CUDA build.
RUN python -c 'import sys; assert sys.version_info[:2] == (3, 11), "the app needs Python 3.11"' \
    && python -m pip install --no-cache-dir \
       --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /app/src
COPY --chown=app:app pyproject.toml ./
COPY --chown=app:app common ./common
COPY --chown=app:app client ./client
COPY --chown=app:app server ./server
COPY --chown=app:app simulations ./simulations
# flwr==1.42.0 is already in the base image; its [simulation] extra (Ray) is not needed here.
RUN sed -i 's/"flwr\[simulation\]==/"flwr==/' pyproject.toml \
    && python -m pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info \
    && python -c 'import flwr, client.app, client.runtime, server.app; print("flwr", flwr.__version__)' \
    && command -v perseverance-clientapp

# ServerApps write their run folders under /app/work/runs (a volume on the ministry side).
WORKDIR /app/work
ENTRYPOINT ["flower-superexec"]
