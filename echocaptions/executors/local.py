"""Local executor: a process pool over numbered shards with bounded work in flight.

Done shards are skipped before submission. At most ``2 * workers`` shards are
in flight, so memory stays bounded whatever the number of shards. With one
worker the shards run in this process (no pickling, no start-up cost).
Workers ignore Ctrl-C (the parent stops the pool) and die with their parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LocalExecutor:
    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers

    def map_unordered(
        self,
        fn: Callable[[T], Any],
        tasks: Iterable[T],
        num_cpus: float | None = None,
        num_gpus: float | None = None,
    ) -> Iterator[tuple[T, Any]]:
        """Yield ``(task, fn(task))`` as each finishes; exceptions propagate.

        ``num_cpus`` and ``num_gpus`` (what one task needs) matter to cluster
        executors only: here each worker process runs one task at a time.
        """
        if self.workers == 1:
            for task in tasks:
                yield task, fn(task)
            return
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker)
        pending: dict[Future, T] = {}
        try:
            for task in tasks:
                pending[pool.submit(fn, task)] = task
                if len(pending) >= 2 * self.workers:
                    yield from self._next_done(pending)
            while pending:
                yield from self._next_done(pending)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    @staticmethod
    def _next_done(pending: dict[Future, T]) -> Iterator[tuple[T, Any]]:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in done:
            yield pending.pop(future), future.result()
