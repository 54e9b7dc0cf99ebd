"""Local executor: a process pool over numbered shards with bounded work in flight.

Done shards are skipped before submission. At most ``2 * workers`` shards are
in flight, so memory stays bounded whatever the number of shards. With one
worker the shards run in this process (no pickling, no start-up cost). The
pool outlives one ``map_unordered`` call, so the caption stage reuses the
image stage's warm workers; :meth:`LocalExecutor.close` stops it.
Workers ignore Ctrl-C (the parent stops the pool: running shards are killed,
queued ones dropped) and die with their parent.
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


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Stop a pool at once: queued shards are dropped and running ones are killed.

    A killed shard leaves no output (outputs are renamed into place when
    complete) and keeps what it committed before (LLM answers), so its rerun
    redoes only the rest; nothing of it keeps running after the build stops.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(timeout=10)


class LocalExecutor:
    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

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
        if self._pool is None:
            ctx = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker)
        pool = self._pool
        pending: dict[Future, T] = {}
        try:
            for task in tasks:
                pending[pool.submit(fn, task)] = task
                if len(pending) >= 2 * self.workers:
                    yield from self._next_done(pending)
            while pending:
                yield from self._next_done(pending)
        except BaseException:
            self._pool = None
            _stop_now(pool)
            raise

    def close(self) -> None:
        """Stop the worker processes (a later ``map_unordered`` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _next_done(pending: dict[Future, T]) -> Iterator[tuple[T, Any]]:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in done:
            yield pending.pop(future), future.result()
