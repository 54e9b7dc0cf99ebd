"""The Ray executor: a real two-node Ray cluster on this machine builds the local executor's bytes.

The cluster is two ``ray start`` processes (a head on 127.0.0.1 and a worker
node joining it), each in its own process group so that the fixture stops
exactly the cluster it started. Builds on it run in subprocesses, as a user's
would, with a token private to the test for Ray's authentication.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from echocaptions.executors import ExecutorError, get_executor
from echocaptions.pipeline import BuildError, executor_options
from echocaptions.recipe import load_recipe
from echocaptions.stats import without_timings
from tests.pipeline.helpers import run, small_recipe

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
SMALL = ["image.max_side=128", "output.shard_items=16", "output.rows_per_shard=40"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _digests(out: Path) -> dict[str, str]:
    """Every published file (Parquet, stats, card, rejects, ...); work folder and answer cache aside.

    stats.json is hashed without its wall times and rates, the only numbers that differ between two runs.
    """
    files = sorted(
        p for p in out.rglob("*") if p.is_file() and not {".work", ".cache"} & set(p.relative_to(out).parts)
    )
    assert any(p.suffix == ".parquet" for p in files), f"no Parquet under {out}"
    return {p.relative_to(out).as_posix(): hashlib.sha256(_published_bytes(p)).hexdigest() for p in files}


def _published_bytes(path: Path) -> bytes:
    if path.name != "stats.json":
        return path.read_bytes()
    return json.dumps(without_timings(json.loads(path.read_text())), sort_keys=True).encode()


# cluster ------------------------------------------------------------------------
@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    temp: Path


def _wait_started(proc: subprocess.Popen, log: Path, what: str, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        if "Ray runtime started" in text:
            return
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not start:\n{(log.read_text(errors='replace') if log.exists() else '')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    """Stop one node: SIGTERM to ``ray start --block``, which then stops the processes it started.

    What outlives it in its process group (a worker process) is killed; nothing
    outside the group is touched, so other Ray instances on the machine keep running.
    """
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    for _ in range(50):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Cluster]:
    pytest.importorskip("ray")
    # Ray's socket paths must stay short: a short folder, not pytest's tmp_path
    temp = Path(tempfile.mkdtemp(prefix="ecr", dir="/tmp" if Path("/tmp").is_dir() else None))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(
        RAY_USAGE_STATS_ENABLED="0",
        RAY_DEDUP_LOGS="0",
        RAY_AUTH_MODE="token",
        RAY_AUTH_TOKEN=secrets.token_hex(32),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    nodes = [
        [str(RAY), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
         "--include-dashboard", "false", "--temp-dir", str(temp), *common],
        [str(RAY), "start", "--address", f"127.0.0.1:{port}", *common],
    ]
    procs: list[subprocess.Popen] = []
    try:
        for i, cmd in enumerate(nodes):
            log = temp / f"node{i}.log"
            with open(log, "wb") as fh:
                procs.append(
                    subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
                )
            _wait_started(procs[-1], log, "the Ray head" if i == 0 else "the Ray worker node")
        cluster = Cluster(address=f"127.0.0.1:{port}", env=env, temp=temp)
        _wait_for_two_nodes(cluster)
        yield cluster
    finally:
        for proc in reversed(procs):
            _stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_two_nodes(cluster: Cluster) -> None:
    code = (
        "import json, sys, time, ray\n"
        "ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)\n"
        "for _ in range(120):\n"
        "    alive = [n for n in ray.nodes() if n['Alive']]\n"
        "    if len(alive) >= 2: break\n"
        "    time.sleep(1)\n"
        "print(json.dumps({'nodes': len(alive), 'cpus': ray.cluster_resources().get('CPU')}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, cluster.address],
        env=cluster.env, capture_output=True, text=True, timeout=240, check=True,
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"nodes": 2, "cpus": 2.0}, seen


def _cli_build(cluster: Cluster, data_root: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable, "-m", "echocaptions", "build", "--recipe", "demo", "--data-root", str(data_root),
        "--out", str(out), "--quiet", *(a for s in SMALL for a in ("--set", s)),
        "--executor", "ray", "--ray-address", cluster.address, *extra,
    ]
    done = subprocess.run(cmd, env=cluster.env, cwd=REPO, capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def local_build(phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ray") / "local"
    run("demo", phantom_root, out, executor="local")
    return out


@pytest.fixture(scope="module")
def cluster_build(ray_cluster: Cluster, phantom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ray") / "cluster"
    _cli_build(ray_cluster, phantom_root, out, "--keep-work")
    return out


# on the cluster -------------------------------------------------------------------
@pytest.mark.slow
def test_demo_build_on_a_two_node_cluster_equals_the_local_build(local_build: Path, cluster_build: Path) -> None:
    stats = json.loads((cluster_build / "stats.json").read_text())
    assert stats["image_stage"]["shards"] > 4
    assert _digests(cluster_build) == _digests(local_build)


@pytest.mark.slow
def test_rerun_on_the_cluster_skips_done_shards(
    ray_cluster: Cluster, phantom_root: Path, cluster_build: Path, local_build: Path
) -> None:
    _cli_build(ray_cluster, phantom_root, cluster_build, "--keep-work")
    stats = without_timings(json.loads((cluster_build / "stats.json").read_text()))
    for name in ("image_stage", "caption_stage"):
        stage = stats[name]
        assert stage["shards_resumed"] == stage["shards"] > 4, name
        stage["shards_resumed"] = 0
    assert stats == without_timings(json.loads((local_build / "stats.json").read_text()))
    rerun, local = _digests(cluster_build), _digests(local_build)
    assert {k: v for k, v in rerun.items() if k != "stats.json"} == {
        k: v for k, v in local.items() if k != "stats.json"
    }


DYING_DRIVER = """
import functools, json, sys
from echocaptions import pipeline
from echocaptions.recipe import load_recipe
from tests.executors.dying import run_caption_shard_dying_once, run_shard_dying_once

