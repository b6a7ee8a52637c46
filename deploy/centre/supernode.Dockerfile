# A centre's SuperNode: Flower's official image, pinned to the Python package's version.
# It holds the centre's private key and the federation's CA certificate, talks to the
# ministry's proxy over TLS, and never sees the student data (the ClientApp container
# does). Its flags are in deploy/centre/compose.yaml (see server/deployment/programs.py).
FROM flwr/supernode:1.42.0

ENV FLWR_TELEMETRY_ENABLED=0 \
    FLWR_DISABLE_UPDATE_CHECK=1 \
    FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1

EXPOSE 9094
ENTRYPOINT ["flower-supernode"]
