"""Local executor: a process pool over numbered shards with bounded work in flight.

Done shards are skipped before submission. At most ``2 * workers`` shards are
in flight, so memory stays bounded whatever the number of shards. With one
worker the shards run in this process (no pickling, no start-up cost). The
pool outlives one ``map_unordered`` call, so a later stage reuses the warm
workers of an earlier one; :meth:`LocalExecutor.close` stops it at once (the
workers are idle then: nothing of theirs is lost, and a worker that has
imported heavy libraries would take seconds to exit on its own).

Libraries that take seconds to import (the caption stage's tokenizer and
sentence splitter pull in torch) are loaded once, while earlier work runs
(:meth:`LocalExecutor.warm_up`): with several workers, a fork server imports
them and the workers of a later call that names them are forked from it,
ready, instead of each importing them; with one worker, the next call's
shards run in one helper process while this process imports them.
Workers ignore Ctrl-C (the parent stops the pool: running shards are killed,
queued ones dropped) and die with their parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from echocaptions.executors.base import Executor

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
# The modules this process's fork server was started with (it is one per process, started once).
_SERVER_MODULES: tuple[str, ...] | None = None


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


def _server_holding(modules: Sequence[str]) -> tuple[str, ...]:
    """The fork server's modules when they include ``modules`` (workers then come from it), else ()."""
    if modules and _SERVER_MODULES is not None and set(modules) <= set(_SERVER_MODULES):
        return _SERVER_MODULES
    return ()


class LocalExecutor(Executor):
    """Worker processes on this machine (none with one worker)."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._pool_modules: tuple[str, ...] = ()
        self._load_here: tuple[str, ...] = ()  # one worker: modules to import while a helper runs shards
        self._helper: ProcessPoolExecutor | None = None

    def warm_up(self, modules: Sequence[str]) -> None:
        """Load ``modules`` once, while other work runs, for later calls that name them.

        Several workers: a fork server imports them now (it is one per process
        and keeps the modules of its first warm-up; a later call whose modules
        it holds gets its workers from it too). One worker, on a machine with
        more than one CPU: the next call that does not name them runs its
        shards in one helper process while this process imports them. Modules
        that cannot be imported are skipped (the work imports what it needs
        itself); where neither applies, this does nothing.
        """
        global _SERVER_MODULES
        modules = tuple(modules)
        if self.workers == 1:
            if (os.cpu_count() or 1) > 1:
                self._load_here = tuple(name for name in modules if name not in sys.modules)
            return
        if not modules or "forkserver" not in multiprocessing.get_all_start_methods():
            return
        if _SERVER_MODULES is None:
            from multiprocessing import forkserver

            multiprocessing.set_forkserver_preload(list(modules))
            forkserver.ensure_running()  # returns at once; the server imports them meanwhile
            _SERVER_MODULES = modules

    def map_unordered(
        self,
        fn: Callable[[T], Any],
        tasks: Iterable[T],
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        modules: Sequence[str] = (),
    ) -> Iterator[tuple[T, Any]]:
        """Yield ``(task, fn(task))`` as each finishes; exceptions propagate.

        ``num_cpus`` and ``num_gpus`` (what one task needs) matter to cluster
        executors only: here each worker process runs one task at a time.
        ``modules``: what ``fn`` imports; workers come ready from the fork
        server when it holds them (see :meth:`warm_up`).
        """
        if self.workers == 1:
            if self._load_here and not set(modules) & set(self._load_here):
                yield from self._beside_imports(fn, tasks)
                return
            for task in tasks:
                yield task, fn(task)
            return
        pool = self._pool_for(_server_holding(modules))
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

    def _beside_imports(self, fn: Callable[[T], Any], tasks: Iterable[T]) -> Iterator[tuple[T, Any]]:
        """One worker's shards in a helper process, one at a time, while this process imports the modules.

        One shard at a time, as in this process: when the caller stops after a
        result, nothing else has started.
        """
        load, self._load_here = self._load_here, ()
        todo = list(tasks)
        if not todo:
            return
        ctx = multiprocessing.get_context("spawn")
        pool = self._helper = ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=_init_worker)
        try:
            future = pool.submit(fn, todo[0])
            for name in load:
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
            for i, task in enumerate(todo):
                result = future.result()
                yield task, result
                if i + 1 < len(todo):
                    future = pool.submit(fn, todo[i + 1])
        finally:
            self._helper = None
            _stop_now(pool)

    def _pool_for(self, modules: tuple[str, ...]) -> ProcessPoolExecutor:
        """The running pool if its workers have ``modules``, else a new one (the old one stopped).

        Workers with modules are forked from the fork server; the others are
        fresh interpreters (spawned: nothing of this process leaks into them).
        """
        if self._pool is not None and self._pool_modules != modules:
            self.close()
        if self._pool is None:
            ctx = multiprocessing.get_context("forkserver" if modules else "spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker)
            self._pool_modules = modules
        return self._pool

    def close(self) -> None:
        """Stop the worker processes now (a later ``map_unordered`` starts new ones)."""
        for name in ("_pool", "_helper"):
            pool = getattr(self, name)
            if pool is not None:
                setattr(self, name, None)
                _stop_now(pool)

    @staticmethod
    def _next_done(pending: dict[Future, T]) -> Iterator[tuple[T, Any]]:
        done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in done:
            yield pending.pop(future), future.result()