data_root, out, markers, address, small = sys.argv[1:6]
pipeline.run_shard = functools.partial(run_shard_dying_once, markers, (1, 4))
pipeline.run_caption_shard = functools.partial(run_caption_shard_dying_once, markers, (0, 3))
recipe = load_recipe("demo", data_root=data_root, out=out, overrides=small.split(","))
result = pipeline.build(recipe, executor="ray", ray_address=address, quiet=True)
print(json.dumps([result.stats["image_stage"], result.stats["caption_stage"]]))
"""


@pytest.mark.slow
def test_workers_killed_mid_image_and_mid_caption_shard_are_retried_and_the_output_is_identical(
    ray_cluster: Cluster, phantom_root: Path, local_build: Path, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-c", DYING_DRIVER, str(phantom_root), str(out), str(markers), ray_cluster.address,
         ",".join(SMALL)],
        env=ray_cluster.env, cwd=REPO, capture_output=True, text=True, timeout=420,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    died = sorted(p.name for p in markers.iterdir())
    assert died == ["00000.caption.died", "00001.died", "00003.caption.died", "00004.died"]
    images, captions = json.loads(done.stdout.strip().splitlines()[-1])
    assert images["shards_resumed"] == captions["shards_resumed"] == 0
    assert _digests(out) == _digests(local_build)


LLM_DYING_DRIVER = """
import functools, json, sys
from echocaptions import pipeline
from echocaptions.recipe import load_recipe
from tests.executors.dying import run_caption_shard_dying_mid_llm

