"""The one driver of per-shard stages: todo and done, resume, stale files, progress, the executor.

A stage (:class:`ShardStage`) declares its name, its folder, its tasks (one per
shard, made by the stage's ``plan`` from its inputs), what a shard's output
depends on (:meth:`~ShardStage.fingerprint`), which files a finished shard
leaves (:meth:`~ShardStage.outputs`) and the work on one shard (``work``, a
picklable function of the task that runs on a worker). :func:`run_stage`
does the rest, the same way for every stage:

1. it removes what belongs to no task from the stage's folder: files of
   shards the plan no longer has, and temporary files an interrupted attempt
   left (outputs are renamed into place only when complete);
2. a shard whose done marker holds its current fingerprint, and whose
   outputs are all there, is done: the result its marker recorded is used as
   it is; the other shards are the todo list;
3. the todo list runs on the executor, shards in any order; on the worker,
   each shard's done marker is written after its outputs, so a build stopped
   at any point (Ctrl-C, a killed process, a lost node) resumes from the
   shards that finished, and a changed input is never mistaken for a
   finished shard;
4. the stage is timed (wall seconds, items per second) for ``stats.json``.

A shard's result is plain JSON (its done marker records it), so a resumed
shard gives the driver exactly what a run one gives.
"""

from __future__ import annotations

import functools
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from echocaptions.executors.base import Executor
from echocaptions.io import TMP_SUFFIX, write_text
from echocaptions.stats import StageTime


class StageTask(Protocol):
    """What the driver needs of a task: its shard number and where its done marker goes."""

    index: int
    done_path: str


T = TypeVar("T", bound=StageTask)
Result = dict[str, Any]


class Bar(Protocol):
    def update(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[int, str], Bar]


class StageError(RuntimeError):
    """A stage that cannot finish; the message says what to do."""


class ShardStage(ABC, Generic[T]):
    """A per-shard stage; see the module docstring.

    The stage object travels to the workers with each task, so it holds
    settings only (never the plan's inputs). ``work`` is the function a worker
    runs on one task; it is an argument so that a test or a tool can put
    another in its place.
    """

    name: ClassVar[str]
    num_cpus: ClassVar[float | None] = None  # what one shard needs (None: the executor's default)
    num_gpus: ClassVar[float | None] = None

    def __init__(self, folder: Path, work: Callable[[T], Result], modules: Sequence[str] = ()) -> None:
        self.folder = Path(folder)
        self.work = work
        # What the work imports that takes long: an executor may load it once for all workers.
        self.modules = tuple(modules)

    @abstractmethod
    def fingerprint(self, task: T) -> str:
        """Hash of everything the shard's output depends on."""

    @abstractmethod
    def outputs(self, task: T) -> Sequence[str]:
        """Files a finished shard has written (besides its done marker)."""

    def still_valid(self, task: T, result: Result) -> bool:
        """Extra check of a shard that looks done (e.g. its output's row count)."""
        return True

    def items(self, results: Sequence[Result]) -> int:
        """Items the stage handled, for its items per second."""
        return 0

    def before(self, todo: Sequence[T]) -> None:
        """Runs on the driver before the todo list is handed to the executor."""

    def after(self, finished: Sequence[T], failed: bool) -> None:
        """Runs on the driver when the stage ends, also when it failed or was stopped."""

    def explain(self, exc: Exception) -> str | None:
        """What to tell the user when a shard raised ``exc``; None lets it propagate as it is."""
        return None


@dataclass
class StageRun:
    """What a stage gave: each shard's result in shard order, and how the run went."""

    name: str
    results: list[Result]
    shards: int
    resumed: int
    time: StageTime


def done_result(stage: ShardStage[T], task: T) -> Result | None:
    """The result a finished shard recorded, or None when it must be (re)run."""
    done = Path(task.done_path)
    if not done.is_file() or not all(Path(p).is_file() for p in stage.outputs(task)):
        return None
    try:
        marker = json.loads(done.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(marker, dict) or marker.get("fingerprint") != stage.fingerprint(task):
        return None
    result = marker.get("result")
    if not isinstance(result, dict) or not stage.still_valid(task, result):
        return None
    return result


def run_task(stage: ShardStage[T], task: T) -> Result:
    """One shard on a worker: the stage's work, then the done marker (after the outputs).

    The fingerprint is taken before the work: an input that changes while the
    shard runs leaves a marker that no longer matches, so the shard reruns.
    """
    fingerprint = stage.fingerprint(task)
    result = stage.work(task)
    marker = {"fingerprint": fingerprint, "result": result}
    write_text(task.done_path, json.dumps(marker, sort_keys=True, ensure_ascii=False))
    return result


def remove_stale(folder: Path, tasks: Iterable[StageTask]) -> None:
    """Delete files of shards that are not in ``tasks`` and temporary files left by interrupted attempts.

    Files are named by shard number (``00003.parquet``, ``.00003.parquet.HOST.PID.RANDOM.tmp``).
    """
    keep = {f"{t.index:05d}" for t in tasks}
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.is_file() and (path.name.lstrip(".").split(".")[0] not in keep or path.name.endswith(TMP_SUFFIX)):
            path.unlink()


def run_stage(
    stage: ShardStage[T],
    tasks: Sequence[T],
    executor: Executor,
    progress: ProgressFactory,
    clock: Stopwatch | None = None,
) -> StageRun:
    """Run the shards of ``stage`` that are not done yet; see the module docstring.

    The stage's time goes to ``clock`` too, under the stage's name.
    """
    start = time.perf_counter()
    remove_stale(stage.folder, tasks)
    results: dict[int, Result] = {}
    todo: list[T] = []
    for task in tasks:
        result = done_result(stage, task)
        if result is None:
            todo.append(task)
        else:
            results[task.index] = result
    stage.before(todo)
    bar = progress(len(tasks), stage.name)
    failed = True
    try:
        bar.update(len(tasks) - len(todo))
        fn = functools.partial(run_task, stage)
        shards = executor.map_unordered(
            fn, todo, num_cpus=stage.num_cpus, num_gpus=stage.num_gpus, modules=stage.modules
        )
        for task, result in shards:
            results[task.index] = result
            bar.update(1)
        failed = False
    except Exception as exc:
        problem = stage.explain(exc)
        if problem is None:
            raise
        raise StageError(problem) from exc
    finally:
        bar.close()
        stage.after([t for t in tasks if t.index in results], failed)
    ordered = [results[t.index] for t in tasks]
    spent = StageTime(time.perf_counter() - start, stage.items(ordered))
    if clock is not None:
        clock.times[stage.name] = spent
    return StageRun(stage.name, ordered, len(tasks), len(tasks) - len(todo), spent)


class Stopwatch:
    """Wall time and items of each step of a build, by name (stats.json's ``stages``)."""

    def __init__(self) -> None:
        self.times: dict[str, StageTime] = {}

    def record(self, name: str, started: float, items: int) -> None:
        self.times[name] = StageTime(time.perf_counter() - started, items)

    @staticmethod
    def now() -> float:
        return time.perf_counter()
