"""Ray executor: the per-shard stages (images, captions) as Ray tasks, on this machine or on a cluster.

The interface is every executor's (:class:`~echocaptions.executors.base.Executor`):
``map_unordered(fn, items)`` yields ``(item, fn(item))`` as tasks finish, with
at most ``2 x`` the cluster's task slots in flight, so the driver holds a
bounded number of small results whatever the number of shards. Each task declares its CPU (and GPU) needs.

Workers are retry-safe because the shard function is: a shard's output is
written to a temporary name and renamed, and the same input always gives the
same bytes. A task whose worker process dies (killed, out of memory, node
lost) is run again by Ray up to ``max_retries`` times; ``OSError`` raised by
the function (a network filesystem hiccup) is retried as well, any other
exception is a bug or bad input and propagates at once.

Without an address a private Ray instance with ``workers`` CPUs is started in
this process and shut down by :meth:`close`. With one (``HOST:PORT`` of a
head started by ``ray start --head``, ``auto`` for the cluster this machine
belongs to, or ``ray://HOST:PORT`` for Ray Client) the cluster's CPUs set the
parallelism (``workers`` is not used) and the cluster is checked before any
work: reachable, and running the same echocaptions version on its workers.
Input and output folders must have the same paths on every node (a shared
filesystem). Ray is imported only here, so it stays an optional extra.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from echocaptions.executors.base import Executor, ExecutorError, describe
from echocaptions.version import package_version

T = TypeVar("T")

INSTALL_HINT = "pip install 'echocaptions[ray]'"
CONNECT_TIMEOUT_S = 5.0
PROBE_TIMEOUT_S = 300.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ExecutorError(f"the Ray executor needs Ray, which is not installed: {INSTALL_HINT}") from exc
    return ray


def _probe(modules: Sequence[str]) -> dict[str, Any]:
    """What a worker runs before any work: it can import the modules the work needs, and which version."""
    for name in modules:
        importlib.import_module(name)
    return {"version": package_version(), "pid": os.getpid()}


def _call(fn: Callable[[T], Any], task: T) -> Any:
    return fn(task)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast when nothing listens at ``HOST:PORT`` (Ray itself would wait for minutes)."""
    target = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ExecutorError(
            f"Ray address {address!r} is not HOST:PORT (e.g. 10.0.0.1:6379, or 'auto' on a cluster node)"
        )
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise ExecutorError(_unreachable(address, f"{type(exc).__name__}: {exc}")) from exc


def _unreachable(address: str, why: str) -> str:
    return (
        f"cannot reach a Ray cluster at {address} ({why}).\n"
        f"    Start one on the head node with `ray start --head --port 6379`, or check the address "
        f"with `ray status --address {address}`; without --ray-address the build starts its own "
        f"Ray on this machine."
    )


def _refused(address: str, exc: BaseException) -> str:
    return (
        f"something answers at {address} but Ray could not join it as a cluster "
        f"({type(exc).__name__}: {str(exc).strip()}).\n"
        "    Check that it is a Ray head's GCS port (`ray status --address ADDRESS`), that Ray has "
        "the same version here and there (`ray --version`), and, if the cluster uses token "
        "authentication, that RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN or "
        "~/.ray/auth_token) are set here too."
    ).replace("ADDRESS", address)


