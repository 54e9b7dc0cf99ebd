"""Local executor: a process pool over numbered shards with bounded work in flight.

Done shards are skipped before submission. At most ``2 * workers`` shards are
in flight, so memory stays bounded whatever the number of shards. With one
worker the shards run in this process (no pickling, no start-up cost).
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops the pool and keeps done shards."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor:
    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers

    def map_unordered(
        self, fn: Callable[[T], Any], tasks: Iterable[T]
    ) -> Iterator[tuple[T, Any]]:
        """Yield ``(task, fn(task))`` as each finishes; exceptions propagate."""
        if self.workers == 1:
            for task in tasks:
                yield task, fn(task)
            return
        ctx = multiprocessing.get_context("spawn")
        limit = 2 * self.workers
        pool = ProcessPoolExecutor(
            max_workers=self.workers, mp_context=ctx, initializer=_ignore_sigint
        )
        pending: dict[Future, T] = {}
        try:
            for task in tasks:
                pending[pool.submit(fn, task)] = task
                if len(pending) >= limit:
                    yield from self._drain(pending, FIRST_COMPLETED)
            while pending:
                yield from self._drain(pending, FIRST_COMPLETED)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    @staticmethod
    def _drain(pending: dict[Future, T], how: str) -> Iterator[tuple[T, Any]]:
        done, _ = wait(list(pending), return_when=how)
        for future in done:
            task = pending.pop(future)
            yield task, future.result()
