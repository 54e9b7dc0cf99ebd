"""serve-llm's process handling, against a stand-in server process speaking the same /v1/models."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from echocaptions.captions.llm.serve import (
    ServeError,
    ServerProcess,
    find_python,
    served_models,
    server_argv,
)

REPO = Path(__file__).resolve().parents[2]

# A child process that serves the OpenAI stub on a given port until killed, and
# starts a grandchild in its session, as vLLM starts engine workers.
STAND_IN = textwrap.dedent(
    """
    import subprocess, sys, time
    sys.path.insert(0, {repo!r})
    from http.server import ThreadingHTTPServer
    from tests.captions.openai_stub import StubServer, _handler
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open({pidfile!r}, "w").write(str(worker.pid))
    time.sleep({delay})
    stub = StubServer(models=["tiny"])
    ThreadingHTTPServer(("127.0.0.1", {port}), _handler(stub)).serve_forever()
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        out = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        return False
    return bool(out.strip()) and not out.strip().startswith("Z")


def test_waits_for_the_model_then_stops_the_whole_process_group(tmp_path: Path) -> None:
    port = _free_port()
    pidfile = tmp_path / "worker.pid"
    code = STAND_IN.format(repo=str(REPO), pidfile=str(pidfile), delay=1.5, port=port)
    base_url = f"http://127.0.0.1:{port}/v1"
    server = ServerProcess([sys.executable, "-c", code], base_url, "tiny", tmp_path / "log").start()
    try:
        assert served_models(base_url) is None, "not up before its start-up delay"
        server.wait_ready(timeout=60, poll=0.1)
        assert served_models(base_url) == ["tiny"]
        worker = int(pidfile.read_text())
        assert _alive(worker)
    finally:
        server.stop(grace=5)
    assert server.process is not None and server.process.returncode is not None
    assert served_models(base_url, timeout=1) is None
    assert not _alive(worker), "the engine worker of the process group was left running"


def test_wrong_model_early_exit_and_timeout_are_clear_errors(tmp_path: Path) -> None:
    port = _free_port()
    code = STAND_IN.format(repo=str(REPO), pidfile=str(tmp_path / "p"), delay=0, port=port)
    wrong = ServerProcess([sys.executable, "-c", code], f"http://127.0.0.1:{port}/v1", "big", None).start()
    try:
        with pytest.raises(ServeError, match=r"serves \['tiny'\], not 'big'"):
            wrong.wait_ready(timeout=60, poll=0.1)
    finally:
        wrong.stop(grace=5)
    crash = [sys.executable, "-c", "import sys; print('CUDA out of memory'); sys.exit(3)"]
    dead = ServerProcess(crash, f"http://127.0.0.1:{_free_port()}/v1", "x", tmp_path / "crash.log").start()
    with pytest.raises(ServeError, match=r"(?s)exited with 3 before serving.*CUDA out of memory"):
        dead.wait_ready(timeout=60, poll=0.1)
    dead.stop(grace=1)
    sleeper = ServerProcess(
        [sys.executable, "-c", "import time; time.sleep(60)"], f"http://127.0.0.1:{_free_port()}/v1", "x", None
    ).start()
    try:
        with pytest.raises(ServeError, match="did not answer .* within 1 s"):
            sleeper.wait_ready(timeout=1, poll=0.1)
    finally:
        sleeper.stop(grace=1)


def test_argv_and_interpreter_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv = server_argv(Path("/py"), "/m", "m", "127.0.0.1", 8001, 2048, "bfloat16", True, ["--seed", "1"])
    assert argv[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]
    assert argv[argv.index("--port") + 1] == "8001" and argv[-3:] == ["--enforce-eager", "--seed", "1"]
    assert "--max-model-len" not in server_argv(Path("/py"), "m", "m", "h", 1, None, None, False)
    with pytest.raises(ServeError, match="no such interpreter"):
        find_python(tmp_path / "nope")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(ServeError, match=r"pip install vllm.*make \.venv-vllm/\.ready vllm-model"):
        find_python()
    local = tmp_path / ".venv-vllm" / "bin" / "python"
    local.parent.mkdir(parents=True)
    local.write_text("")
    assert find_python() == Path(".venv-vllm/bin/python").absolute()


def test_cli_refuses_a_missing_model_folder(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "echocaptions", "serve-llm", "--model", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "no model folder there" in done.stderr