class RayExecutor(Executor):
    """Shards as Ray tasks; see the module docstring.

    ``worker_modules`` are the modules the work imports (the stages' own): the
    check of a cluster imports them on a worker before any work, so a node
    without them fails the build at once.
    """

    def __init__(
        self,
        workers: int = 1,
        address: str | None = None,
        num_cpus_per_task: float = 1.0,
        num_gpus_per_task: float = 0.0,
        max_retries: int = 3,
        max_in_flight: int | None = None,
        object_store_mb: int = 512,
        worker_modules: Sequence[str] = (),
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if num_cpus_per_task <= 0:
            raise ValueError("num_cpus_per_task must be positive")
        self.workers = workers
        self.address = address or None
        self.num_cpus_per_task = num_cpus_per_task
        self.num_gpus_per_task = num_gpus_per_task
        self.max_retries = max_retries
        self._max_in_flight = max_in_flight
        self._object_store_mb = object_store_mb
        self.worker_modules = tuple(worker_modules)
        if self.address and self.address != "auto":
            check_reachable(self.address)  # seconds, where Ray would retry for minutes
        self._ray = import_ray()
        self._owned = False
        self._connect()

    # connection ----------------------------------------------------------------
    def _connect(self) -> None:
        ray = self._ray
        if ray.is_initialized():
            if not _OWNED_BY_US.get("active"):
                return  # the caller initialised Ray; use that connection as it is
            if _OWNED_BY_US.get("address") == self.address and self.address is not None:
                self._owned = True
                return
            ray.shutdown()
        kwargs: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": True,
            "logging_level": "ERROR",
        }
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        try:
            if self.address is None:
                ray.init(
                    address="local",
                    num_cpus=self.workers,
                    num_gpus=0 if not self.num_gpus_per_task else None,
                    object_store_memory=self._object_store_mb * 2**20,
                    **kwargs,
                )
            else:
                ray.init(address=self.address, **kwargs)
        except ConnectionError as exc:
            if self.address in (None, "auto"):
                raise ExecutorError(_unreachable(self.address or "local", str(exc).strip())) from exc
            raise ExecutorError(_refused(self.address, exc)) from exc
        except Exception as exc:  # version mismatch, authentication, bad options
            if self.address is None:
                raise ExecutorError(f"Ray could not start on this machine: {exc}") from exc
            raise ExecutorError(_refused(self.address, exc)) from exc
        self._owned = True
        _OWNED_BY_US.update(active=True, address=self.address)
        if self.address is None:
            return  # a private Ray on this machine runs this very interpreter and package
        try:
            self._check_workers()
        except BaseException:
            self.close()
            raise

    def _check_workers(self) -> None:
        """One tiny task: the workers import the same echocaptions version as this process."""
        ray = self._ray
        ours = package_version()
        cpus = self.cluster_cpus()
        if cpus < self.num_cpus_per_task:
            raise ExecutorError(
                f"the Ray cluster has {cpus:g} CPUs; a shard task needs {self.num_cpus_per_task:g} "
                f"(add workers with `ray start --address HEAD:PORT`, or lower executor.cpus_per_task)"
            )
        probe = ray.remote(num_cpus=0, max_retries=1)(_probe)
        try:
            seen = ray.get(probe.remote(self.worker_modules), timeout=PROBE_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError as exc:
            raise ExecutorError(
                f"no Ray worker answered within {PROBE_TIMEOUT_S:.0f} s; check the cluster with `ray status`"
            ) from exc
        except ray.exceptions.RayError as exc:
            raise ExecutorError(
                "a Ray worker cannot run echocaptions; install the same version on every node "
                f"(pip install 'echocaptions[ray]=={ours}'): {exc}"
            ) from exc
        if seen["version"] != ours:
            raise ExecutorError(
                f"Ray workers run echocaptions {seen['version']}, this process {ours}; "
                "install the same version on every node so that builds are reproducible"
            )

    def cluster_cpus(self) -> float:
        return float(self._ray.cluster_resources().get("CPU", 0.0))

    def max_in_flight(self, num_cpus: float | None = None) -> int:
        if self._max_in_flight:
            return self._max_in_flight
        slots = int(self.cluster_cpus() // (num_cpus or self.num_cpus_per_task))
        return max(2, 2 * slots)

    def close(self) -> None:
        """Shut down the Ray instance this executor started (or disconnect from the cluster)."""
        if self._owned and self._ray.is_initialized():
            self._ray.shutdown()
        if self._owned:
            _OWNED_BY_US.clear()
        self._owned = False

    # work ------------------------------------------------------------------------
    def map_unordered(
        self,
        fn: Callable[[T], Any],
        tasks: Iterable[T],
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        modules: Sequence[str] = (),
    ) -> Iterator[tuple[T, Any]]:
        """Yield ``(task, fn(task))`` as each finishes; exceptions propagate.

        Each task declares ``num_cpus`` and ``num_gpus`` (default: the
        executor's ``num_cpus_per_task`` and ``num_gpus_per_task``). Ray's
        workers are long-lived and import ``modules`` once each anyway.
        """
        ray = self._ray
        if not ray.is_initialized():
            self._connect()
        cpus = self.num_cpus_per_task if num_cpus is None else num_cpus
        gpus = self.num_gpus_per_task if num_gpus is None else num_gpus
        needs: dict[str, Any] = {"num_cpus": cpus}
        if gpus:
            needs["num_gpus"] = gpus
        remote = ray.remote(max_retries=self.max_retries, retry_exceptions=[OSError], **needs)(_call)
        fn_ref = ray.put(fn)
        limit = self.max_in_flight(cpus)
        pending: dict[Any, T] = {}
        try:
            for task in tasks:
                pending[remote.remote(fn_ref, task)] = task
                if len(pending) >= limit:
                    yield self._next_done(pending)
            while pending:
                yield self._next_done(pending)
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise

    def _next_done(self, pending: dict[Any, T]) -> tuple[T, Any]:
        ray = self._ray
        (ref,), _ = ray.wait(list(pending), num_returns=1)
        task = pending.pop(ref)
        try:
            return task, ray.get(ref)
        except ray.exceptions.RayTaskError:
            raise  # the function's own exception (also an instance of its class)
        except ray.exceptions.RayError as exc:
            raise ExecutorError(
                f"task {describe(task)} failed on Ray after {self.max_retries} retries: "
                f"{type(exc).__name__}: {exc}\nfinished shards are kept; rerun the same command to resume"
            ) from exc


_OWNED_BY_US: dict[str, Any] = {}
