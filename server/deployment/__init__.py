"""Running the ministry's side for real: the PKI, certificates and key files, enrolment
of centres, the reverse proxy, the operator tunnel, the argv of every program and the
processes started (stopped by their process groups, never by name)."""
