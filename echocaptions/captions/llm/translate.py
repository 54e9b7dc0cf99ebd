"""Reports in other languages, translated to English through the LLM tier.

Only de-identified text is sent: the report stage scrubs a report before it
asks for a translation, and scrubs the translation again before captioning
it. Requests go through the same client as LLM captions, so they share its
bounded concurrency, retries with backoff and the on-disk request cache: a
rerun or a resumed build pays for no translation twice. Translation runs at
temperature 0 with a fixed seed, so a build stays deterministic given its
cache.

Chinese reports of the public corpora are often word-segmented with a space
between words; those spaces are taken out (between two Chinese characters or
punctuation marks only) before the report is sent, so the model reads the
report as it was written.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from echocaptions.captions.llm.client import (
    VLLM_HINT,
    BadAnswer,
    LLMCaptioner,
    LLMRequestError,
    LLMServerError,
    PromptError,
    load_prompt,
    prompt_dir_or_bundled,
)

LANGUAGE_NAMES = {
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "zh": "Chinese",
    "ja": "Japanese",
    "ko": "Korean",
    "und": "an undetermined language",
}
PROMPT = "translate"
# Languages written without spaces between words: spaces between two of their characters are segmentation.
UNSPACED = frozenset({"zh", "ja"})
_CJK = r"\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SEGMENT_SPACE = re.compile(rf"(?<=[{_CJK}])[ \t\u3000]+(?=[{_CJK}])")


def join_segmented(text: str) -> str:
    """``text`` without the spaces of word segmentation (``甲状腺 右叶 结节`` -> ``甲状腺右叶结节``).

    Only spaces between two CJK characters or CJK punctuation marks go; spaces
    next to Latin letters, digits and placeholders such as ``[NAME]`` stay.
    """
    return _SEGMENT_SPACE.sub("", text)


@dataclass
class Translation:
    """One translated report, or why there is none."""

    text: str | None
    reason: str | None = None
    cached: bool = False


class ReportTranslator:
    """Translate de-identified reports to English with the recipe's LLM server."""

    def __init__(self, captioner: LLMCaptioner, max_tokens: int = 512) -> None:
        self.captioner = captioner
        self.max_tokens = max_tokens
        folder = prompt_dir_or_bundled(captioner.config.prompt_dir)
        if not (folder / f"{PROMPT}.j2").is_file():
            folder = prompt_dir_or_bundled(None)
        self.prompt = load_prompt(PROMPT, folder)
        self.requests_sent = 0

    @property
    def provenance(self) -> str:
        """How a translated caption was made, for its provenance note."""
        return f"{self.captioner.config.model} ({self.prompt.id}@{self.prompt.version})"

    async def _one(self, text: str, language: str) -> Translation:
        cfg = self.captioner.config
        if language in UNSPACED:
            text = join_segmented(text)
        try:
            messages = self.prompt.messages(
                {"language": language, "language_name": LANGUAGE_NAMES.get(language, language), "report": text}
            )
        except PromptError as exc:
            return Translation(None, f"cannot build the translation prompt: {exc}")
        try:
            answer = await self.captioner.send(messages, temperature=0.0, max_tokens=self.max_tokens)
        except LLMRequestError as exc:
            if exc.unreachable:
                raise LLMServerError(
                    f"lost the server at {cfg.servers}: {exc}; " + VLLM_HINT.format(model=cfg.model)
                ) from exc
            return Translation(None, f"translation request failed: {exc}")
        except BadAnswer as exc:
            return Translation(None, f"translation answer unusable: {exc}")
        if not answer.cached:
            self.requests_sent += 1
        translated = answer.text.strip()
        if answer.finish_reason == "length":
            return Translation(None, f"translation cut off at max_tokens={self.max_tokens}", answer.cached)
        if not translated:
            return Translation(None, "translation came back empty", answer.cached)
        return Translation(translated, None, answer.cached)

    async def atranslate(self, items: Sequence[tuple[str, str]]) -> list[Translation]:
        try:
            return list(await asyncio.gather(*(self._one(text, lang) for text, lang in items)))
        finally:
            await self.captioner.aclose()

    def translate(self, items: Sequence[tuple[str, str]]) -> list[Translation]:
        """``[(de-identified text, language code)]`` to one :class:`Translation` each, in order."""
        if not items:
            return []
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.atranslate(items))
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, self.atranslate(items)).result()
