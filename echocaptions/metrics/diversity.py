"""Lexical diversity and findings fidelity of a caption corpus.

Tokeniser
    One tokeniser, :func:`tokenize`, feeds every metric: text is lowercased;
    tokens are runs of letters and digits, joined by inner hyphens
    (``taller-than-wide``, ``b-lines``, ``ti-rads``, ``covid-19``) or, between
    digits, by decimal points (``1.5``); all other punctuation is dropped.

Corpus as one text
    TTR, root TTR, MATTR, MTLD, HD-D, unigram entropy and vocabulary size are
    computed on the concatenation of all captions' tokens, in the given order
    (MATTR windows and MTLD factors may span caption boundaries). Distinct-n
    and self-BLEU use n-grams within captions only.

Metrics
    ``ttr`` types / tokens; ``root_ttr`` types / sqrt(tokens) (Guiraud);
    ``mattr`` mean TTR of every window of ``mattr_window`` tokens (Covington &
    McFall 2010); ``hdd`` sum over types of P(type in a random draw of
    ``hdd_sample`` tokens without replacement) / ``hdd_sample`` (McCarthy &
    Jarvis 2007); ``distinct_<n>_corpus`` unique n-grams / n-grams, pooled over
    the corpus; ``distinct_<n>_per_caption_mean`` the same ratio per caption,
    averaged over captions with at least n tokens; ``self_bleu_4`` see
    :func:`self_bleu`; ``unigram_entropy_bits`` Shannon entropy of the token
    distribution in bits; ``length_mean`` / ``length_median`` tokens per
    caption; ``unique_caption_share`` distinct token sequences / captions;
    ``medical_term_coverage`` share of captions naming at least one finding.

MTLD (McCarthy & Jarvis 2010)
    Bidirectional: the mean of the forward and backward passes. A factor ends at
    the token where the running TTR drops to the threshold or below
    (``ttr <= threshold``, as in McCarthy & Jarvis's "reaches" and in
    lexicalrichness); the token that ends a factor belongs to it. The tail
    after the last full factor adds a partial factor ``(1 - ttr) / (1 -
    threshold)``. MTLD = tokens / factors per pass. A text in which every token
    is unique has no factor and a zero partial factor, so MTLD is unbounded:
    it is reported as None with a note (lexicalrichness returns the token count
    instead; this is the only case where the two differ). ``strict=True`` in
    :func:`mtld` ends factors only when the TTR is strictly below the threshold,
    which differs wherever a running TTR equals the threshold exactly (18 types
    in 25 tokens at 0.72).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from echocaptions.schema import FINDINGS_BY_ORGAN, ORGANS

_TOKEN = re.compile(r"\d+(?:\.\d+)+|[^\W_]+(?:-[^\W_]+)*")
_MAX_N = 4
Values = dict[str, float | int | None]


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens; keeps digits, decimals and hyphenated terms, drops other punctuation."""
    return _TOKEN.findall(text.lower())


