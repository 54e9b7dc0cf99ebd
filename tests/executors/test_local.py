"""The local executor: the executors' one interface, bounded work in flight, a quick close, shared imports."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from echocaptions import executors
from echocaptions.executors import Executor, ExecutorError, LocalExecutor, RayExecutor, get_executor

REPO = Path(__file__).resolve().parents[2]


def _square(x: int) -> int:
    return x * x


def _pid(_: int) -> int:
    time.sleep(0.05)
    return os.getpid()


def test_every_executor_has_the_one_interface_and_error_type() -> None:
    from echocaptions.executors import ray

    assert issubclass(LocalExecutor, Executor) and issubclass(RayExecutor, Executor)
    assert ray.ExecutorError is ExecutorError is executors.base.ExecutorError
    assert isinstance(get_executor("local", 2), LocalExecutor)
    with pytest.raises(ValueError, match="unknown executor 'dask'; available: local, ray"):
        get_executor("dask", 1)


@pytest.mark.parametrize("workers", [1, 2])
def test_results_come_back_with_their_tasks_and_work_in_flight_is_bounded(workers: int) -> None:
    produced: list[int] = []

    def tasks() -> Iterator[int]:
        for i in range(12):
            produced.append(i)
            yield i

    seen = []
    with LocalExecutor(workers) as executor:
        for task, result in executor.map_unordered(_square, tasks()):
            assert len(produced) - len(seen) <= 2 * workers
            seen.append((task, result))
        assert sorted(seen) == [(i, i * i) for i in range(12)]
        with pytest.raises(ZeroDivisionError):
            list(executor.map_unordered(functools.partial(divmod, 1), [1, 0]))


def test_close_stops_the_workers_at_once() -> None:
    executor = LocalExecutor(2)
    pids = {pid for _, pid in executor.map_unordered(_pid, range(6))}
    assert pids and os.getpid() not in pids
    start = time.monotonic()
    executor.close()
    assert time.monotonic() - start < 5
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            for _ in range(100):  # reaped by now, or about to be
                os.kill(pid, 0)
                time.sleep(0.05)
    again = dict(executor.map_unordered(_square, [3]))  # a closed executor starts new workers
    assert again == {3: 9}
    executor.close()


WARM = """
import sys
from echocaptions.executors import LocalExecutor
from tests.executors.test_local import loaded

executor = LocalExecutor(2)
before = dict(executor.map_unordered(loaded, ["xml.dom.minidom"]))
executor.warm_up(["xml.dom.minidom"])
warm = dict(executor.map_unordered(loaded, ["xml.dom.minidom"], modules=["xml.dom.minidom"]))
other = dict(executor.map_unordered(loaded, ["xml.dom.minidom"], modules=["email.parser"]))
executor.close()
print(before["xml.dom.minidom"], warm["xml.dom.minidom"], other["xml.dom.minidom"])
"""


def loaded(name: str) -> bool:
    """Whether the worker had ``name`` imported before this task."""
    return name in sys.modules


@pytest.mark.skipif(sys.platform == "win32", reason="no fork server on Windows")
def test_workers_of_a_warmed_up_call_start_with_its_modules_imported() -> None:
    # In a fresh interpreter: the fork server is one per process and starts once.
    done = subprocess.run(
        [sys.executable, "-c", WARM], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True", "False"]


ONE_WORKER = """
import os, sys
from echocaptions.executors import LocalExecutor
from tests.executors.test_local import _pid

executor = LocalExecutor(1)
executor.warm_up(["xml.dom.minidom"])
helper = {pid for _, pid in executor.map_unordered(_pid, range(3))}
loaded = "xml.dom.minidom" in sys.modules
here = {pid for _, pid in executor.map_unordered(_pid, range(2), modules=["xml.dom.minidom"])}
executor.close()
print(helper != {os.getpid()} and len(helper) == 1, loaded, here == {os.getpid()})
"""


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one worker loads modules beside a helper only with two CPUs")
def test_one_worker_runs_shards_in_a_helper_while_it_imports_the_next_calls_modules() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ONE_WORKER], cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]
