# A centre's SuperNode: flower-supernode from flwr==1.42.0 (the version of
# pyproject.toml), on the Debian base, installed from the wheelhouse only (offline),
# pinned by deploy/images/requirements.lock. Build with `make images`.
# It holds the centre's private key and the federation's CA certificate, talks to the
# ministry's proxy over TLS, and never sees the student data (the ClientApp container
# does). Its flags are in deploy/centre/compose.yaml (see server/deployment/programs.py).

ARG BASE_IMAGE=localhost/perseverance-base:bookworm-r1
ARG BUILD_IMAGE=localhost/perseverance-build-base:bookworm-r1

# The same build stage as deploy/ministry/superlink.Dockerfile (one cached layer for both).
FROM ${BUILD_IMAGE} AS build
COPY deploy/images/requirements.lock deploy/images/strip_shared_libraries.py /wheels/
COPY .work/images/wheelhouse/ /wheels/
RUN python3 -m venv /opt/flower \
    && /opt/flower/bin/pip install --no-cache-dir --no-index --find-links /wheels \
       --disable-pip-version-check --constraint /wheels/requirements.lock flwr==1.42.0 \
    && cd /opt/flower/lib/python3.11/site-packages \
    && find . -depth -type d -name tests -prune -exec rm -rf {} + \
    && python3 /wheels/strip_shared_libraries.py .

FROM ${BASE_IMAGE}
COPY --from=build /opt/flower /opt/flower

ENV PATH=/opt/flower/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1 \
    PYTHONDONTWRITEBYTECODE=1
USER app

EXPOSE 9094
ENTRYPOINT ["flower-supernode"]
