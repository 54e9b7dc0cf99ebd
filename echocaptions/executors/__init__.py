"""Executors run the per-shard stages; the local one is the default."""

from echocaptions.executors.local import LocalExecutor
from echocaptions.executors.ray import ExecutorError, RayExecutor

__all__ = ["EXECUTORS", "ExecutorError", "LocalExecutor", "RayExecutor", "get_executor"]

EXECUTORS = ("local", "ray")


def get_executor(
    name: str,
    workers: int,
    *,
    address: str | None = None,
    cpus_per_task: float = 1.0,
    gpus_per_task: float = 0.0,
    max_retries: int = 3,
):
    """The executor called ``name``; Ray is imported (and connected) only for ``ray``."""
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
        )
    raise ValueError(f"unknown executor {name!r}; available: {', '.join(EXECUTORS)}")
