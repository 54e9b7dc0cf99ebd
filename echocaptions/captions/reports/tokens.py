"""Count text-encoder tokens, so report captions fit the encoder's context.

``TokenCounter("clip")`` uses open_clip's BPE tokenizer when it is importable
(``exact`` is then true). Without it, the count is an estimate built never to
undercount English clinical text, so a caption that fits the estimate fits the
real tokenizer:

- the text is pre-tokenised like CLIP (lower case; runs of letters; every digit
  alone, as CLIP splits numbers per digit; runs of other non-space characters;
  a contraction such as ``'s``, one CLIP token, is counted as ``'`` plus ``s``);
- a letter run listed in the lexicon (``echocaptions/assets/tokens/clip_lexicon.txt``)
  counts its exact number of BPE pieces (the lexicon holds about 2,300 frequent
  English words and radiology terms that are one CLIP token, and about 200
  clinical words with their piece counts, all read off CLIP's vocabulary);
- any other ASCII word of ``n`` letters counts ``ceil(n / 2) + 1`` pieces (``1``
  for one letter); over some 60,000 English and technical words this bound
  was never below the real count, while it overcounts them about twofold;
- a word with non-ASCII letters counts one piece per UTF-8 byte, which BPE
  cannot exceed;
- a digit, a contraction and a common punctuation run (``.``, ``),``, ``...``)
  count one; any other punctuation run counts one per UTF-8 byte;
- plus 2 for the start and end tokens.

``TokenCounter("bert")`` loads a ``transformers`` tokenizer from a local
folder given as ``"bert:/path/to/tokenizer"``; otherwise it estimates WordPiece
generously (BERT splits each punctuation mark; every word not in the short list
of English function words counts ``ceil(n / 2) + 1``), plus 2 for
``[CLS]``/``[SEP]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from echocaptions.assets import read_entries

DEFAULT_BUDGETS: dict[str, int] = {"clip": 77, "bert": 512}

_LETTERS = re.compile(r"[^\W\d_]+")
_DIGITS = re.compile(r"\d")
_PUNCT = re.compile(r"(?:[^\w\s]|_)+")
_BERT_PRETOKEN = re.compile(r"(?P<word>[^\W_]+)|(?P<punct>[^\w\s]|_)")
_PUNCT_ONE_TOKEN = ". , ; : ( ) - / % ' \" ? ! + = < > & # * [ ] ). ), .) ]. ], ): (. ... -- .. ,\" .\""
_ONE_TOKEN_PUNCT = frozenset(_PUNCT_ONE_TOKEN.split())


class TokenCounter:
    """Counts text-encoder tokens for ``kind`` ``"clip"`` or ``"bert"`` (``"bert:/dir"`` for a local tokenizer)."""

    def __init__(self, kind: str = "clip", budget: int | None = None) -> None:
        family, _, path = kind.partition(":")
        if family not in DEFAULT_BUDGETS:
            raise ValueError(
                f"tokenizer {kind!r} is not known; use 'clip', 'bert' or 'bert:/path/to/tokenizer'"
            )
        if path and family != "bert":
            raise ValueError(f"tokenizer {kind!r}: only 'bert' takes a local folder ('bert:/path')")
        self.kind = family
        self.budget: int = budget if budget is not None else DEFAULT_BUDGETS[family]
        if self.budget < 3:
            raise ValueError(f"token budget {self.budget} is too small; it includes the 2 special tokens")
        self._encode: Callable[[str], int] | None = None
        # A local BERT tokenizer is loaded now, so a bad folder fails before any work;
        # open_clip's (it imports torch, seconds) on the first count.
        self._loaded = family != "clip"
        if path:
            self._encode = _transformers_counter(path)

    def _load(self) -> None:
        if not self._loaded:
            self._encode = _open_clip_counter()
            self._loaded = True

    @property
    def exact(self) -> bool:
        """Counts come from the real tokenizer (else from an estimate)."""
        self._load()
        return self._encode is not None

    @property
    def additive(self) -> bool:
        # The estimates count each whitespace-separated piece on its own, so the
        # count of ``" ".join(parts)`` is the sum of the parts' counts less their
        # start/end tokens; a real tokenizer is not relied on to be.
        return not self.exact

    @property
    def describe(self) -> str:
        return f"{self.kind} {'tokenizer' if self.exact else 'estimate'}"

    def count(self, text: str) -> int:
        """Tokens ``text`` takes, start and end tokens included."""
        self._load()
        if self._encode is not None:
            return self._encode(text) + 2
        if self.kind == "clip":
            return _clip_estimate(text) + 2
        return _bert_estimate(text) + 2


def _open_clip_counter() -> Callable[[str], int] | None:
    try:
        from open_clip.tokenizer import SimpleTokenizer
    except Exception:
        return None
    tokenizer = _simple_tokenizer(SimpleTokenizer)
    return lambda text: len(tokenizer.encode(text))


@lru_cache(maxsize=1)
def _simple_tokenizer(cls: type) -> object:
    return cls()


def _transformers_counter(path: str) -> Callable[[str], int]:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:
        raise ImportError(
            f"tokenizer 'bert:{path}' needs transformers: pip install transformers"
        ) from exc
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def _unknown_word(word: str) -> int:
    if not word.isascii():
        return len(word.encode("utf-8"))
    n = len(word)
    return 1 if n == 1 else -(-n // 2) + 1


@lru_cache(maxsize=65536)
def _punct(run: str) -> int:
    return 1 if run in _ONE_TOKEN_PUNCT else len(run.encode("utf-8"))


@lru_cache(maxsize=65536)
def _clip_word(word: str) -> int:
    return _LEXICON.get(word) or _unknown_word(word)


def _clip_estimate(text: str) -> int:
    low = text.lower()
    return (
        sum(map(_clip_word, _LETTERS.findall(low)))
        + len(_DIGITS.findall(low))
        + sum(map(_punct, _PUNCT.findall(low)))
    )


def _bert_estimate(text: str) -> int:
    total = 0
    for m in _BERT_PRETOKEN.finditer(text):
        word = m.group("word")
        if word is None:
            total += len(m.group("punct").encode("utf-8"))
        elif word.lower() in _FUNCTION_WORDS:
            total += 1
        else:
            total += _unknown_word(word) if word.isascii() else len(word.encode("utf-8"))
    return total


_FUNCTION_TEXT = """a an and are as at be by for from has have in is it no not of on or the there
this to was were with without"""
_FUNCTION_WORDS = frozenset(_FUNCTION_TEXT.split())


def _read_lexicon() -> dict[str, int]:
    """``assets/tokens/clip_lexicon.txt``: each line a word and its number of CLIP BPE pieces."""
    table: dict[str, int] = {}
    for entry in read_entries("tokens", "clip_lexicon.txt"):
        word, pieces = entry.split()
        table[word] = int(pieces)
    return table


_LEXICON: dict[str, int] = _read_lexicon()
