"""LLM caption tier against a real local OpenAI-protocol server (tests/captions/openai_stub.py)."""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from echocaptions.captions.llm.cache import LLMCache, request_key
from echocaptions.captions.llm.client import (
    LLMCaptioner,
    LLMConfig,
    LLMRequest,
    LLMServerError,
    PromptError,
    list_prompts,
    load_prompt,
    names_organ,
    parse_caption,
)
from tests.captions.openai_stub import StubServer, serve_openai

THYROID = LLMRequest(
    record_id="ddti-0001",
    organ="thyroid",
    label="malignant",
    findings={"tirads_composition": "solid", "tirads_echogenicity": "hypoechoic", "tirads_category": "5"},
    view="transverse",
    dataset="ddti",
)
BREAST = LLMRequest(record_id="busi-0001", organ="breast", label="benign", findings={}, view=None)
LUNG = LLMRequest(record_id="pocus-0001", organ="lung", label="normal", findings={"lung_a_lines": "present"})


@pytest.fixture
def stub() -> Iterator[StubServer]:
    with serve_openai() as server:
        yield server


def make(stub: StubServer, cache: Path | None = None, **overrides: Any) -> LLMCaptioner:
    options: dict[str, Any] = {
        "base_url": stub.base_url,
        "model": "stub-model",
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "timeout": 5.0,
        **overrides,
    }
    return LLMCaptioner(LLMConfig(**options), cache_path=cache)


def user_text(body: dict[str, Any]) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- plumbing -------------------------------------------------------------------


def test_end_to_end_captions_provenance_and_prompt(stub: StubServer) -> None:
    captioner = make(stub, captions_per_image=2, temperature=0.5)
    seen: list[int] = []
    results = captioner.caption([THYROID, BREAST, LUNG], progress=seen.append)

    assert [r.record_id for r in results] == ["ddti-0001", "busi-0001", "pocus-0001"]
    assert sum(seen) == 3
    for result in results:
        assert result.failures == []
        assert len(result.captions) == 2
        assert [c.provenance.seed for c in result.captions] == [0, 1]
        for cap in result.captions:
            assert cap.source == "llm"
            p = cap.provenance
            assert (p.prompt_id, p.prompt_version, p.model) == ("caption", "1", "stub-model")
            assert (p.temperature, p.cached, p.note) == (0.5, False, None)
            assert cap.text.endswith(".") and cap.text[0].isupper()
    assert stub.count == 6
    body = stub.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["max_tokens"] == 96 and body["temperature"] == 0.5
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    thyroid_prompt = next(user_text(b) for b in stub.requests if "thyroid" in user_text(b))
    for words in ("thyroid", "transverse", "solid", "hypoechoic", "TI-RADS 5", "malignant"):
        assert words in thyroid_prompt
    assert "tirads_" not in thyroid_prompt and "JSON" in thyroid_prompt


def test_context_uses_vocabulary_and_rejects_bad_metadata(stub: StubServer) -> None:
    captioner = make(stub)
    context = captioner.context(LUNG, structured=False)
    assert context["findings"] == ["A-lines"] and context["label_text"] == "normal lung"
    bad = LLMRequest("x", "thyroid", "covid", {})
    [result] = captioner.caption([bad])
    assert result.captions == [] and "cannot build the prompt" in result.failures[0]
    assert stub.count == 0


def test_caption_inside_a_running_event_loop(stub: StubServer) -> None:
    captioner = make(stub)

    async def inside() -> list[Any]:
        return captioner.caption([BREAST])

    [result] = asyncio.run(inside())
    assert len(result.captions) == 1


def test_acaption_reuses_client_per_loop(stub: StubServer) -> None:
    captioner = make(stub)

    async def twice() -> None:
        await captioner.acaption([BREAST])
        await captioner.acaption([LUNG])
        await captioner.aclose()

    asyncio.run(twice())
    asyncio.run(twice())
    assert stub.count == 4


