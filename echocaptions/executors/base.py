"""What every executor is: a way to run one function over many tasks, in any order.

The stage driver (:mod:`echocaptions.driver`) hands an executor a picklable
function and the tasks still to do; the executor yields ``(task, result)``
pairs as tasks finish, keeping a bounded number in flight so memory does not
grow with the number of shards. An exception raised by the function
propagates unchanged; an executor that cannot start, or that lost a task
beyond its retries, raises :class:`ExecutorError` with what to do.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class ExecutorError(RuntimeError):
    """An executor that cannot start or lost work beyond its retries; the message says what to do."""


class Executor(ABC):
    """Runs ``fn`` over tasks; see the module docstring. Close it (or use ``with``) when done."""

    workers: int

    @abstractmethod
    def map_unordered(
        self,
        fn: Callable[[T], Any],
        tasks: Iterable[T],
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        modules: Sequence[str] = (),
    ) -> Iterator[tuple[T, Any]]:
        """Yield ``(task, fn(task))`` as each task finishes; exceptions propagate.

        ``num_cpus`` and ``num_gpus`` say what one task needs (``None``: the
        executor's default); executors that run one task per worker ignore them.
        ``modules`` are what ``fn`` imports (see :meth:`warm_up`).
        """

    def warm_up(self, modules: Sequence[str]) -> None:
        """Start loading ``modules`` for the workers of later calls that name them.

        A hint: an executor that can load libraries once for all its workers
        starts now, while other work runs; the others ignore it.
        """
        return None

    @abstractmethod
    def close(self) -> None:
        """Stop the workers this executor started (a later ``map_unordered`` starts new ones)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe(task: Any) -> str:
    """A task for messages: ``shard 00003`` when it has an index."""
    index = getattr(task, "index", None)
    return f"shard {index:05d}" if isinstance(index, int) else repr(task)[:80]