@dataclass
class DiversityReport:
    """Metric values (None where undefined) and, per undefined or caveated metric, a note."""

    n_captions: int
    values: Values
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, as :func:`grouped` returns it."""
        return asdict(self)


class _Corpus:
    """Captions as integer token ids with per-order n-gram statistics."""

    def __init__(self, token_lists: Sequence[Sequence[str]]) -> None:
        flat = list(chain.from_iterable(token_lists))
        vocab = {t: i for i, t in enumerate(dict.fromkeys(flat))}
        self.vocab_size = len(vocab)
        self.ids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=len(flat))
        self.lengths = np.fromiter((len(t) for t in token_lists), dtype=np.int64,
                                   count=len(token_lists))
        self.starts = np.cumsum(self.lengths) - self.lengths
        self.n = len(token_lists)
        self.caption_of = np.repeat(np.arange(self.n, dtype=np.int64), self.lengths)
        self._orders: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
        self._codes: dict[int, np.ndarray] = {}

    def order(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(caption, n-gram code, count) per distinct n-gram of each caption, and the n-gram types."""
        if n in self._orders:
            return self._orders[n]
        end = (self.starts + self.lengths)[self.caption_of]
        pos = np.flatnonzero(np.arange(self.ids.size) + n <= end)
        if n == 1:
            key = self.ids
        else:
            prev = self._codes_at(n - 1)
            key = prev[pos] * self.vocab_size + self.ids[pos + n - 1]
        cap = self.caption_of[pos]
        if key.size and int(key.max()) < (2**62) // max(self.n, 1):
            ukey, inverse, counts = np.unique(key * self.n + cap, return_inverse=True,
                                              return_counts=True)
            raw, pair_cap = np.divmod(ukey, self.n)
            new = np.empty(raw.size, dtype=bool)
            new[:1] = True
            np.not_equal(raw[1:], raw[:-1], out=new[1:])
            pair_code = np.cumsum(new) - 1
            codes = pair_code[inverse.ravel()]
        else:
            _, codes = np.unique(key, return_inverse=True)
            codes = codes.ravel().astype(np.int64)
            ukey, counts = np.unique(codes * max(self.n, 1) + cap, return_counts=True)
            pair_code, pair_cap = np.divmod(ukey, max(self.n, 1))
        full = np.full(self.ids.size, -1, dtype=np.int64)
        full[pos] = codes
        self._codes[n] = full
        types = int(pair_code[-1]) + 1 if pair_code.size else 0
        self._orders[n] = (pair_cap, pair_code, counts.astype(np.int64), types)
        return self._orders[n]

    def _codes_at(self, n: int) -> np.ndarray:
        if n not in self._codes:
            self.order(n)
        return self._codes[n]


def _mattr(ids: np.ndarray, prev: np.ndarray, window: int) -> float:
    size = ids.size
    i = np.arange(size, dtype=np.int64)
    lo = np.maximum(np.maximum(prev + 1, i - window + 1), 0)
    hi = np.minimum(i, size - window)
    total = int(np.clip(hi - lo + 1, 0, None).sum())
    return total / (window * (size - window + 1))


def _previous(ids: np.ndarray) -> np.ndarray:
    """Index of each token's previous occurrence, -1 for a first occurrence."""
    order = np.argsort(ids, kind="stable")
    prev = np.full(ids.size, -1, dtype=np.int64)
    same = ids[order[1:]] == ids[order[:-1]]
    prev[order[1:][same]] = order[:-1][same]
    return prev


def _mtld_pass(tokens: Iterable[int], vocab_size: int, threshold: float, strict: bool) -> float:
    stamp = [-1] * vocab_size
    factors = 0.0
    segment = count = distinct = total = 0
    ttr = 1.0
    for t in tokens:
        total += 1
        count += 1
        if stamp[t] != segment:
            stamp[t] = segment
            distinct += 1
        ttr = distinct / count
        if ttr < threshold or (not strict and ttr == threshold):
            factors += 1
            segment += 1
            count = distinct = 0
    if count:
        factors += (1 - ttr) / (1 - threshold)
    return total / factors if factors else math.inf


def mtld(
    tokens: Sequence[str] | np.ndarray, threshold: float = 0.72, strict: bool = False
) -> float | None:
    """Bidirectional MTLD of a token sequence; None for an empty or all-unique text (see module doc)."""
    if isinstance(tokens, np.ndarray):
        ids = tokens.tolist()
        vocab_size = int(tokens.max()) + 1 if tokens.size else 0
    else:
        vocab: dict[str, int] = {}
        ids = [vocab.setdefault(t, len(vocab)) for t in tokens]
        vocab_size = len(vocab)
    if not ids:
        return None
    forward = _mtld_pass(ids, vocab_size, threshold, strict)
    backward = _mtld_pass(reversed(ids), vocab_size, threshold, strict)
    if math.isinf(forward) or math.isinf(backward):
        return None
    return (forward + backward) / 2


