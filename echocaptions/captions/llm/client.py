"""LLM captions: a local model behind vLLM's OpenAI-compatible server.

A prompt (``prompts/<name>.j2``: YAML front matter with ``id``, ``version``,
``description``, then Jinja blocks ``system`` and ``user``) is rendered in
Jinja's sandbox from the record's organ, view, label and findings, all turned
into words by the template tier's vocabulary, plus an optional de-identified
report excerpt. Requests go through ``openai.AsyncOpenAI`` with at most
``concurrency`` in flight; connection errors, timeouts, 429 and 5xx are
retried with exponential backoff and jitter, other 4xx are not. Answers are
cached on disk by a hash of the whole request (:mod:`llm_cache`), so a rerun
or resumed build sends nothing already answered.

Each caption is validated (word count, organ named, no PHI, no contradiction
with the label or findings); a rejected one is asked again with another seed,
up to ``validation_retries`` times. What still fails is listed in
``LLMResult.failures`` so the caller can fall back to the template caption and
record why. The captioner pickles as its configuration: clients, the cache
connection and the validators are made again on first use in each process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment

from echocaptions.captions.llm.cache import LLMCache, request_key
from echocaptions.captions.templates import (
    TemplateError,
    Vocabulary,
    clean_caption,
    load_vocabulary,
)
from echocaptions.schema import (
    FINDINGS_BY_ORGAN,
    Caption,
    Provenance,
    SourceItem,
    check_findings,
    check_label,
)

PROMPT_SUFFIX = ".j2"
STRUCTURED_MODES = ("auto", "json_schema", "off")
RESPONSE_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "caption",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"caption": {"type": "string"}},
            "required": ["caption"],
            "additionalProperties": False,
        },
    },
}
ORGAN_WORDS: dict[str, tuple[str, ...]] = {
    "thyroid": ("thyroid",),
    "breast": ("breast", "mammary"),
    "liver": ("liver", "hepatic"),
    "lung": ("lung", "pleural", "pulmonary"),
}
_ORGAN_STEMS: dict[str, tuple[str, ...]] = {
    "thyroid": ("thyroid",),
    "breast": ("breast", "mammar"),
    "liver": ("liver", "hepat"),
    "lung": ("lung", "pleur", "pulmon"),
}
_ORGAN_RE: dict[str, re.Pattern[str]] = {
    organ: re.compile(r"\b(?:" + "|".join(stems) + ")", re.IGNORECASE)
    for organ, stems in _ORGAN_STEMS.items()
}
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_SCHEMA_REJECTION = re.compile(
    r"response_format|json_schema|guided|structured|grammar|not supported|unsupported",
    re.IGNORECASE,
)
_PREAMBLE = re.compile(
    r"^(?:(?:sure|okay|ok)[,!.]?\s*)?"
    r"(?:here(?:'s| is)\b[^:\n]*:|(?:image\s+|final\s+)?caption\s*\d*\s*[:\-]|answer\s*:)\s*",
    re.IGNORECASE,
)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
VLLM_HINT = (
    "start vLLM first, e.g. `echocaptions serve-llm --model MODEL_DIR --served-model-name {model} "
    "--port 8000` (or `vllm serve MODEL_DIR --served-model-name {model}`), "
    "then set base_url to http://127.0.0.1:8000/v1"
)


class PromptError(ValueError):
    """A prompt file that cannot be loaded or rendered; names the file (and line)."""


class LLMServerError(RuntimeError):
    """The server cannot be reached or does not serve the model; says how to start vLLM."""


class LLMRequestError(RuntimeError):
    """One request that failed for good (after retries, or not retryable)."""

    def __init__(self, message: str, *, status: int | None = None, unreachable: bool = False):
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable

    @property
    def rejects_response_format(self) -> bool:
        return self.status in (400, 422) and bool(_SCHEMA_REJECTION.search(str(self)))


class BadAnswer(RuntimeError):
    """A 200 answer whose body is not a chat completion."""


# ---------------------------------------------------------------------------
# Prompts


@dataclass
class Prompt:
    """A loaded prompt file: identity from its front matter, and the compiled template."""

    id: str
    version: str
    description: str
    path: Path
    template: Template

    def messages(self, context: Mapping[str, Any]) -> list[dict[str, str]]:
        """Chat messages (system, user) rendered from ``context``."""
        template = self.template
        try:
            ctx = template.new_context(dict(context), shared=False)
            for _ in template.root_render_func(ctx):
                pass
            parts = {
                role: _tidy("".join(template.blocks[role](ctx))) for role in ("system", "user")
            }
        except Exception as exc:
            line = None
            for frame, lineno in traceback.walk_tb(exc.__traceback__):
                if frame.f_code.co_filename == template.filename:
                    line = template.get_corresponding_lineno(lineno)
            raise PromptError(
                f"{self.path}:{line}: {type(exc).__name__} while rendering: {exc}"
            ) from exc
        return [{"role": role, "content": text} for role, text in parts.items() if text]


def _tidy(text: str) -> str:
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _prompt_env() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True
    )


def prompt_dir_or_bundled(prompt_dir: Path | str | None) -> Path:
    from echocaptions.resources import bundled_dir

    return Path(prompt_dir) if prompt_dir is not None else bundled_dir("prompts")


def list_prompts(prompt_dir: Path | str | None = None) -> list[str]:
    """Names of the prompts in ``prompt_dir`` (bundled ones by default)."""
    folder = prompt_dir_or_bundled(prompt_dir)
    return sorted(p.stem for p in folder.glob(f"*{PROMPT_SUFFIX}"))


def load_prompt(name: str, prompt_dir: Path | str | None = None) -> Prompt:
    """Load ``<prompt_dir>/<name>.j2`` (or a path to a ``.j2`` file) and compile it."""
    folder = prompt_dir_or_bundled(prompt_dir)
    path = Path(name) if name.endswith(PROMPT_SUFFIX) else folder / f"{name}{PROMPT_SUFFIX}"
    if not path.is_absolute() and not path.is_file():
        path = folder / path
    if not path.is_file():
        known = ", ".join(list_prompts(folder)) if folder.is_dir() else "none: folder missing"
        raise PromptError(f"prompt {name!r} not found at {path}; prompts in {folder}: {known}")
    source = path.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(source)
    if match is None:
        raise PromptError(
            f"{path}: missing YAML front matter; start the file with\n"
            "---\nid: caption\nversion: 1\ndescription: ...\n---"
        )
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: front matter is not valid YAML: {exc}") from exc
    if not isinstance(meta, dict):
        raise PromptError(f"{path}: front matter must be a mapping with id, version, description")
    for key in ("id", "version"):
        if meta.get(key) in (None, ""):
            raise PromptError(f"{path}: front matter lacks {key!r}")
    body = "\n" * match.group(0).count("\n") + source[match.end() :]
    env = _prompt_env()
    try:
        code = env.compile(env.parse(body, path.name, str(path)), path.name, str(path))
        template = env.template_class.from_code(env, code, env.make_globals(None))
    except JinjaTemplateError as exc:
        raise PromptError(f"{path}:{getattr(exc, 'lineno', None)}: {exc}") from exc
    missing = [b for b in ("system", "user") if b not in template.blocks]
    if missing:
        raise PromptError(
            f"{path}: no block {' or '.join(missing)}; a prompt defines "
            "{% block system %}...{% endblock %} and {% block user %}...{% endblock %}"
        )
    return Prompt(
        id=str(meta["id"]),
        version=str(meta["version"]),
        description=str(meta.get("description") or "").strip(),
        path=path,
        template=template,
    )


# ---------------------------------------------------------------------------
# Parsing and validation of answers


def parse_caption(text: str) -> str:
    """The caption in an answer: JSON ``{"caption": ...}`` or plain text without preambles."""
    raw = text.strip()
    fence = re.match(r"^```[a-zA-Z]*\s*\n?(.*?)\n?```\s*$", raw, re.DOTALL)
    if fence:
        raw = fence.group(1).strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            found = re.search(r'"caption"\s*:\s*"((?:[^"\\]|\\.)*)', raw)
            raw = json.loads(f'"{found.group(1)}"') if found else raw
        else:
            value = data.get("caption") if isinstance(data, dict) else None
            raw = value if isinstance(value, str) else ""
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    while len(lines) > 1 and (_PREAMBLE.fullmatch(lines[0]) or lines[0].endswith(":")):
        lines.pop(0)
    raw = lines[0] if lines else ""
    raw = re.sub(r"^(?:[-*\u2022]\s+|\d+[.)]\s+)", "", raw)
    for _ in range(3):
        raw = _PREAMBLE.sub("", raw).strip("*_ ")
        raw = raw.strip(_QUOTES + ". ")
    return clean_caption(raw) if raw else ""


def count_words(text: str) -> int:
    return len(text.split())


def names_organ(text: str, organ: str) -> bool:
    """Whether ``text`` names ``organ`` (or an adjective of it, e.g. hepatic, pleural)."""
    return bool(_ORGAN_RE[organ].search(text))


def _count(counts: Any) -> int:
    if isinstance(counts, Mapping):
        return sum(int(v) for v in counts.values())
    return int(counts or 0)


@functools.lru_cache(maxsize=3)
def _shared_deidentifier(ner: str = "off") -> Any:
    from echocaptions.captions.reports.deid import Deidentifier

    return Deidentifier(use_ner={"auto": None, "on": True, "off": False}[ner])


@functools.lru_cache(maxsize=1)
def _shared_matcher() -> Any:
    from echocaptions.captions.reports.findings_text import FindingsMatcher

    return FindingsMatcher()


class CaptionValidator:
    """Checks one caption against its record; the de-identifier and matcher load lazily."""

    def __init__(self, min_words: int, max_words: int, ner: str = "off") -> None:
        self.min_words = min_words
        self.max_words = max_words
        # The PHI check de-identifies like the report tier: patterns, plus spaCy NER
        # with "on" (or "auto" when a pipeline is installed) -- far slower per caption.
        self.ner = ner
        self._deid: Any = None
        self._matcher: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {"min_words": self.min_words, "max_words": self.max_words, "ner": self.ner}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def deidentifier(self) -> Any:
        if self._deid is None:
            self._deid = _shared_deidentifier(self.ner)
        return self._deid

    @property
    def matcher(self) -> Any:
        if self._matcher is None:
            self._matcher = _shared_matcher()
        return self._matcher

    def problems(self, text: str, request: LLMRequest) -> list[str]:
        """Why ``text`` is not a usable caption for ``request``; empty when it is."""
        if not text:
            return ["empty answer"]
        found: list[str] = []
        words = count_words(text)
        if words < self.min_words:
            found.append(f"too short ({words} words < {self.min_words})")
        elif words > self.max_words:
            found.append(f"too long ({words} words > {self.max_words})")
        if not names_organ(text, request.organ):
            found.append(f"does not name the organ ({'/'.join(ORGAN_WORDS[request.organ])})")
        scrubbed = self.deidentifier.scrub(text)
        if _count(scrubbed.counts) > 0:
            counts = scrubbed.counts
            kinds = ", ".join(sorted(k for k, v in counts.items() if v)) if isinstance(
                counts, Mapping
            ) else str(counts)
            found.append(f"contains PHI ({kinds})")
        findings = {k: v for k, v in request.findings.items() if v not in (None, "")}
        for reason in self.matcher.contradictions(text, request.organ, request.label, findings):
            found.append(f"contradicts the record: {reason}")
        return found

    def excerpt(self, report: str | None, limit: int) -> str | None:
        """A de-identified report excerpt of at most ``limit`` characters, cut at a word."""
        if not report or limit <= 0:
            return None
        text = " ".join(self.deidentifier.scrub(report).text.split())
        if len(text) > limit:
            text = text[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."
        return text or None


# ---------------------------------------------------------------------------
# Configuration, requests, results


@dataclass
class LLMConfig:
    """How to reach the server, what to ask, and how to judge the answers."""

    base_url: str | list[str]  # several: identical servers, balanced by requests in flight
    model: str
    api_key: str = "EMPTY"
    temperature: float = 0.7
    max_tokens: int = 96
    seed: int = 0
    concurrency: int = 8
    timeout: float = 30.0
    max_retries: int = 4
    captions_per_image: int = 1
    prompt: str = "caption"
    prompt_dir: str | None = None
    structured: str = "auto"
    validation_retries: int = 2
    min_words: int = 5
    max_words: int = 60
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    report_chars: int = 600
    template_dir: str | None = None
    ner: str = "off"

    @property
    def base_urls(self) -> list[str]:
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url)

    @property
    def servers(self) -> str:
        return ", ".join(self.base_urls)

    def __post_init__(self) -> None:
        if not self.base_urls or not all(isinstance(u, str) and u for u in self.base_urls):
            raise ValueError(f"llm.base_url must be a URL or a list of URLs, got {self.base_url!r}")
        if self.ner not in ("auto", "on", "off"):
            raise ValueError(f"ner={self.ner!r}; expected auto, on or off")
        if self.structured not in STRUCTURED_MODES:
            raise ValueError(f"llm.structured={self.structured!r}; expected one of {STRUCTURED_MODES}")
        for name in ("concurrency", "captions_per_image", "max_tokens"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"llm.{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_retries", "validation_retries", "min_words"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"llm.{name} must be 0 or more, got {getattr(self, name)}")
        if self.min_words > self.max_words:
            raise ValueError(
                f"llm.min_words={self.min_words} exceeds llm.max_words={self.max_words}"
            )
        if self.timeout <= 0:
            raise ValueError(f"llm.timeout must be positive seconds, got {self.timeout}")


@dataclass
class LLMRequest:
    """What the LLM may know about one image: metadata codes and an optional report."""

    record_id: str
    organ: str
    label: str | None
    findings: dict[str, str | None]
    view: str | None = None
    dataset: str | None = None
    report: str | None = None

    @classmethod
    def from_item(cls, record_id: str, item: SourceItem, with_report: bool = False) -> LLMRequest:
        return cls(
            record_id=record_id,
            organ=item.organ,
            label=item.label,
            findings=dict(item.findings),
            view=item.view,
            dataset=item.dataset,
            report=item.report if with_report else None,
        )


@dataclass
class LLMResult:
    """Valid LLM captions of one image, and why any attempt was rejected."""

    record_id: str
    captions: list[Caption] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Answer:
    text: str
    finish_reason: str | None
    cached: bool
    structured: bool


class _Messages:
    """One record's chat messages per structured mode, rendered on first use."""

    def __init__(self, captioner: LLMCaptioner, request: LLMRequest) -> None:
        self._captioner = captioner
        self._request = request
        self._rendered: dict[bool, list[dict[str, str]]] = {}

    def __getitem__(self, structured: bool) -> list[dict[str, str]]:
        if structured not in self._rendered:
            self._rendered[structured] = self._captioner.messages(self._request, structured)
        return self._rendered[structured]


