"""French first, English available: the message catalogue and the CLIs' language."""