def _hdd(counts: np.ndarray, size: int, sample: int) -> float:
    freqs, mult = np.unique(counts, return_counts=True)
    k = np.arange(sample, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log1p(-freqs[:, None] / (size - k)[None, :]).sum(axis=1)
    p_none = np.where(freqs > size - sample, 0.0, np.exp(logs))
    return float(((1.0 - p_none) * mult).sum() / sample)


def _top2(code: np.ndarray, count: np.ndarray, types: int) -> tuple[np.ndarray, np.ndarray]:
    """Per n-gram type: the largest per-caption count, and the largest among all other captions."""
    top1 = np.zeros(types, dtype=np.int64)
    np.maximum.at(top1, code, count)
    at_top = count == top1[code]
    ties = np.bincount(code[at_top], minlength=types)
    second = np.zeros(types, dtype=np.int64)
    np.maximum.at(second, code[~at_top], count[~at_top])
    second = np.where(ties >= 2, top1, second)
    return top1, second


def _self_bleu(corpus: _Corpus, max_n: int) -> float | None:
    if corpus.n < 2:
        return None
    lengths = corpus.lengths
    log_p = np.zeros(corpus.n, dtype=np.float64)
    matched_unigrams = None
    for n in range(1, max_n + 1):
        cap, code, count, types = corpus.order(n)
        top1, second = _top2(code, count, types)
        others = np.where(count == top1[code], second[code], top1[code])
        clipped = np.bincount(cap, weights=np.minimum(count, others), minlength=corpus.n)
        denom = np.maximum(lengths - n + 1, 1).astype(np.float64)
        p = np.where(clipped == 0, 0.1 / denom, clipped / denom)
        log_p += np.log(p) / max_n
        if n == 1:
            matched_unigrams = clipped
    uniq, mult = np.unique(lengths, return_counts=True)
    idx = np.searchsorted(uniq, lengths)
    below = np.where(idx > 0, uniq[np.maximum(idx - 1, 0)], -1)
    above = np.where(idx + 1 < uniq.size, uniq[np.minimum(idx + 1, uniq.size - 1)], -1)
    gap_below = np.where(below >= 0, lengths - below, np.iinfo(np.int64).max)
    gap_above = np.where(above >= 0, above - lengths, np.iinfo(np.int64).max)
    nearest = np.where(gap_below <= gap_above, below, above)
    ref_len = np.where(mult[idx] >= 2, lengths, nearest).astype(np.float64)
    hyp = lengths.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        bp = np.where(hyp > ref_len, 1.0, np.where(hyp == 0, 0.0, np.exp(1 - ref_len / hyp)))
    scores = np.where(matched_unigrams == 0, 0.0, bp * np.exp(log_p))
    return float(scores.mean())


def self_bleu(captions: Sequence[str], max_n: int = 4) -> float | None:
    """Mean BLEU-``max_n`` of each caption against all other captions as references.

    Equals nltk ``sentence_bleu(others, caption, weights=(1/max_n,)*max_n,
    smoothing_function=SmoothingFunction().method1)`` averaged over captions,
    on :func:`tokenize` tokens, without the O(n²) pairs: clipped counts use each
    n-gram's two largest per-caption counts, and the closest reference length
    the sorted caption lengths with multiplicities. None for fewer than 2 captions.
    """
    return _self_bleu(_Corpus([tokenize(c) for c in captions]), max_n)


_matcher: Any = None


def _findings_matcher() -> Any:
    global _matcher
    if _matcher is None:
        from echocaptions.captions.reports.findings_text import FindingsMatcher

        _matcher = FindingsMatcher()
    return _matcher


def names_finding(text: str, organ: str | None) -> bool:
    """True when ``text`` states (not negated) a finding of ``organ``'s vocabulary (not a label)."""
    organ = organ if organ in ORGANS else None
    return any(
        not s.negated and s.field != "label" for s in _findings_matcher().statements(text, organ)
    )


def diversity(
    captions: Sequence[str],
    organs: Sequence[str | None] | None = None,
    mattr_window: int = 50,
    hdd_sample: int = 42,
    mtld_threshold: float = 0.72,
    *,
    term_matcher: Callable[[str, str | None], bool] | None = None,
    coverage_sample: int | None = 1000,
) -> DiversityReport:
    """All diversity metrics of ``captions``; undefined ones are None with a note.

    ``organs`` (one per caption) scopes medical-term coverage to each caption's
    organ; ``term_matcher(text, organ)`` replaces :func:`names_finding`. The
    findings matcher costs about 0.5 ms a caption, so with more than
    ``coverage_sample`` captions coverage is estimated on a seeded random
    sample of that many (noted with its 95% margin); None means every caption.
    """
    captions = [c if isinstance(c, str) else "" for c in captions]
    token_lists = [tokenize(c) for c in captions]
    corpus = _Corpus(token_lists)
    notes: dict[str, str] = {}
    values: Values = {}
    size = int(corpus.ids.size)
    values["n_tokens"] = size
    values["vocabulary_size"] = corpus.vocab_size
    if corpus.n == 0:
        notes["*"] = "no captions"
    if size == 0:
        for name in ("ttr", "root_ttr", "mattr", "mtld", "hdd", "unigram_entropy_bits"):
            values[name] = None
            notes[name] = "no tokens"
    else:
        values["ttr"] = corpus.vocab_size / size
        values["root_ttr"] = corpus.vocab_size / math.sqrt(size)
        if mattr_window < 1 or size < mattr_window:
            values["mattr"] = None
            notes["mattr"] = f"{size} tokens, fewer than the window of {mattr_window}"
        else:
            values["mattr"] = _mattr(corpus.ids, _previous(corpus.ids), mattr_window)
        values["mtld"] = mtld(corpus.ids, mtld_threshold)
        if values["mtld"] is None:
            notes["mtld"] = "every token is unique: no MTLD factor completes, MTLD is unbounded"
        elif size < 100:
            notes["mtld"] = f"only {size} tokens; MTLD is unstable under about 100"
        unigram = np.bincount(corpus.ids, minlength=corpus.vocab_size)
        if hdd_sample < 1 or size < hdd_sample:
            values["hdd"] = None
            notes["hdd"] = f"{size} tokens, fewer than the sample of {hdd_sample}"
        else:
            values["hdd"] = _hdd(unigram, size, hdd_sample)
        p = unigram / size
        values["unigram_entropy_bits"] = float(-(p * np.log2(p)).sum())
    for n in range(1, _MAX_N + 1):
        cap, _, _, types = corpus.order(n)
        grams = np.maximum(corpus.lengths - n + 1, 0)
        total = int(grams.sum())
        pooled, per = f"distinct_{n}_corpus", f"distinct_{n}_per_caption_mean"
        if total == 0:
            values[pooled] = values[per] = None
            notes[pooled] = notes[per] = f"no caption has {n} or more tokens"
            continue
        values[pooled] = types / total
        uniq_per_caption = np.bincount(cap, minlength=corpus.n)
        ok = grams > 0
        values[per] = float((uniq_per_caption[ok] / grams[ok]).mean())
        if not ok.all():
            notes[per] = f"{int((~ok).sum())} captions shorter than {n} tokens left out"
    values["self_bleu_4"] = _self_bleu(corpus, 4)
    if values["self_bleu_4"] is None:
        notes["self_bleu_4"] = f"{corpus.n} caption(s); self-BLEU needs at least 2"
    if corpus.n:
        values["length_mean"] = float(corpus.lengths.mean())
        values["length_median"] = float(np.median(corpus.lengths))
        values["unique_caption_share"] = len({" ".join(t) for t in token_lists}) / corpus.n
    else:
        for name in ("length_mean", "length_median", "unique_caption_share"):
            values[name] = None
            notes[name] = "no captions"
    values["medical_term_coverage"] = _coverage(
        captions, organs, term_matcher, notes, coverage_sample
    )
    return DiversityReport(n_captions=corpus.n, values=values, notes=notes)


def _coverage(
    captions: Sequence[str],
    organs: Sequence[str | None] | None,
    matcher: Callable[[str, str | None], bool] | None,
    notes: dict[str, str],
    sample: int | None,
) -> float | None:
    if not captions:
        notes["medical_term_coverage"] = "no captions"
        return None
    if organs is not None and len(organs) != len(captions):
        notes["medical_term_coverage"] = (
            f"{len(organs)} organs for {len(captions)} captions; organs ignored"
        )
        organs = None
    if organs is None and matcher is None:
        notes.setdefault("medical_term_coverage", "no organs given: any organ's findings count")
    matcher = matcher or names_finding
    picked: Iterable[int] = range(len(captions))
    if sample is not None and 0 < sample < len(captions):
        picked = np.sort(np.random.default_rng(0).choice(len(captions), sample, replace=False))
    seen: dict[tuple[str, str | None], bool] = {}
    hits = total = 0
    for i in picked:
        key = (captions[i], organs[i] if organs is not None else None)
        if key not in seen:
            seen[key] = bool(matcher(*key))
        hits += seen[key]
        total += 1
    share = hits / total
    if total < len(captions):
        margin = 1.96 * math.sqrt(share * (1 - share) / total)
        note = f"estimated on a random {total} of {len(captions)} captions, +/- {margin:.3f} (95%)"
        previous = notes.get("medical_term_coverage")
        notes["medical_term_coverage"] = f"{previous}; {note}" if previous else note
    return share


def _stated_ok(field_name: str, value: str, record: dict[str, str], label: str | None) -> bool:
    from echocaptions.captions.reports.findings_text import ABSENCE, PRESENT

    if field_name == "label":
        return value == label
    truth = record.get(field_name)
    if truth is None:
        return False
    if value == truth:
        return True
    return value == PRESENT and truth != ABSENCE.get(field_name)


def findings_fidelity(
    captions: Sequence[str],
    organs: Sequence[str | None],
    labels: Sequence[str | None],
    findings: Sequence[dict[str, Any] | None],
) -> dict[str, float | int | None]:
    """How faithfully captions state their records' findings and label.

    Per caption, the non-negated statements of :class:`FindingsMatcher` for the
    organ's schema fields and ``label`` are compared with the record. A stated
    ``(field, value)`` is true when the record has that value (a generic
    ``present`` is true for any value but the field's absence code). Precision
    = true statements / statements; recall = record entries stated / record
    entries (label plus non-null findings that are not an absence code, which
    only a negation can state). ``precision`` and ``recall`` are means over the
    captions where they are defined, ``contradiction_rate`` the share of
    captions with a :meth:`FindingsMatcher.contradictions` reason; captions
    whose organ is unknown are skipped. Each value is None when undefined.
    """
    from echocaptions.captions.reports.findings_text import ABSENCE

    matcher = _findings_matcher()
    precisions: list[float] = []
    recalls: list[float] = []
    contradicted = n = 0
    for text, organ, label, record in zip(captions, organs, labels, findings, strict=False):
        if organ not in ORGANS or not isinstance(text, str):
            continue
        n += 1
        fields = set(FINDINGS_BY_ORGAN[organ])
        record = {k: str(v) for k, v in (record or {}).items() if v is not None and k in fields}
        stated = {
            (s.field, s.value)
            for s in matcher.statements(text, organ)
            if not s.negated and (s.field == "label" or s.field in fields)
        }
        correct = {s for s in stated if _stated_ok(*s, record, label)}
        if stated:
            precisions.append(len(correct) / len(stated))
        truth = {k for k, v in record.items() if v != ABSENCE.get(k)}
        if label is not None:
            truth.add("label")
        if truth:
            recalls.append(len(truth & {f for f, _ in correct}) / len(truth))
        contradicted += bool(matcher.contradictions(text, organ, label, record))
    return {
        "precision": float(np.mean(precisions)) if precisions else None,
        "recall": float(np.mean(recalls)) if recalls else None,
        "contradiction_rate": contradicted / n if n else None,
        "n": n,
    }


def grouped(rows: Iterable[dict[str, Any]], by: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Diversity and findings fidelity per group of rows, keyed by the ``by`` values joined with "/".

    Rows carry ``caption``, ``organ``, ``label``, ``findings`` and any grouping
    keys (``caption_source``, ``dataset``...); a missing or None key groups as "none".
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = "/".join("none" if row.get(k) is None else str(row.get(k)) for k in by)
        groups.setdefault(key, []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for key, members in groups.items():
        captions = [r.get("caption") or "" for r in members]
        organs = [r.get("organ") for r in members]
        report = diversity(captions, organs).to_dict()
        report["fidelity"] = findings_fidelity(
            captions, organs, [r.get("label") for r in members],
            [r.get("findings") for r in members],
        )
        out[key] = report
    return out