# -- retries ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retries_on_5xx_and_429(stub: StubServer, status: int) -> None:
    stub.fail_first, stub.fail_status = 2, status
    [result] = make(stub).caption([THYROID])
    assert len(result.captions) == 1 and result.failures == []
    assert stub.count == 3


def test_retries_on_dropped_connections(stub: StubServer) -> None:
    stub.drop_first = 2
    [result] = make(stub).caption([THYROID])
    assert len(result.captions) == 1 and stub.count == 3


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_no_retry_on_other_4xx(stub: StubServer, status: int) -> None:
    stub.fail_first, stub.fail_status = 1, status
    [result] = make(stub).caption([THYROID])
    assert result.captions == []
    assert stub.count == 1
    assert f"HTTP {status}" in result.failures[0]


def test_backoff_is_bounded_and_gives_up(stub: StubServer) -> None:
    stub.fail_first, stub.fail_status = 10_000, 503
    start = time.perf_counter()
    [result] = make(stub, max_retries=3, backoff_base=0.02, backoff_max=0.04).caption([THYROID])
    elapsed = time.perf_counter() - start
    assert stub.count == 4 and result.captions == []
    assert "HTTP 503" in result.failures[0] and "after 4 tries" in result.failures[0]
    assert elapsed < 2.0


def test_backoff_grows_with_jitter_and_honours_retry_after(stub: StubServer) -> None:
    captioner = make(stub, backoff_base=1.0, backoff_max=8.0)
    error = RuntimeError("x")
    for attempt, ceiling in enumerate([1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        delays = [captioner._delay(attempt, error) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1

    stub.fail_first, stub.fail_status, stub.retry_after = 1, 429, 0.3
    start = time.perf_counter()
    [result] = make(stub, backoff_base=0.001, backoff_max=1.0).caption([THYROID])
    assert len(result.captions) == 1 and time.perf_counter() - start >= 0.3


def test_timeouts_are_retried_then_reported(stub: StubServer) -> None:
    stub.delay = 1.5
    start = time.perf_counter()
    [result] = make(stub, timeout=0.2, max_retries=1).caption([THYROID])
    assert result.captions == [] and "timed out after 2 tries" in result.failures[0]
    assert stub.count == 2
    assert time.perf_counter() - start < 1.4


def test_unreachable_server_aborts_the_run() -> None:
    config = LLMConfig(
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        model="m",
        max_retries=1,
        backoff_base=0.01,
    )
    with pytest.raises(LLMServerError, match="127.0.0.1.*vllm"):
        LLMCaptioner(config).caption([THYROID, BREAST])


# -- structured output ----------------------------------------------------------------


def test_structured_output_falls_back_to_plain_text(stub: StubServer, tmp_path: Path) -> None:
    stub.reject_response_format = True
    cache = tmp_path / "llm.sqlite"
    captioner = make(stub, cache)
    results = captioner.caption([THYROID, BREAST, LUNG])
    assert all(len(r.captions) == 1 for r in results)
    assert stub.count == 4
    assert [bool(b.get("response_format")) for b in stub.requests] == [True, False, False, False]
    assert "JSON" not in user_text(stub.requests[1])
    assert captioner.plain_reason and "response_format" in captioner.plain_reason
    assert all("plain text" in r.captions[0].provenance.note for r in results)

    stub.reset()
    again = make(stub, cache).caption([THYROID, BREAST, LUNG])
    assert stub.count == 0
    assert all(r.captions[0].provenance.cached for r in again)
    assert all("plain text" in r.captions[0].provenance.note for r in again)


def test_structured_modes_json_schema_and_off(stub: StubServer) -> None:
    stub.reject_response_format = True
    [strict] = make(stub, structured="json_schema").caption([THYROID])
    assert strict.captions == [] and "response_format" in strict.failures[0]
    stub.reset()
    [plain] = make(stub, structured="off").caption([THYROID])
    assert len(plain.captions) == 1 and plain.captions[0].provenance.note is None
    assert "response_format" not in stub.requests[0]


def test_plain_answers_are_parsed(stub: StubServer) -> None:
    stub.reply = lambda body: 'Caption: "Transverse thyroid ultrasound of a solid malignant nodule."'
    [result] = make(stub, structured="off").caption([THYROID])
    assert result.captions[0].text == "Transverse thyroid ultrasound of a solid malignant nodule."


@pytest.mark.parametrize(
    ("answer", "caption"),
    [
        ('{"caption": "Thyroid nodule, solid and hypoechoic"}', "Thyroid nodule, solid and hypoechoic."),
        ('```json\n{"caption": "a liver image"}\n```', "A liver image."),
        ('Here is a caption:\n\n"A lung with A-lines."', "A lung with A-lines."),
        ("**Caption:** a breast mass", "A breast mass."),
        ("\u201cA hepatic cyst.\u201d", "A hepatic cyst."),
        ('{"caption": "cut off mid', "Cut off mid."),
        ('{"other": 1}', ""),
        ("", ""),
    ],
)
def test_parse_caption(answer: str, caption: str) -> None:
    assert parse_caption(answer) == caption


def test_organ_words() -> None:
    assert names_organ("Hepatic parenchyma", "liver") and names_organ("pleural line", "lung")
    assert names_organ("Lungs with B-lines", "lung") and not names_organ("a nodule", "thyroid")


# -- cache ---------------------------------------------------------------------------


def test_cache_replays_a_rerun_and_a_resumed_run(stub: StubServer, tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "llm.sqlite"
    first = make(stub, cache).caption([THYROID, BREAST])
    assert stub.count == 2 and not any(r.captions[0].provenance.cached for r in first)

    stub.reset()
    second = make(stub, cache).caption([THYROID, BREAST, LUNG])
    assert stub.count == 1
    assert [r.captions[0].provenance.cached for r in second] == [True, True, False]
    assert [r.captions[0].text for r in second[:2]] == [r.captions[0].text for r in first]

    with serve_openai() as moved:
        third = make(moved, cache).caption([THYROID, BREAST, LUNG])
        assert moved.count == 0 and all(r.captions[0].provenance.cached for r in third)

    stub.reset()
    make(stub, cache, temperature=0.9).caption([THYROID])
    assert stub.count == 1


def test_cache_key_and_store(tmp_path: Path) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": "x"}], "seed": 1}
    assert request_key(request) == request_key(dict(reversed(list(request.items()))))
    assert request_key(request) != request_key({**request, "seed": 2})
    with pytest.raises(ValueError, match="base_url"):
        request_key({**request, "base_url": "http://x"})

    cache = LLMCache(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i in range(50):
                body = {**request, "seed": offset + i}
                cache.put(request_key(body), body, f"answer {offset + i}", "stop")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k * 100,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(cache) == 200
    hit = pickle.loads(pickle.dumps(cache)).get(request_key({**request, "seed": 301}))
    assert hit is not None and hit.text == "answer 301" and hit.finish_reason == "stop"
    cache.close()


# -- validation ------------------------------------------------------------------------


def test_invalid_captions_are_retried_with_new_seeds(stub: StubServer) -> None:
    stub.reply = lambda body: (
        "Thyroid." if body["seed"] < 1000 else "Transverse thyroid ultrasound of a solid malignant nodule."
    )
    [result] = make(stub).caption([THYROID])
    assert stub.seeds == [0, 1000]
    assert [c.provenance.seed for c in result.captions] == [1000]
    assert len(result.failures) == 1 and "seed 0" in result.failures[0]
    assert "too short" in result.failures[0]


def test_validation_gives_up_and_says_why(stub: StubServer) -> None:
    stub.reply = lambda body: "An ultrasound image of a solid nodule with smooth margins seen today."
    [result] = make(stub, validation_retries=2).caption([THYROID])
    assert result.captions == []
    assert stub.seeds == [0, 1000, 2000]
    assert len(result.failures) == 3
    assert all("does not name the organ" in f for f in result.failures)


def test_too_long_and_truncated_answers_fail(stub: StubServer) -> None:
    stub.reply = lambda body: "Thyroid " + "nodule " * 80
    [long] = make(stub, validation_retries=0).caption([THYROID])
    assert "too long" in long.failures[0]
    stub.reset()
    stub.finish_reason = "length"
    [cut] = make(stub, validation_retries=0).caption([THYROID])
    assert cut.captions == [] and "cut off at max_tokens" in cut.failures[0]


def test_junk_answer_is_a_failed_attempt(stub: StubServer) -> None:
    stub.junk_first = 1
    [result] = make(stub).caption([THYROID])
    assert len(result.captions) == 1 and result.captions[0].provenance.seed == 1000
    assert "not a chat completion" in result.failures[0]


def test_contradicting_caption_is_rejected(stub: StubServer) -> None:
    stub.reply = lambda body: (
        "Transverse thyroid ultrasound showing a benign spongiform nodule with smooth margins."
        if body["seed"] < 1000
        else "Transverse thyroid ultrasound showing a solid hypoechoic malignant nodule."
    )
    [result] = make(stub).caption([THYROID])
    assert "contradicts the record" in result.failures[0]
    assert [c.provenance.seed for c in result.captions] == [1000]


def test_caption_with_phi_is_rejected(stub: StubServer) -> None:
    stub.reply = lambda body: (
        "Thyroid ultrasound of patient John Smith, MRN 12345678, on 03/14/2021, malignant nodule."
    )
    [result] = make(stub, validation_retries=0).caption([THYROID])
    assert result.captions == [] and "contains PHI" in result.failures[0]


def test_report_excerpt_is_deidentified(stub: StubServer) -> None:
    report = (
        "Patient: John Smith. MRN 12345678. Date 03/14/2021. Solid hypoechoic nodule in the "
        "right thyroid lobe, TI-RADS 5."
    )
    request = LLMRequest("r1", "thyroid", "malignant", {}, report=report)
    make(stub).caption([request])
    prompt = user_text(stub.requests[0])
    assert "Report excerpt" in prompt and "hypoechoic nodule" in prompt
    assert "John Smith" not in prompt and "12345678" not in prompt


def test_duplicate_captions_of_one_image_are_rejected(stub: StubServer) -> None:
    stub.reply = lambda body: "Transverse thyroid ultrasound of a solid malignant nodule."
    [result] = make(stub, captions_per_image=2, validation_retries=1).caption([THYROID])
    assert len(result.captions) == 1
    assert all("same text as an earlier caption" in f for f in result.failures)


# -- concurrency, pickling, server check ------------------------------------------------


def test_concurrency_is_bounded(stub: StubServer) -> None:
    stub.delay = 0.05
    requests = [
        LLMRequest(f"r{i}", "breast", "benign", {}, dataset=str(i)) for i in range(16)
    ]
    results = make(stub, concurrency=3, captions_per_image=2).caption(requests)
    assert all(len(r.captions) == 2 for r in results)
    assert 2 <= stub.max_in_flight <= 3


def test_captioner_pickles_before_and_after_use(stub: StubServer, tmp_path: Path) -> None:
    captioner = make(stub, tmp_path / "c.sqlite")
    clone = pickle.loads(pickle.dumps(captioner))
    assert clone.config == captioner.config
    captioner.caption([BREAST])

    async def hold_client() -> bytes:
        await captioner.acaption([LUNG])
        return pickle.dumps(captioner)

    clone = pickle.loads(asyncio.run(hold_client()))
    stub.reset()
    [a, b] = clone.caption([BREAST, LUNG])
    assert stub.count == 0 and a.captions[0].provenance.cached and b.captions[0].provenance.cached


def test_check_server(stub: StubServer) -> None:
    make(stub).check_server()
    with pytest.raises(LLMServerError) as missing:
        make(stub, model="llama-70b").check_server()
    message = str(missing.value)
    assert "llama-70b" in message and "stub-model" in message and "--served-model-name" in message

    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(LLMServerError) as down:
        LLMCaptioner(LLMConfig(base_url=url, model="m", timeout=2)).check_server()
    assert url in str(down.value) and "vllm" in str(down.value)

    with pytest.raises(LLMServerError, match="/v1"):
        make(stub, base_url=stub.base_url.removesuffix("/v1")).check_server()


# -- prompts and configuration ------------------------------------------------------------


def test_bundled_prompt_front_matter() -> None:
    assert "caption" in list_prompts()
    prompt = load_prompt("caption")
    assert (prompt.id, prompt.version) == ("caption", "1") and prompt.description


def test_prompt_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bare.j2").write_text("{% block system %}x{% endblock %}")
    with pytest.raises(PromptError, match="bare.j2: missing YAML front matter"):
        load_prompt("bare", tmp_path)
    (tmp_path / "oneblock.j2").write_text("---\nid: a\nversion: 2\n---\n{% block system %}x{% endblock %}")
    with pytest.raises(PromptError, match="no block user"):
        load_prompt("oneblock", tmp_path)
    (tmp_path / "typo.j2").write_text(
        "---\nid: typo\nversion: 1\n---\n{% block system %}s{% endblock %}\n"
        "{% block user %}\n{{ organ_txt }}\n{% endblock %}\n"
    )
    prompt = load_prompt("typo", tmp_path)
    with pytest.raises(PromptError, match=r"typo.j2:7: UndefinedError.*organ_txt"):
        prompt.messages({"organ": "thyroid"})
    with pytest.raises(PromptError, match="prompts in"):
        load_prompt("nope", tmp_path)


def test_custom_prompt_dir_and_sandbox(stub: StubServer, tmp_path: Path) -> None:
    (tmp_path / "mine.j2").write_text(
        "---\nid: mine\nversion: 3b\ndescription: test\n---\n"
        "{% block system %}Be brief.{% endblock %}\n"
        "{% block user %}Describe the {{ organ_text }}.{% endblock %}\n"
    )
    [result] = make(stub, prompt="mine", prompt_dir=str(tmp_path)).caption([LUNG])
    assert result.captions[0].provenance.prompt_id == "mine"
    assert result.captions[0].provenance.prompt_version == "3b"
    assert user_text(stub.requests[0]) == "Describe the lung."

    (tmp_path / "evil.j2").write_text(
        "---\nid: evil\nversion: 1\n---\n{% block system %}{{ ''.__class__.__mro__ }}{% endblock %}"
        "{% block user %}u{% endblock %}"
    )
    with pytest.raises(PromptError, match="SecurityError"):
        load_prompt("evil", tmp_path).messages({})


@pytest.mark.parametrize(
    ("field", "value"),
    [("structured", "yes"), ("concurrency", 0), ("captions_per_image", 0), ("min_words", 100)],
)
def test_config_is_checked(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        LLMConfig(base_url="http://x/v1", model="m", **{field: value})


def test_request_from_source_item() -> None:
    from echocaptions.schema import SourceItem

    item = SourceItem(
        source="ddti", dataset="ddti", organ="thyroid", path="/a.png", source_path="a.png",
        label="benign", findings={"tirads_composition": "solid"}, view="transverse",
        report="Benign nodule.",
    )
    request = LLMRequest.from_item("ddti-1", item)
    assert (request.organ, request.label, request.view, request.report) == (
        "thyroid", "benign", "transverse", None
    )
    assert LLMRequest.from_item("ddti-1", item, with_report=True).report == "Benign nodule."


def test_identical_requests_in_flight_are_sent_once_and_the_later_ones_count_as_cached(
    stub: StubServer, tmp_path: Path
) -> None:
    stub.delay = 0.2
    twins = [
        LLMRequest(record_id=f"busi-{i}", organ="breast", label="benign", findings={}, dataset="busi")
        for i in range(6)
    ]
    for cache in (None, tmp_path / "llm.sqlite"):
        stub.requests.clear()
        results = make(stub, cache, concurrency=6, structured="off", validation_retries=0).caption(twins)
        assert len(stub.requests) == 1, "one prompt, one request"
        flags = [r.captions[0].provenance.cached for r in results]
        assert flags == [False, True, True, True, True, True]
        assert len({r.captions[0].text for r in results}) == 1
