# The ministry's SuperLink: Flower's official image, pinned to the Python package's
# version. Its flags are in deploy/ministry/compose.yaml (the same as the loopback
# launcher's, see server/deployment/programs.py: TLS, SuperNode authentication, state in
# /state/superlink.db, ServerApps in a separate container, no runtime installs).
FROM flwr/superlink:1.42.0

USER root
RUN mkdir -p /state /pki && chown app:app /state
USER app

ENV FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1

VOLUME ["/state"]
EXPOSE 8000
ENTRYPOINT ["flower-superlink"]
