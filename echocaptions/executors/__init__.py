"""Executors run the per-shard stages; the local one is the default.

All share :class:`Executor` (``map_unordered``, ``close``) and raise
:class:`ExecutorError`; Ray itself is imported only when a Ray executor is
made, so it stays an optional extra.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from echocaptions.executors.base import Executor, ExecutorError
from echocaptions.executors.local import LocalExecutor
from echocaptions.executors.ray import RayExecutor
from echocaptions.registry import Registry

__all__ = [
    "EXECUTORS",
    "EXECUTOR_FACTORIES",
    "Executor",
    "ExecutorError",
    "LocalExecutor",
    "RayExecutor",
    "get_executor",
]

# Every executor by name, as a factory: ``factory(workers, *, address, cpus_per_task,
# gpus_per_task, max_retries, worker_modules)``. Nothing is connected (and Ray is not
# imported) until :func:`get_executor` calls one.
EXECUTOR_FACTORIES: Registry[Callable[..., Executor]] = Registry("executor")


@EXECUTOR_FACTORIES.register("local")
def _local(workers: int, *, address: str | None = None, **_: object) -> Executor:
    if address:
        raise ValueError(f"a Ray address ({address}) was given but the executor is local; use --executor ray")
    return LocalExecutor(workers=workers)


@EXECUTOR_FACTORIES.register("ray")
def _ray(
    workers: int,
    *,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    max_retries: int = 3,
    worker_modules: Sequence[str] = (),
) -> Executor:
    return RayExecutor(
        workers=workers,
        address=address,
        num_cpus_per_task=cpus_per_task,
        num_gpus_per_task=gpus_per_task,
        max_retries=max_retries,
        worker_modules=worker_modules,
    )


EXECUTORS = EXECUTOR_FACTORIES.names()


def get_executor(name: str, workers: int, **options: Any) -> Executor:
    """The executor called ``name``; Ray is imported (and connected) only for ``ray``.

    ``options`` go to its factory in :data:`EXECUTOR_FACTORIES` (for ``ray``:
    ``address``, ``cpus_per_task``, ``gpus_per_task``, ``max_retries`` and
    ``worker_modules``, the modules the work imports, which a cluster's workers
    are checked to import before any work). An unknown name raises
    ``ValueError`` listing the names there are.
    """
    return EXECUTOR_FACTORIES.get(name)(workers, **options)
