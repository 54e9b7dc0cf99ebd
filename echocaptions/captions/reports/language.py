"""Which language a report is written in, without a model or the network.

A function-word profile: each word of the text that is a frequent function
word of a language scores for it (a word shared by several languages splits
its point between them), and letters proper to one language (``ñ``, ``ß``,
``ç``, ...) add to its score. Reports are written in full sentences, so a few
dozen function words are enough to tell English from Spanish, French, German,
Italian, Portuguese and Dutch. Text with too little evidence is ``"und"``.
"""

from __future__ import annotations

import re
from collections import defaultdict

FUNCTION_WORDS: dict[str, str] = {
    "en": "the and of with is are was were to there this that which by on for from at as be has "
    "have an or not without seen noted measuring measures demonstrates within",
    "es": "el la los las de del y con en sin que se por para una un es son al lo su como más "
    "mide presenta tamaño lóbulo nódulo bordes también muy derecho izquierdo hay",
    "fr": "le la les des du de et avec sans est sont une un dans pour par sur au aux qui que pas "
    "ne cette ce il elle en droit gauche mesure",
    "de": "der die das den dem des und mit ohne ist sind ein eine einer einem im in zu von bei nicht "
    "kein keine auf für sich wird links rechts",
    "it": "il lo la gli le di del della delle dei e con senza è sono un una nel nella per da che "
    "non alla al destro sinistro",
    "pt": "o os a as de do da dos das e com sem é são um uma no na em para por que não ao pelo "
    "pela direito esquerdo",
    "nl": "de het een en van met zonder is zijn in op niet geen voor bij naar ook",
}
LETTER_HINTS: dict[str, str] = {
    "ñ": "es", "¿": "es", "¡": "es", "ß": "de", "ä": "de", "ö": "de", "ü": "de",
    "ç": "fr pt", "ã": "pt", "õ": "pt", "œ": "fr", "è": "fr it", "ê": "fr pt", "â": "fr pt",
    "î": "fr", "ù": "fr", "ì": "it", "ò": "it",
}
MIN_WORDS = 3
MIN_SCORE = 1.5
SAMPLE_CHARS = 3000
# Script evidence: at least this many CJK letters, making up at least this share of all letters.
MIN_CJK_CHARS = 4
MIN_CJK_SHARE = 0.3
# Japanese mixes Han characters with kana; this share of kana among the CJK letters makes it ``ja``.
MIN_KANA_SHARE = 0.1

_WORD = re.compile(r"\w+")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af\u1100-\u11ff\u3130-\u318f]")


def _weights() -> dict[str, dict[str, float]]:
    owners: dict[str, list[str]] = defaultdict(list)
    for lang, words in FUNCTION_WORDS.items():
        for word in set(words.split()):
            owners[word].append(lang)
    return {word: {lang: 1.0 / len(langs) for lang in langs} for word, langs in owners.items()}


_WEIGHTS = _weights()
# The same weights as (language, weight) pairs, in ``_WEIGHTS`` order.
_PAIRS: dict[str, tuple[tuple[str, float], ...]] = {w: tuple(ws.items()) for w, ws in _WEIGHTS.items()}
_HINTS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (char, tuple(langs.split())) for char, langs in LETTER_HINTS.items()
)
_ASCII_HINTS = any(char.isascii() for char in LETTER_HINTS)


def _script_language(sample: str) -> tuple[str, float] | None:
    """``zh`` / ``ja`` / ``ko`` when CJK letters dominate ``sample``, with their share of the letters."""
    han, kana, hangul = (len(p.findall(sample)) for p in (_HAN, _KANA, _HANGUL))
    cjk = han + kana + hangul
    if cjk < MIN_CJK_CHARS:
        return None
    letters = sum(1 for c in sample if c.isalpha())
    share = cjk / max(letters, 1)
    if share < MIN_CJK_SHARE:
        return None
    if hangul > han + kana:
        return "ko", round(share, 3)
    return ("ja" if kana >= MIN_KANA_SHARE * cjk else "zh"), round(share, 3)


def detect_language(text: str) -> tuple[str, float]:
    """``(ISO 639-1 code, confidence in [0, 1])``; ``("und", 0.0)`` when there is too little text."""
    sample = text[:SAMPLE_CHARS].lower()
    if not sample.isascii():
        script = _script_language(sample)
        if script is not None:
            return script
    words = _WORD.findall(sample)
    if len(words) < MIN_WORDS:
        return "und", 0.0
    # Function words counted in order of first occurrence, and scores added in
    # that order, so the sums (floats) are those of counting every word.
    counts: dict[str, int] = {}
    for word in words:
        if word in _PAIRS:
            counts[word] = counts.get(word, 0) + 1
    scores: dict[str, float] = {}
    for word, n in counts.items():
        for lang, weight in _PAIRS[word]:
            scores[lang] = scores.get(lang, 0) + weight * n
    if _ASCII_HINTS or not sample.isascii():
        for char, langs in _HINTS:
            hits = sample.count(char)
            if hits:
                for lang in langs:
                    scores[lang] = scores.get(lang, 0) + min(hits, 5) * 0.5 / len(langs)
    total = sum(scores.values())
    if total < MIN_SCORE:
        return "und", 0.0
    lang, best = max(sorted(scores.items()), key=lambda kv: kv[1])
    return lang, round(best / total, 3)
