"""Executors run the per-shard stages; the local one is the default.

All share :class:`Executor` (``map_unordered``, ``close``) and raise
:class:`ExecutorError`; Ray itself is imported only when a Ray executor is
made, so it stays an optional extra.
"""

from __future__ import annotations

from collections.abc import Sequence

from echocaptions.executors.base import Executor, ExecutorError
from echocaptions.executors.local import LocalExecutor
from echocaptions.executors.ray import RayExecutor

__all__ = ["EXECUTORS", "Executor", "ExecutorError", "LocalExecutor", "RayExecutor", "get_executor"]

EXECUTORS = ("local", "ray")


def get_executor(
    name: str,
    workers: int,
    *,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    max_retries: int = 3,
    worker_modules: Sequence[str] = (),
) -> Executor:
    """The executor called ``name``; Ray is imported (and connected) only for ``ray``.

    ``worker_modules``: the modules the work imports, which a cluster's
    workers are checked to import before any work.
    """
    if name == "local":
        if address:
            raise ValueError(f"a Ray address ({address}) was given but the executor is local; use --executor ray")
        return LocalExecutor(workers=workers)
    if name == "ray":
        return RayExecutor(
            workers=workers,
            address=address,
            num_cpus_per_task=cpus_per_task,
            num_gpus_per_task=gpus_per_task,
            max_retries=max_retries,
            worker_modules=worker_modules,
        )
    raise ValueError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")

