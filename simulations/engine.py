"""One start of the simulation engine (Ray and its ClientApp actors) for several runs.

Flower 1.42 starts Ray and a fresh pool of ``ClientAppActor`` processes for every
simulation and shuts both down at its end (``RayBackend.terminate``): at demo scale
that fixed cost (Ray's start, every actor importing torch, Opacus, Flower and pandas)
is as large as the federation. A sweep or a bench runs several federations of the same
scenario in a row; :class:`SimulationEngine` starts Ray and the actors once, keeps them
across those runs and stops them at the end, whatever happens.

Flower has no hook for it: its simulation runtime builds its backend with
``flwr.server.superlink.fleet.vce.backend.raybackend.RayBackend(config)``, looked up at
each run, so while an engine is open that name gives the engine's own backend
(``simulations.flower_compat.replace_ray_backend``) (a
``RayBackend`` whose ``terminate`` keeps the pool). What the runs share is only what
Flower's own actors would share within one run: processes with their imports and
per-process caches (each centre's encoded data, its noise calibration). Nothing of a
run's state lives in them: every centre's privacy ledger, audit log and reply cache are
files in that run's folder, and ``context.state`` is Flower's, per run.

The actors also share one folder of noise plans (``$PERSEVERANCE_NOISE_PLANS``, see
``common.privacy.accounting.calibrate_training_noise``, which checks every plan it reads), so that
each centre's noise is planned once, not once per actor, and one folder of the centres'
encoded records (``$PERSEVERANCE_EXTRACTS``, see ``client.ingest.centre_data.load_centre``, named by
the digests of the files they come from), so that each extract is read, validated and
encoded once, not once per actor.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulations.flower_compat import (
    RayBackend,
    print_actor_output,
    replace_message_extractor,
    replace_ray_backend,
    route_actor_output,
    stop_routing_actor_output,
)

#: The engine's folder of the centres' encoded records, inside its noise plans' folder.
EXTRACTS = "extracts"


def _warm() -> Callable[..., None]:
    """Runs in an actor (as its "ClientApp" loader): import what the ClientApp imports,
    so that the first message of the first run does not pay for it.

    Besides the app's own imports, what its first task would import on the way
    (issue 32, found by profiling the actors): torch's compiler front end, which
    ``torch.optim`` imports at the first optimiser built (1.5-3 s an actor, in round 1
    of every run's first task on an actor), pandera's pandas backends (registered at the
    first validation, with hypothesis) and pyarrow's Parquet reader. Imports only: no
    cache, nothing a run's figures could depend on."""
    import pandas as pd
    import pyarrow.parquet  # noqa: F401
    import torch._dynamo  # noqa: F401
    from pandera.api.pandas.container import DataFrameSchema

    import client.federation.app  # noqa: F401  (torch, Opacus, Flower, pandas)

    DataFrameSchema.register_default_backends(pd.DataFrame)
    return _no_reply


def _cold() -> Callable[..., None]:
    """Runs in an actor: forget the per-process caches (centres' data, noise
    calibration), so that a run starts as cold as on a fresh engine (the bench's
    phases compare like with like)."""
    from client.ingest.centre_data import forget_centres
    from client.privacy import student_budget
    from common.privacy import accounting as privacy
    forget_centres()
    student_budget.forget_hashes()
    for cached in vars(privacy).values():
        if hasattr(cached, "cache_clear"):
            cached.cache_clear()
    return _no_reply


def _data_cache_info() -> Callable[..., dict[str, int]]:
    """Runs in an actor: how often its centres' data came from its cache."""
    from client.ingest.centre_data import centres_cache_info

    hits, misses = centres_cache_info()
    return lambda message=None, context=None: {"hits": hits, "misses": misses}


def _no_reply(message: object = None, context: object = None) -> None:
    """The "ClientApp" of :func:`_warm` and :func:`_cold`: nothing to answer."""
    return None


class KeptRayBackend(RayBackend):
    """Flower's Ray backend, whose actor pool outlives a run while ``engine`` is open."""

    def __init__(self, engine: SimulationEngine, backend_config: dict[str, Any]) -> None:
        super().__init__(backend_config)
        self.engine = engine

    def build(self, app_fn: Callable[[], Any]) -> None:
        if self.pool is None:
            super().build(app_fn)
        self.app_fn = app_fn

    @property
    def num_workers(self) -> int:
        """How many messages Flower's runtime has processed at once (its worker
        threads): every actor, or :attr:`SimulationEngine.workers` of them."""
        actors = super().num_workers
        limit = self.engine.workers
        return actors if limit is None else max(1, min(actors, limit))

    def terminate(self) -> None:
        pool = self.pool
        if pool is not None and len(pool.pool) == pool.num_actors:
            return  # every actor idle and back in the pool: keep them for the next run
        # An actor still busy (a failed run): the next run starts afresh.
        self.engine.discard(self)
        super().terminate()


class SimulationEngine:
    """Ray and one pool of ClientApp actors, kept across the runs made while it is open.

    Use as a context manager around the runs (``run_flower_simulation(...,
    engine=engine)``); all of them must use the same ``backend_config`` (the scenario's
    ``[backend]``). ``start_seconds`` is what starting cost (Ray, the actors, their
    imports): the part of every run's wall time that the engine pays once.
    """

    def __init__(self, backend_config: dict[str, Any]) -> None:
        self.backend_config = backend_config
        self.start_seconds = 0.0
        self.starts = 0  # how many times Ray and a pool were started (tests read it)
        #: At most this many simulated centres at once in the next runs (None: one per
        #: actor): the bench's run with one worker, on the same engine and actors.
        self.workers: int | None = None
        self._backend: KeptRayBackend | None = None
        self._restore: Callable[[], None] | None = None
        #: The actors' shared noise plans while the engine runs (removed at its close).
        self.noise_plans: Path | None = None
        self._environment_before: str | None = None
        self._extracts_before: str | None = None
        #: Where what the actors print goes (Ray's dispatcher's records), once Ray has
        #: started; None leaves Ray printing it on the terminal
        #: (:class:`simulations.terminal.ThirdPartyOutput` sets it, run by run).
        self.actor_output: Callable[[dict[str, Any]], None] | None = None

    # -- Flower's side -------------------------------------------------------------
    def _backend_for(self, config: dict[str, Any]) -> KeptRayBackend:
        """What Flower's simulation runtime gets when it builds its backend."""
        if _normalised(config) != _normalised(self.backend_config):
            raise ValueError("Every run on one simulation engine needs the same backend "
                             "configuration.")
        if self._backend is None:  # the first run, or the pool was lost in a failed run
            self._start()
        assert self._backend is not None
        return self._backend

    def _start(self) -> None:
        started = time.perf_counter()
        self._share_noise_plans()
        backend = KeptRayBackend(self, self.backend_config)  # starts Ray
        self._route_actor_output()
        backend.build(_warm)
        assert backend.pool is not None
        self._call_every_actor(backend, _warm)
        self._backend = backend
        self.start_seconds += time.perf_counter() - started
        self.starts += 1

    def _route_actor_output(self) -> None:
        """Give what the actors print to :attr:`actor_output` instead of Ray's printer
        (Ray's dispatcher of the workers' output, its one hook for it), or to Ray's
        printer while it is None."""
        route_actor_output(self._actor_output)

    def _actor_output(self, data: dict[str, Any]) -> None:
        # Looked up at each line: a kept engine's runs each have their own log.
        if self.actor_output is not None:
            self.actor_output(data)
        else:
            print_actor_output(data)

    @staticmethod
    def _call_every_actor(backend: RayBackend, loader: Callable[[], Any]) -> list[Any]:
        """Run ``loader`` in every idle actor of the pool (as a ClientApp loader: what
        it returns is called as the app); return what each app returned."""
        import ray

        pool = backend.pool
        assert pool is not None
        replies = ray.get([actor.run.remote(loader, None, "engine", None)  # type: ignore[attr-defined]
                           for actor in pool.pool])
        return [reply for _, reply, _ in replies]

    def data_cache_info(self) -> list[dict[str, int]]:
        """Each actor's ``load_centre`` cache: hits and misses since its last clear."""
        if self._backend is None:
            return []
        return self._call_every_actor(self._backend, _data_cache_info)

    def _share_noise_plans(self) -> None:
        """Give the actors (which inherit the environment Ray starts with) one folder
        for their noise plans: each centre's noise is planned once per run, not once per
        actor (``common.privacy.accounting.calibrate_training_noise``, which checks what it
        reads)."""
        from client.ingest.centre_data import EXTRACT_CACHE_ENV
        from common.privacy.accounting import NOISE_PLAN_CACHE_ENV
        from common.workdirs import work_root

        if self.noise_plans is not None:
            return
        root = work_root() / "noise-plans"
        root.mkdir(parents=True, exist_ok=True)
        self.noise_plans = Path(tempfile.mkdtemp(prefix="engine-", dir=root))
        self._environment_before = os.environ.get(NOISE_PLAN_CACHE_ENV)
        os.environ[NOISE_PLAN_CACHE_ENV] = str(self.noise_plans)
        # The centres' encoded records too, in the same folder
        # (client.ingest.centre_data.load_centre):
        # each extract is read, validated and encoded once, not once per actor.
        self._extracts_before = os.environ.get(EXTRACT_CACHE_ENV)
        os.environ[EXTRACT_CACHE_ENV] = str(self.noise_plans / EXTRACTS)

    def _forget_noise_plans(self, remove: bool) -> None:
        from client.ingest.centre_data import EXTRACT_CACHE_ENV
        from common.privacy.accounting import NOISE_PLAN_CACHE_ENV

        if self.noise_plans is None:
            return
        if remove:
            shutil.rmtree(self.noise_plans, ignore_errors=True)
            for name, before in ((NOISE_PLAN_CACHE_ENV, self._environment_before),
                                 (EXTRACT_CACHE_ENV, self._extracts_before)):
                if before is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = before
            self.noise_plans = None
        else:
            for plan in self.noise_plans.glob("*.json"):
                plan.unlink(missing_ok=True)
            shutil.rmtree(self.noise_plans / EXTRACTS, ignore_errors=True)

    def discard(self, backend: KeptRayBackend) -> None:
        """Forget ``backend`` (its pool is being stopped): the next run starts anew."""
        if self._backend is backend:
            self._backend = None

    # -- the caller's side ---------------------------------------------------------
    def start(self) -> None:
        """Start Ray and the actors now (else at the first run)."""
        if self._backend is None:
            self._start()

    @property
    def started(self) -> bool:
        """Whether Ray and the actors are running (a run now starts at once)."""
        return self._backend is not None

    @property
    def is_open(self) -> bool:
        """Whether runs made now use this engine (inside its ``with`` block)."""
        return self._restore is not None

    def forget_caches(self) -> None:
        """Clear every actor's per-process caches (see :func:`_cold`) and the run's
        shared noise plans."""
        if self._backend is not None:
            self._call_every_actor(self._backend, _cold)
        self._forget_noise_plans(remove=False)

    def __enter__(self) -> SimulationEngine:
        # Flower's runtime calls ``RayBackend(backend_config)`` at every run.
        restore_backend = replace_ray_backend(self._backend_for)
        # And hands instructions to its workers with an extractor whose polling took
        # a quarter of a core at quebec-72 (issue 32): a light one while the engine is open.
        restore_extractor = replace_message_extractor()

        def restore() -> None:
            restore_extractor()
            restore_backend()

        self._restore = restore
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the actors and Ray; give Flower its own backend back."""
        import ray

        if self._restore is not None:
            self._restore()
            self._restore = None
        backend, self._backend = self._backend, None
        try:
            if backend is not None and backend.pool is not None:
                backend.pool.terminate_all_actors()
        finally:
            if ray.is_initialized():
                ray.shutdown()
            self._forget_noise_plans(remove=True)
            stop_routing_actor_output()


def _normalised(config: dict[str, Any]) -> str:
    # Flower rewrites "-" to "_" in keys and adds its defaults ("actor"): compare what
    # decides the pool (resources and Ray's arguments).
    keys = ("client_resources", "init_args")
    return json.dumps({k: config.get(k) for k in keys}, sort_keys=True, default=str)
