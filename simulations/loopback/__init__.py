"""The loopback launcher: the real deployment (SuperLink, nginx, SuperNodes, the centres'
own ClientApp runtimes, TLS and SuperNode authentication) started on 127.0.0.1 for demos
and tests, with a generated network and the centralised reference. It stands beside the
simulations because it generates networks and computes references; the ministry's code
(``server/``) and the centre's (``client/``) know nothing of it."""
