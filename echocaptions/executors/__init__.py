"""Executors run the per-shard stages; the local one is the default."""

from echocaptions.executors.local import LocalExecutor

__all__ = ["LocalExecutor", "get_executor"]


def get_executor(name: str, workers: int):
    if name == "local":
        return LocalExecutor(workers=workers)
    raise ValueError(f"unknown executor {name!r}; available: local")