recipe, data_root, out, markers, address = sys.argv[1:6]
pipeline.run_caption_shard = functools.partial(run_caption_shard_dying_mid_llm, markers, (1, 2))
result = pipeline.build(load_recipe(recipe, data_root=data_root, out=out), executor="ray", \
ray_address=address, quiet=True)
print(json.dumps(result.stats["caption_stage"]))
"""


@pytest.mark.slow
def test_the_llm_tier_on_the_cluster_survives_workers_killed_mid_requests(
    ray_cluster: Cluster, phantom_root: Path, tmp_path: Path
) -> None:
    from echocaptions.pipeline import build
    from tests.captions.openai_stub import serve_openai
    from tests.pipeline.test_caption_stage import LLM_RECIPE

    markers = tmp_path / "markers"
    markers.mkdir()
    cluster = tmp_path / "cluster"
    with serve_openai() as stub:
        recipe = tmp_path / "llm.yaml"
        recipe.write_text(LLM_RECIPE.format(base_url=stub.base_url))
        local = build(load_recipe(recipe, data_root=phantom_root, out=tmp_path / "local"), quiet=True)
        sent = stub.count
        assert sent > 0 and local.stats["caption_sources"].get("llm", 0) > 0
        done = subprocess.run(
            [sys.executable, "-c", LLM_DYING_DRIVER, str(recipe), str(phantom_root), str(cluster), str(markers),
             ray_cluster.address],
            env=ray_cluster.env, cwd=REPO, capture_output=True, text=True, timeout=420,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert sorted(p.name for p in markers.iterdir()) == ["00001.llm.died", "00002.llm.died"]
        paid = stub.count - sent
        # The killed attempts' committed answers are reused; only requests in flight at the kill
        # (at most llm.concurrency per killed shard) may be paid twice.
        assert sent <= paid <= sent + 2 * 4
        assert _digests(cluster) == _digests(local.out)
        assert not list((cluster / ".work").glob("llm/*.sqlite*"))

        rerun = [
            sys.executable, "-m", "echocaptions", "build", "--recipe", str(recipe), "--data-root", str(phantom_root),
            "--out", str(cluster), "--quiet", "--executor", "ray", "--ray-address", ray_cluster.address,
        ]
        again = subprocess.run(rerun, env=ray_cluster.env, cwd=REPO, capture_output=True, text=True, timeout=420)
        assert again.returncode == 0, again.stdout + again.stderr
        assert stub.count == sent + paid, "a rerun on the cluster pays for nothing"


# without a cluster ----------------------------------------------------------------
def test_an_unreachable_address_fails_before_any_work(phantom_root: Path, tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    out = tmp_path / "out"
    with pytest.raises(BuildError) as err:
        run("demo", phantom_root, out, ray_address=address)
    text = str(err.value)
    assert f"cannot reach a Ray cluster at {address}" in text
    assert "ray start --head" in text and "ray status" in text
    assert not (out / ".work").exists()


def test_the_command_line_names_the_unreachable_address(phantom_root: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from echocaptions.cli import app

    address = f"127.0.0.1:{_free_port()}"
    args = ["build", "--recipe", "demo", "--data-root", str(phantom_root), "--out", str(tmp_path / "out")]
    done = CliRunner().invoke(app, [*args, "--ray-address", address, "--quiet"])
    assert done.exit_code == 2, done.output
    assert f"error: cannot reach a Ray cluster at {address}" in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)


def test_a_malformed_address_is_named(phantom_root: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="'head-node' is not HOST:PORT"):
        run("demo", phantom_root, tmp_path / "out", ray_address="head-node")


def test_without_ray_the_error_names_the_pip_command(
    phantom_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ExecutorError, match=r"pip install 'echocaptions\[ray\]'"):
        get_executor("ray", 2)
    out = tmp_path / "out"
    with pytest.raises(BuildError, match=r"pip install 'echocaptions\[ray\]'"):
        run("demo", phantom_root, out, executor="ray")
    assert not (out / ".work").exists()


def test_the_command_line_overrides_the_recipe(phantom_root: Path, tmp_path: Path) -> None:
    plain = small_recipe("demo", phantom_root, tmp_path)
    assert executor_options(plain, None, 2, None) == {"name": "local", "workers": 2}
    assert executor_options(plain, None, 2, "10.0.0.1:6379")["name"] == "ray"
    on_ray = load_recipe(
        "demo", data_root=phantom_root, out=tmp_path,
        overrides=["executor.name=ray", "executor.address=auto", "executor.cpus_per_task=2"],
    )
    assert executor_options(on_ray, None, 2, None) == {
        "name": "ray", "workers": 2, "address": "auto", "cpus_per_task": 2.0, "gpus_per_task": 0.0,
        "max_retries": 3,
    }
    assert executor_options(on_ray, None, 2, "10.0.0.1:6379")["address"] == "10.0.0.1:6379"
    assert executor_options(on_ray, "local", 2, None) == {"name": "local", "workers": 2}
    with pytest.raises(ValueError, match="executor is local"):
        get_executor(**executor_options(plain, "local", 2, "10.0.0.1:6379"))


# the executor alone, on a private Ray ------------------------------------------------
def _square(x: int) -> int:
    return x * x


@pytest.mark.slow
def test_a_private_ray_maps_with_bounded_work_in_flight() -> None:
    pytest.importorskip("ray")
    from echocaptions.executors.ray import RayExecutor

    with RayExecutor(workers=1, max_in_flight=3) as executor:
        produced = []

        def tasks() -> Iterator[int]:
            for i in range(12):
                produced.append(i)
                yield i

        seen = []
        for task, result in executor.map_unordered(_square, tasks()):
            assert len(produced) - len(seen) <= 3
            seen.append((task, result))
        assert sorted(seen) == [(i, i * i) for i in range(12)]
        with pytest.raises(ZeroDivisionError):
            list(executor.map_unordered(functools.partial(divmod, 1), [1, 0]))
