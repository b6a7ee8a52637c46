"""The ministry side: ServerApp, strategy assembly, run folder, registry, server CLI."""