# ---------------------------------------------------------------------------
# The captioner


class LLMCaptioner:
    """Captions records through an OpenAI-compatible server; see the module docstring."""

    def __init__(self, config: LLMConfig, cache_path: Path | str | None = None) -> None:
        self.config = config
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.prompt = load_prompt(config.prompt, config.prompt_dir)
        self.plain_reason: str | None = None
        self._setup()

    def _setup(self) -> None:
        self.cache = LLMCache(self.cache_path) if self.cache_path is not None else None
        self.validator = CaptionValidator(self.config.min_words, self.config.max_words, self.config.ner)
        self._loop_state: tuple[Any, ...] | None = None
        self._in_flight: tuple[Any, dict[str, Any]] | None = None
        self._next_server = 0
        self._schema_ok = False
        self._vocab: dict[str, Vocabulary] = {}
        self._rng = random.Random()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "cache_path": self.cache_path,
            "plain_reason": self.plain_reason,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = state["config"]
        self.cache_path = state["cache_path"]
        self.plain_reason = state["plain_reason"]
        self.prompt = load_prompt(self.config.prompt, self.config.prompt_dir)
        self._setup()

    def reset(self) -> None:
        """Forget what was learnt about the server (structured-output support), as when new."""
        self.plain_reason = None
        self._schema_ok = False

    def use_cache(self, cache: Any) -> None:
        """Answer from (and store into) ``cache`` from now on; the previous one is closed."""
        if self.cache is not None and self.cache is not cache:
            self.cache.close()
        self.cache = cache
        self.cache_path = getattr(cache, "path", None)

    # -- server -------------------------------------------------------------

    def check_server(self) -> None:
        """Ask ``GET /models`` of each server once; raise :class:`LLMServerError` saying what to do."""
        for url in self.config.base_urls:
            self._check_one(url)

    def _check_one(self, url: str) -> None:
        openai = _import_openai()
        cfg = self.config
        hint = VLLM_HINT.format(model=cfg.model)
        client = openai.OpenAI(
            base_url=url, api_key=cfg.api_key, timeout=min(cfg.timeout, 10.0), max_retries=0
        )
        try:
            served = [m.id for m in client.models.list()]
        except openai.APIConnectionError as exc:
            raise LLMServerError(
                f"no OpenAI-compatible server answers at {url} ({exc}); {hint}"
            ) from exc
        except openai.APIStatusError as exc:
            raise LLMServerError(
                f"{url}/models answered HTTP {exc.status_code} ({exc.message}); "
                "base_url must point at an OpenAI-compatible server and usually ends in /v1; "
                f"{hint}"
            ) from exc
        finally:
            client.close()
        if cfg.model not in served:
            raise LLMServerError(
                f"the server at {url} does not serve model {cfg.model!r} "
                f"(it serves: {', '.join(served) or 'nothing'}); set llm.model to one of those, "
                f"or restart vLLM with --served-model-name {cfg.model}"
            )

    def _runtime(self) -> tuple[list[Any], asyncio.Semaphore, asyncio.Lock]:
        """This event loop's clients (one per server), request semaphore and probe lock."""
        loop = asyncio.get_running_loop()
        if self._loop_state is None or self._loop_state[0] is not loop:
            openai = _import_openai()
            cfg = self.config
            clients = [
                openai.AsyncOpenAI(base_url=url, api_key=cfg.api_key, timeout=cfg.timeout, max_retries=0)
                for url in cfg.base_urls
            ]
            semaphore = asyncio.Semaphore(self._concurrency())
            self._loop_state = (loop, clients, asyncio.Lock(), semaphore, [0] * len(clients))
        return self._loop_state[1], self._loop_state[3], self._loop_state[2]

    def _concurrency(self) -> int:
        """Requests in flight: ``concurrency`` per server."""
        return self.config.concurrency * len(self.config.base_urls)

    @contextlib.contextmanager
    def _server(self) -> Iterator[Any]:
        """The client of the server with the fewest requests in flight; ties go round in turn.

        Which server answers never enters the cache key, so the servers must be
        identical (same model, same vLLM version) for a build to be reproducible.
        """
        clients, in_flight = self._runtime()[0], self._loop_state[4]  # type: ignore[index]
        order = [(self._next_server + k) % len(clients) for k in range(len(clients))]
        index = min(order, key=in_flight.__getitem__)
        self._next_server = (index + 1) % len(clients)
        in_flight[index] += 1
        try:
            yield clients[index]
        finally:
            in_flight[index] -= 1

    async def aclose(self) -> None:
        """Close the HTTP clients of the running event loop (new ones are made on next use)."""
        state, self._loop_state = self._loop_state, None
        if state is not None and state[0] is asyncio.get_running_loop():
            for client in state[1]:
                await client.close()

    # -- one request ----------------------------------------------------------

    def _meta_name(self) -> str:
        return f"plain_text:{','.join(self.config.base_urls)}:{self.config.model}"

    def _use_schema(self) -> bool:
        mode = self.config.structured
        return mode == "json_schema" or (mode == "auto" and self.plain_reason is None)

    def _payload(self, messages: list[dict[str, str]], seed: int, schema: bool) -> dict[str, Any]:
        cfg = self.config
        return {
            "model": cfg.model,
            "messages": messages,
            "temperature": cfg.temperature,
            "seed": seed,
            "max_tokens": cfg.max_tokens,
            "response_format": RESPONSE_FORMAT if schema else None,
        }

    def _delay(self, attempt: int, error: Exception) -> float:
        cfg = self.config
        ceiling = min(cfg.backoff_max, cfg.backoff_base * 2**attempt)
        delay = ceiling / 2 + self._rng.uniform(0, ceiling / 2)
        response = getattr(error, "response", None)
        if response is not None:
            try:
                wait = float(response.headers.get("retry-after", ""))
            except (TypeError, ValueError):
                wait = None
            if wait is not None:
                delay = max(delay, min(wait, cfg.backoff_max))
        return delay

    async def send(
        self, messages: list[dict[str, str]], *, temperature: float | None = None, max_tokens: int | None = None
    ) -> Answer:
        """One plain-text chat request with this client's model, seed, retries, cache and
        in-flight sharing; ``temperature`` and ``max_tokens`` override the configuration's.

        Raises :class:`LLMRequestError` (after the retries) and :class:`BadAnswer`.
        """
        payload = self._payload(messages, self.config.seed, False)
        if temperature is not None:
            payload["temperature"] = temperature
        if max_tokens is not None:
            payload["max_tokens"] = max_tokens
        return await self._send(payload)

    async def _send(self, payload: dict[str, Any]) -> Answer:
        """One request: from the cache, from an identical request in flight, or sent and cached.

        Identical requests (the same prompt for two records) are sent once: the
        later ones wait for the first answer and count as cached, so which one
        is "cached" does not depend on timing.
        """
        key = request_key(payload)
        structured = bool(payload["response_format"])
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return Answer(hit.text, hit.finish_reason, True, structured)
        loop = asyncio.get_running_loop()
        if self._in_flight is None or self._in_flight[0] is not loop:
            self._in_flight = (loop, {})
        pending: dict[str, asyncio.Future[tuple[str, str | None]]] = self._in_flight[1]
        if key in pending:
            text, finish = await asyncio.shield(pending[key])
            return Answer(text, finish, True, structured)
        future: asyncio.Future[tuple[str, str | None]] = loop.create_future()
        pending[key] = future
        try:
            answer = await self._request(payload, key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; waiters re-raise it
            raise
        else:
            future.set_result((answer.text, answer.finish_reason))
            return answer
        finally:
            pending.pop(key, None)

    async def _request(self, payload: dict[str, Any], key: str) -> Answer:
        """Send one request with retries and backoff; cache the answer."""
        openai = _import_openai()
        cfg = self.config
        _, semaphore, _ = self._runtime()
        body = {k: v for k, v in payload.items() if v is not None}
        error: Exception | None = None
        for attempt in range(cfg.max_retries + 1):
            if attempt:
                await asyncio.sleep(self._delay(attempt - 1, error))  # type: ignore[arg-type]
            try:
                async with semaphore:
                    with self._server() as client:
                        response = await client.chat.completions.create(**body)
            except openai.APIStatusError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    raise LLMRequestError(
                        f"HTTP {exc.status_code}: {exc.message}", status=exc.status_code
                    ) from exc
                error = exc
            except openai.APITimeoutError as exc:
                error = exc
            except openai.APIConnectionError as exc:
                error = exc
            except (ValueError, openai.APIResponseValidationError) as exc:
                raise BadAnswer(f"answer is not a chat completion ({type(exc).__name__}: {exc})") from exc
            else:
                choices = getattr(response, "choices", None)
                if not choices:
                    raise BadAnswer(f"answer is not a chat completion: {str(response)[:80]!r}")
                text = choices[0].message.content or ""
                finish = choices[0].finish_reason
                if self.cache is not None:
                    self.cache.put(key, payload, text, finish)
                return Answer(text, finish, False, bool(payload["response_format"]))
        raise LLMRequestError(
            f"{_describe(error)} after {cfg.max_retries + 1} tries",
            status=getattr(error, "status_code", None),
            unreachable=isinstance(error, openai.APIConnectionError)
            and not isinstance(error, openai.APITimeoutError),
        )

    async def _ask(self, messages: _Messages, seed: int) -> Answer:
        """One request in the current structured mode, falling back to plain text if rejected.

        While it is unknown whether the server takes ``response_format``, one
        request at a time asks with it; the others wait for the verdict.
        """
        if self._probing():
            async with self._runtime()[2]:
                if self._probing():
                    return await self._ask_once(messages, seed)
        return await self._ask_once(messages, seed)

    def _probing(self) -> bool:
        return self.config.structured == "auto" and self.plain_reason is None and not self._schema_ok

    async def _ask_once(self, messages: _Messages, seed: int) -> Answer:
        schema = self._use_schema()
        try:
            answer = await self._send(self._payload(messages[schema], seed, schema))
            self._schema_ok = self._schema_ok or schema
            return answer
        except LLMRequestError as exc:
            if not (schema and self.config.structured == "auto" and exc.rejects_response_format):
                raise
            if self.plain_reason is None:
                self.plain_reason = f"server rejected response_format ({str(exc)[:160]})"
                if self.cache is not None:
                    self.cache.set_meta(self._meta_name(), self.plain_reason)
        return await self._send(self._payload(messages[False], seed, False))

    # -- one record -----------------------------------------------------------

    def _vocabulary(self, organ: str) -> Vocabulary:
        if organ not in self._vocab:
            from echocaptions.resources import bundled_dir

            name = Path("vocab") / f"{organ}.yaml"
            path = bundled_dir("templates") / name
            if self.config.template_dir is not None:
                own = Path(self.config.template_dir) / name
                path = own if own.is_file() else path
            self._vocab[organ] = load_vocabulary(path)
        return self._vocab[organ]

    def context(self, request: LLMRequest, structured: bool) -> dict[str, Any]:
        """The prompt's variables for one record: metadata codes turned into vocabulary words."""
        organ = request.organ
        check_label(organ, request.label)
        given = {k: str(v) for k, v in request.findings.items() if v not in (None, "")}
        check_findings(organ, given)
        vocab = self._vocabulary(organ)
        words: list[str] = []
        present: list[str] = []
        for name in FINDINGS_BY_ORGAN[organ]:
            if name not in given:
                continue
            phrase = vocab.findings.get(name, {}).get(given[name])
            if phrase is None:
                raise TemplateError(
                    f"{vocab.path}: no words for {name}={given[name]!r}; add it under findings.{name}"
                )
            words.append(phrase)
            if given[name] not in vocab.negatives.get(name, ()):
                present.append(phrase)
        view = None
        if request.view:
            view = vocab.views.get(request.view.strip().lower().replace("-", "_").replace(" ", "_"))
        label = request.label
        return {
            "organ": organ,
            "organ_text": vocab.organ,
            "view": view,
            "label": label,
            "label_text": vocab.labels.get(label) if label else None,
            "impression": vocab.impressions.get(label) if label else None,
            "findings": words,
            "present": present,
            "report": self.validator.excerpt(request.report, self.config.report_chars),
            "dataset": request.dataset,
            "min_words": self.config.min_words,
            "max_words": self.config.max_words,
            "structured": structured,
        }

    def messages(self, request: LLMRequest, structured: bool) -> list[dict[str, str]]:
        """Chat messages for one record, with or without the instruction to answer in JSON."""
        return self.prompt.messages(self.context(request, structured))

    async def _caption_one(self, request: LLMRequest) -> LLMResult:
        cfg = self.config
        result = LLMResult(record_id=request.record_id)
        messages = _Messages(self, request)
        try:
            messages[self._use_schema()]
        except (ValueError, PromptError) as exc:
            result.failures.append(f"cannot build the prompt: {exc}")
            return result
        seen: set[str] = set()
        for k in range(cfg.captions_per_image):
            for attempt in range(cfg.validation_retries + 1):
                seed = cfg.seed + k + 1000 * attempt
                where = f"caption {k}, seed {seed}"
                try:
                    answer = await self._ask(messages, seed)
                except LLMRequestError as exc:
                    if exc.unreachable:
                        raise LLMServerError(
                            f"lost the server at {cfg.servers}: {exc}; "
                            + VLLM_HINT.format(model=cfg.model)
                        ) from exc
                    result.failures.append(f"{where}: request failed: {exc}")
                    break
                except BadAnswer as exc:
                    result.failures.append(f"{where}: {exc}")
                    continue
                text = parse_caption(answer.text)
                problems = self.validator.problems(text, request)
                if answer.finish_reason == "length":
                    problems.insert(0, f"cut off at max_tokens={cfg.max_tokens}")
                if text.lower() in seen:
                    problems.append("same text as an earlier caption of this image")
                if problems:
                    result.failures.append(f"{where}: " + "; ".join(problems))
                    continue
                seen.add(text.lower())
                note = None
                if cfg.structured == "auto" and not answer.structured:
                    note = f"plain text: {self.plain_reason}"
                result.captions.append(
                    Caption(
                        source="llm",
                        text=text,
                        provenance=Provenance(
                            prompt_id=self.prompt.id,
                            prompt_version=self.prompt.version,
                            model=cfg.model,
                            seed=seed,
                            temperature=cfg.temperature,
                            cached=answer.cached,
                            note=note,
                        ),
                    )
                )
                break
        return result

    # -- many records ---------------------------------------------------------

    async def acaption(
        self,
        requests: Sequence[LLMRequest],
        progress: Callable[[int], None] | None = None,
    ) -> list[LLMResult]:
        """Caption every request, in order; ``progress(1)`` after each record."""
        if self.cache is not None and self.config.structured == "auto" and self.plain_reason is None:
            self.plain_reason = self.cache.get_meta(self._meta_name())
        results: list[LLMResult | None] = [None] * len(requests)
        pending = iter(enumerate(requests))

        async def worker() -> None:
            for index, request in pending:
                results[index] = await self._caption_one(request)
                if progress is not None:
                    progress(1)

        workers = [
            asyncio.ensure_future(worker())
            for _ in range(min(self._concurrency(), len(requests)))
        ]
        if workers:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            failed = [task for task in done if task.exception() is not None]
            if failed:
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise failed[0].exception()  # type: ignore[misc]
        return [r for r in results if r is not None]

    def caption(
        self,
        requests: Sequence[LLMRequest],
        progress: Callable[[int], None] | None = None,
    ) -> list[LLMResult]:
        """:meth:`acaption` on its own event loop (a thread's, if one already runs here)."""

        async def run() -> list[LLMResult]:
            try:
                return await self.acaption(requests, progress)
            finally:
                await self.aclose()

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(run())
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, run()).result()


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise ImportError(
            "the LLM caption tier needs the openai client: pip install 'echocaptions[llm]'"
        ) from exc
    return openai


def _describe(error: Exception | None) -> str:
    if error is None:
        return "no answer"
    status = getattr(error, "status_code", None)
    if status is not None:
        return f"HTTP {status}: {getattr(error, 'message', error)}"
    openai = _import_openai()
    if isinstance(error, openai.APITimeoutError):
        return "timed out"
    cause = error.__cause__ or error.__context__
    return f"{error}{f' ({cause})' if cause else ''}"


__all__ = [
    "BadAnswer",
    "CaptionValidator",
    "LLMCaptioner",
    "LLMConfig",
    "LLMRequest",
    "LLMResult",
    "LLMServerError",
    "Prompt",
    "PromptError",
    "count_words",
    "list_prompts",
    "load_prompt",
    "names_organ",
    "parse_caption",
]
