"""Report tier: a caption from an expert report, by sentence priority within a token budget.

The report reaching this tier is already de-identified. :class:`ReportCaptioner`

1. decodes bytes (UTF-8, else cp1252, else latin-1) and cuts absurdly long text;
2. detects the language and keeps only the configured ones;
3. splits sections by their headings (``FINDINGS:``, ``Impression:``, a heading
   alone on its line, or inline after a sentence) and gives each a role from
   :data:`DEFAULT_SECTIONS`; text before the first heading is the letterhead,
   and a report without headings is one ``other`` section;
4. normalises measurements and common abbreviations, then segments sentences
   with spaCy (``spacy.blank("en")`` and the sentencizer by default), only in
   the sections that can give a caption;
5. drops history/technique/comparison sentences, boilerplate, placeholders left
   by de-identification, and sentences about another organ;
6. ranks what is left (impression first, then findings that describe a lesion,
   then those that name the organ, then the rest) and keeps whole sentences in rank order while they
   fit the text encoder's token budget, then writes them in report order.

The organ and lesion vocabularies (:data:`ORGAN_TERMS`, :data:`LESION_TERMS`) are data files
under ``echocaptions/assets/reports/``.

Every dropped sentence is kept with its reason, so a caption can be explained.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from echocaptions.assets import read_entries
from echocaptions.captions.reports.language import detect_language
from echocaptions.captions.reports.tokens import TokenCounter
from echocaptions.schema import Caption, Provenance

if TYPE_CHECKING:  # spaCy is imported on the first report, not with this module
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

ROLES: tuple[str, ...] = ("impression", "findings", "history", "technique", "comparison", "other")
CAPTION_ROLES: frozenset[str] = frozenset({"impression", "findings", "other"})

DEFAULT_SECTIONS: dict[str, str] = {
    "IMPRESSION": "impression",
    "IMPRESSIONS": "impression",
    "CONCLUSION": "impression",
    "CONCLUSIONS": "impression",
    "DIAGNOSIS": "impression",
    "DIAGNOSES": "impression",
    "OPINION": "impression",
    "SUMMARY": "impression",
    "ASSESSMENT": "impression",
    "FINDINGS": "findings",
    "FINDING": "findings",
    "ULTRASOUND FINDINGS": "findings",
    "US FINDINGS": "findings",
    "SONOGRAPHIC FINDINGS": "findings",
    "REPORT": "findings",
    "DESCRIPTION": "findings",
    "RESULT": "findings",
    "RESULTS": "findings",
    "CLINICAL HISTORY": "history",
    "HISTORY": "history",
    "CLINICAL INFORMATION": "history",
    "CLINICAL DETAILS": "history",
    "CLINICAL INDICATION": "history",
    "INDICATION": "history",
    "INDICATIONS": "history",
    "REASON FOR EXAM": "history",
    "REASON FOR EXAMINATION": "history",
    "REASON FOR STUDY": "history",
    "TECHNIQUE": "technique",
    "PROCEDURE": "technique",
    "EXAM": "technique",
    "EXAMINATION": "technique",
    "STUDY": "technique",
    "PROTOCOL": "technique",
    "COMPARISON": "comparison",
    "COMPARISONS": "comparison",
    "PRIOR STUDIES": "comparison",
    "RECOMMENDATION": "other",
    "RECOMMENDATIONS": "other",
    "ADDENDUM": "other",
    "COMMENT": "other",
    "COMMENTS": "other",
    "NOTE": "other",
}

MEMO_SIZE = 100_000
HEADER_KEY = ""
"""Key in ``ReportResult.sections`` for the text before the first heading (or the whole text)."""


def _organ_terms() -> dict[str, tuple[str, ...]]:
    """``assets/reports/organ_terms.txt``: each line an organ, a colon and its terms."""
    table: dict[str, tuple[str, ...]] = {}
    for entry in read_entries("reports", "organ_terms.txt"):
        organ, _, terms = entry.partition(":")
        table[organ.strip()] = tuple(terms.split())
    return table


# Terms that name each organ (or a structure examined with it); a sentence naming
# another organ's term and none of its own is about that other organ.
ORGAN_TERMS: dict[str, tuple[str, ...]] = _organ_terms()
# Terms that make a sentence describe a lesion.
LESION_TERMS: tuple[str, ...] = read_entries("reports", "lesion_terms.txt")

BOILERPLATE: tuple[str, ...] = (
    r"\b(findings|results?|these|this|case|report)\b.{0,40}"
    r"\b(discussed|communicated|conveyed|called|relayed|reviewed)\b.{0,40}\b(with|to)\b",
    r"\b(discussed|communicated) (with|to) (dr|the referring|the ordering|the clinician|the patient)",
    r"\belectronically signed\b",
    r"\b(signed|dictated|transcribed|verified|approved|authenticated|read|reported) by\b",
    r"\breport (verified|finalized|finalised|signed|approved)\b",
    r"\b(please )?correlate clinically\b",
    r"\bclinical(ly)? correlation( is)?( recommended| advised| suggested| required)?\b",
    r"\bthank you for\b",
    r"\b(end of report|preliminary report|final report|this report)\b",
    r"\bi have (personally )?reviewed\b",
    r"\b(attending|resident|radiologist|sonographer|technologist)\s*:",
    r"\b(mrn|accession|dob|date of birth|referring physician|phone|fax)\b\s*[:#]",
)
# Lower-case literals one of which every BOILERPLATE pattern needs (in an ASCII
# sentence): a sentence with none of them skips the boilerplate scan.
BOILERPLATE_HINTS: tuple[str, ...] = (
    "discussed", "communicated", "conveyed", "called", "relayed", "reviewed", "electronically signed",
    "by", "report", "correlate", "clinical", "thank you", ":", "#",
)
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9 _-]*\]|<[A-Z][A-Z0-9_]*>|\*{3,}|\bX{3,}\b|#{3,}")
# Literals one of which every PLACEHOLDER match contains.
_PLACEHOLDER_HINTS: tuple[str, ...] = ("[", "<", "***", "XXX", "###")

_UNITS = r"(?:mm|cm|ml|mL|cc|kPa|m/s|cm/s|MHz)"
_NUM = r"\d+(?:\.\d+)?"
# ``(?=\d)`` first: the same matches, but most positions fail before the look-behind.
_MEASURE = re.compile(rf"(?=\d)(?<!(?![x×X])[\w.])({_NUM})(?:\s*[x×X]\s*(?=\d)|(?P<unit>{_UNITS})\b)")
# (literal that must occur, pattern, replacement): the literal test skips a regex scan.
_ABBREVIATIONS: tuple[tuple[tuple[str, ...], re.Pattern[str], str], ...] = tuple(
    (keys, re.compile(pattern), replacement)
    for keys, pattern, replacement in (
        (("w/o", "W/O", "W/o"), r"(?i:\bw/o\b)", "without"),
        (("w/", "W/"), r"(?i:\bw/(?=\s|\w))", "with "),
        (("pprox", "PPROX"), r"(?i:\bapprox\.?(?=\s|\d))", "approximately"),
        (("bx", "Bx", "BX"), r"(?i:\bbx\b)", "biopsy"),
        (("LNs",), r"\bLNs\b", "lymph nodes"),
        (("LN",), r"\bLN\b", "lymph node"),
        (("/w", "/W"), r"(?i:\bc/w\b)", "consistent with"),
        (("/l", "/L"), r"(?i:\bb/l\b)", "bilateral"),
        (("-echoic", "chogenic", "-ECHOIC", "CHOGENIC"),
         r"(?i:\b(?P<prefix>hypo|hyper|iso|an)(?:-echoic|-?echogenic)\b)", "echoic"),
        (("R ", "L ", " rt", "Rt", "RT", " lt", "Lt", "LT"),
         r"\b(?P<side>R|L|(?i:rt|lt)\.?)(?= (?i:lobe|breast|axilla|kidney|lung|hemithorax)\b)", "side"),
    )
)
_SPACES = re.compile(r"\s+")
_LIST_MARK = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|[-*•·])\s+")
_ENDS_SENTENCE = re.compile(r"[.!?:;]\s*$")
_WORD = re.compile(r"[^\W\d_]{2,}")
# A maximal run of word characters and hyphens: in an ASCII sentence, the organ
# and lesion patterns match exactly the runs that, lower-cased, are their terms.
_RUN = re.compile(r"[\w-]+")
_LESION_SET: frozenset[str] = frozenset(LESION_TERMS)


@dataclass
class ReportConfig:
    """How reports become captions; one per recipe."""

    sections: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SECTIONS))
    tokenizer: str = "clip"
    budget: int | None = None
    languages: tuple[str, ...] = ("en",)
    max_chars: int = 20_000
    spacy_model: str | None = None


@dataclass
class ReportResult:
    """A report's caption (or why there is none) and what was kept and dropped."""

    caption: Caption | None
    reason: str | None
    language: str
    kept: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)


@dataclass
class _Prepared:
    """A report after decoding, language check and section split, before spaCy."""

    organ: str
    language: str
    notes: list[str]
    sections: dict[str, str]
    dropped: list[str]
    units: list[tuple[str, str]]
    result: ReportResult | None = None


class ReportCaptioner:
    """Turns (de-identified) report text into a caption for one organ's image."""

    def __init__(self, config: ReportConfig | None = None) -> None:
        self.config = config or ReportConfig()
        for heading, role in self.config.sections.items():
            if role not in ROLES:
                raise ValueError(f"reports.sections: {heading!r} has role {role!r}; use one of {ROLES}")
        self.roles = {_heading_key(h): r for h, r in self.config.sections.items()}
        self.counter = TokenCounter(self.config.tokenizer, self.config.budget)
        self._nlp: object | None = None
        self._nlp_note: str | None = None
        names = sorted(self.roles, key=len, reverse=True)
        alternatives = "|".join(
            re.escape(v) for n in names if n for v in dict.fromkeys((n, n.title(), n.capitalize()))
        )
        self._line_heading = re.compile(
            rf"^[ \t]*(?P<h>{alternatives})[ \t]*(?::|[ \t]*$)", re.MULTILINE
        )
        # The same matches after the first line: a match never spans a newline, and
        # a literal newline is searched for fast where ``^`` is tried at every position.
        self._next_line_heading = re.compile(
            rf"\n[ \t]*(?P<h>{alternatives})[ \t]*(?::|[ \t]*$)", re.MULTILINE
        )
        # The same matches as ``(?<=[.!?])[ \t]+...``: a heading always follows the
        # previous match's colon, and a literal first character is searched for fast.
        self._inline_heading = re.compile(rf"[.!?][ \t]+(?P<h>{alternatives})[ \t]*:")
        self._boilerplate = re.compile("|".join(f"(?:{p})" for p in BOILERPLATE), re.IGNORECASE)
        self._organ_of: dict[str, str] = {t: o for o, terms in ORGAN_TERMS.items() for t in terms}
        self._term = re.compile(
            r"(?<![\w-])(" + "|".join(sorted(map(re.escape, self._organ_of), key=len, reverse=True))
            + r")(?![\w-])",
            re.IGNORECASE,
        )
        self._memo: dict[tuple[str, str, str], tuple[str | None, int, int]] = {}
        self._facts: dict[str, tuple[str | None, frozenset[str], bool]] = {}
        self._costs: dict[str, int] = {}
        self._segmented: dict[str, list[str]] = {}
        self._normalised: dict[str, str] = {}
        self._lesion = re.compile(
            r"(?<![\w-])(" + "|".join(map(re.escape, LESION_TERMS)) + r")(?![\w-])", re.IGNORECASE
        )


    @property
    def nlp(self) -> object:
        """The sentence pipeline, loaded on first use (spaCy takes seconds to import)."""
        if self._nlp is None:
            self._nlp, self._nlp_note = _load_nlp(self.config.spacy_model)
        return self._nlp

    @property
    def nlp_note(self) -> str | None:
        self.nlp  # noqa: B018  (loads it)
        return self._nlp_note

    def caption(self, text: str | bytes | None, organ: str) -> ReportResult:
        """The caption of one report for an image of ``organ``."""
        return self.caption_many([(text, organ)])[0]

    def caption_many(self, texts: Iterable[tuple[str | bytes | None, str]]) -> list[ReportResult]:
        """Captions for many ``(report, organ)`` pairs.

        Sections are segmented in one ``nlp.pipe``; a section text seen before
        (reports repeat their impressions) reuses its sentences.
        """
        prepared = [self._prepare(text, organ) for text, organ in texts]
        todo = [(i, unit) for i, p in enumerate(prepared) if p.result is None for unit in p.units]
        fresh = list(dict.fromkeys(body for _, (_, body) in todo if body not in self._segmented))
        if len(self._segmented) + len(fresh) > MEMO_SIZE:
            self._segmented.clear()
        for body, doc in zip(fresh, self.nlp.pipe(fresh, batch_size=256), strict=True):
            self._segmented[body] = _sentences(doc, body)
        by_report: dict[int, list[tuple[str, list[str]]]] = {}
        for i, (role, body) in todo:
            by_report.setdefault(i, []).append((role, self._segmented[body]))
        return [
            p.result if p.result is not None else self._select(p, by_report.get(i, []))
            for i, p in enumerate(prepared)
        ]

    def _prepare(self, raw: str | bytes | None, organ: str) -> _Prepared:
        notes: list[str] = []
        if self.nlp_note:
            notes.append(self.nlp_note)
        text = _decode(raw, notes)
        prep = _Prepared(organ=organ, language="und", notes=notes, sections={}, dropped=[], units=[])
        if not text.strip():
            prep.result = ReportResult(None, "empty report", "und")
            return prep
        if len(text) > self.config.max_chars:
            notes.append(f"cut from {len(text)} to {self.config.max_chars} chars")
            text = _cut(text, self.config.max_chars)
        prep.sections, letterhead = self._sections(text)
        for heading, body in prep.sections.items():
            role = self.roles.get(heading, "other") if heading != HEADER_KEY else (
                "header" if letterhead else "other"
            )
            if role in CAPTION_ROLES:
                normal = self._normalised.get(body)
                if normal is None:
                    if len(self._normalised) >= MEMO_SIZE:
                        self._normalised.clear()
                    normal = self._normalised[body] = _normalise(_mark_lines(body))
                prep.units.append((role, normal))
            else:
                prep.dropped.append(f"{role}: section {heading or 'before the first heading'}")
        content = " ".join(body for _, body in prep.units)
        prep.language, _ = detect_language(content)
        if prep.language == "und":
            prep.language, _ = detect_language(text)
        if prep.language != "und" and prep.language not in self.config.languages:
            allowed = ", ".join(self.config.languages)
            prep.result = ReportResult(
                None, f"language {prep.language!r} not in [{allowed}]", prep.language,
                sections=prep.sections,
            )
        elif not prep.units:
            prep.result = ReportResult(
                None, "no findings or impression section", prep.language,
                dropped=prep.dropped, sections=prep.sections,
            )
        return prep

    def _sections(self, text: str) -> tuple[dict[str, str], bool]:
        """Heading -> body, and whether the text before the first heading is a letterhead.

        Text before a heading that opens a line is the letterhead; text before an
        inline heading (``... Impression: ...``) is part of the report body.
        """
        marks = [(m.start("h"), m.end(), m.group("h"), True) for m in self._next_line_heading.finditer(text)]
        first = self._line_heading.match(text)
        if first is not None:
            marks.append((first.start("h"), first.end(), first.group("h"), True))
        marks += [(m.start("h"), m.end(), m.group("h"), False) for m in self._inline_heading.finditer(text)]
        marks.sort()
        found: dict[str, str] = {}
        head = text[: marks[0][0]] if marks else text
        if head.strip():
            found[HEADER_KEY] = head.strip()
        for i, (_, end, name, _) in enumerate(marks):
            body = text[end : marks[i + 1][0] if i + 1 < len(marks) else len(text)].strip()
            if body:
                key = _heading_key(name)
                found[key] = f"{found[key]}\n{body}" if key in found else body
        return found, bool(marks) and marks[0][3]

    def _select(self, prep: _Prepared, units: list[tuple[str, list[str]]]) -> ReportResult:
        dropped = list(prep.dropped)
        candidates: list[tuple[int, int, str, int]] = []
        seen: set[str] = set()
        assess = self._assess
        organ = prep.organ
        for role, sentences in units:
            for sentence in sentences:
                why, rank, cost = assess(sentence, organ, role)
                if why is None:
                    low = sentence.lower()
                    if low in seen:
                        why = "duplicate"
                    else:
                        seen.add(low)
                        candidates.append((rank, len(candidates), sentence, cost))
                        continue
                dropped.append(f"{why}: {sentence}")
        budget = self.counter.budget
        used = 2
        chosen: list[tuple[int, str]] = []
        for _, order, sentence, cost in sorted(candidates):
            if used + cost > budget:
                dropped.append(f"over budget ({cost} tokens): {sentence}")
                continue
            used += cost
            chosen.append((order, sentence))
        kept = [s for _, s in sorted(chosen)]
        if not kept:
            reason = (
                "no sentence fits the token budget" if candidates
                else "no recognisable content (every sentence dropped)"
            )
            return ReportResult(None, reason, prep.language, [], dropped, prep.sections)
        text = " ".join(kept)
        if not self.counter.additive:
            used = self.counter.count(text)
        reasons: dict[str, int] = {}
        for d in dropped:
            reason = d.split(":", 1)[0].split(" (")[0]
            reasons[reason] = reasons.get(reason, 0) + 1
        summary = ", ".join(f"{k} {n}" for k, n in sorted(reasons.items()))
        note = "; ".join(
            [
                f"kept {len(kept)} of {len(kept) + len(dropped)} sentences/sections"
                + (f" (dropped: {summary})" if summary else ""),
                f"tokens {used}/{budget} ({self.counter.describe})",
                *prep.notes,
            ]
        )
        caption = Caption(source="report", text=text, provenance=Provenance(note=note))
        return ReportResult(caption, None, prep.language, kept, dropped, prep.sections)

    def _assess(self, sentence: str, organ: str, role: str) -> tuple[str | None, int, int]:
        """``(why dropped or None, rank, tokens without start/end)``, memoised: reports repeat sentences."""
        key = (sentence, organ, role)
        found = self._memo.get(key)
        if found is None:
            why = self._why_drop(sentence, organ)
            rank = self._rank(role, sentence, organ) if why is None else 0
            cost = self._cost(sentence) if why is None else 0
            if len(self._memo) >= MEMO_SIZE:
                self._memo.clear()
            found = self._memo[key] = (why, rank, cost)
        return found

    def _sentence_facts(self, sentence: str) -> tuple[str | None, frozenset[str], bool]:
        """What does not depend on the organ or role: ``(organ-free drop reason, organs named, names a lesion)``."""
        facts = self._facts.get(sentence)
        if facts is not None:
            return facts
        if sentence.isascii():
            low = sentence.lower()
            boilerplate = any(h in low for h in BOILERPLATE_HINTS) and self._boilerplate.search(sentence)
            runs = _RUN.findall(low)
            organ_of = self._organ_of
            organs = frozenset([organ_of[r] for r in runs if r in organ_of])
            lesion = not _LESION_SET.isdisjoint(runs)
        else:
            boilerplate = self._boilerplate.search(sentence)
            organs = frozenset([self._organ_of_match(m) for m in self._term.findall(sentence)])
            lesion = self._lesion.search(sentence) is not None
        if boilerplate:
            why: str | None = "boilerplate"
        elif any(h in sentence for h in _PLACEHOLDER_HINTS) and PLACEHOLDER.search(sentence):
            why = "placeholder"
        elif not _WORD.search(sentence):
            why = "no content"
        else:
            why = None
        if len(self._facts) >= MEMO_SIZE:
            self._facts.clear()
        facts = self._facts[sentence] = (why, organs, lesion)
        return facts

    def _organ_of_match(self, match: str) -> str:
        """The organ of a term matched case-insensitively (``ſpleen`` lower-cases to no term)."""
        organ = self._organ_of.get(match.lower())
        if organ is None:
            organ = next(
                o for t, o in self._organ_of.items() if re.fullmatch(re.escape(t), match, re.IGNORECASE)
            )
        return organ

    def _cost(self, sentence: str) -> int:
        cost = self._costs.get(sentence)
        if cost is None:
            if len(self._costs) >= MEMO_SIZE:
                self._costs.clear()
            cost = self._costs[sentence] = self.counter.count(sentence) - 2
        return cost

    def _why_drop(self, sentence: str, organ: str) -> str | None:
        why, organs, _ = self._sentence_facts(sentence)
        if why is not None:
            return why
        if organ not in organs and organs:
            return f"other organ: {min(organs)}"
        return None

    def _rank(self, role: str, sentence: str, organ: str) -> int:
        if role == "impression":
            return 0
        _, organs, lesion = self._sentence_facts(sentence)
        if lesion:
            return 1
        return 2 if organ in organs else 3


def _sentences(doc: Doc, text: str) -> list[str]:
    """Sentences of ``doc`` (made from ``text``), cut by its arrays rather than through ``doc.sents``."""
    from spacy.attrs import IDX, SENT_START

    if len(doc) == 0:
        return []
    rows = doc.to_array([SENT_START, IDX]).tolist()
    cuts = [0]
    cuts += [idx for start, idx in rows[1:] if start == 1]
    cuts.append(len(text))
    return [s for a, b in zip(cuts, cuts[1:], strict=False) if (s := text[a:b].strip())]


def _heading_key(name: str) -> str:
    return " ".join(name.split()).upper()


def _decode(raw: str | bytes | None, notes: list[str]) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    for encoding in ("utf-8", "cp1252"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if encoding != "utf-8":
            notes.append(f"decoded as {encoding}")
        return text.lstrip("\ufeff")
    notes.append("decoded as latin-1")
    return raw.decode("latin-1")


def _cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` chars at the last sentence end (else space) in its second half."""
    cut = text[:limit]
    stop = max(cut.rfind(". "), cut.rfind(".\n"), cut.rfind("? "), cut.rfind("! "))
    if stop > limit // 2:
        return cut[: stop + 1]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    return cut[:space] if space > limit // 2 else cut


def _mark_lines(body: str) -> str:
    """Join a section's lines; list items and paragraphs end their sentence."""
    lines = body.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        item = _LIST_MARK.match(line)
        text = line[item.end() :] if item else line
        text = text.strip()
        if not text:
            if out and not _ENDS_SENTENCE.search(out[-1]):
                out[-1] += "."
            continue
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if out and item and not _ENDS_SENTENCE.search(out[-1]):
            out[-1] += "."
        out.append(text)
        if (item or _LIST_MARK.match(nxt)) and not _ENDS_SENTENCE.search(text):
            out[-1] += "."
    return " ".join(out)


def _normalise(text: str) -> str:
    """Spaced measurements (``1.2 x 0.8 cm``, ``12 mm``) and spelled-out abbreviations."""
    text = _MEASURE.sub(_spaced, text)
    for keys, pattern, replacement in _ABBREVIATIONS:
        for key in keys:
            if key in text:
                text = pattern.sub(lambda m, r=replacement: _expand(m, r), text)
                break
    return _SPACES.sub(" ", text).strip()


def _spaced(match: re.Match[str]) -> str:
    unit = match.group("unit")
    return f"{match.group(1)} {unit}" if unit else f"{match.group(1)} x "


def _expand(match: re.Match[str], replacement: str) -> str:
    groups = match.groupdict()
    if groups.get("prefix"):
        replacement = groups["prefix"].lower() + "echoic"
    elif groups.get("side"):
        replacement = "right" if groups["side"][0] in "Rr" else "left"
    return _same_case(match.group(0), replacement)


def _same_case(original: str, replacement: str) -> str:
    if original[:1].isupper() and len(original) > 1 and not original[1:2].isupper():
        return replacement[:1].upper() + replacement[1:]
    return replacement


def _load_nlp(name: str | None) -> tuple[object, str | None]:
    import spacy

    note = None
    if name:
        try:
            nlp = spacy.load(name, exclude=["ner", "lemmatizer", "textcat"])
            if not any(p in nlp.pipe_names for p in ("parser", "senter", "sentencizer")):
                nlp.add_pipe("sentencizer")
            return nlp, None
        except OSError:
            note = f"spaCy model {name!r} not installed; used the blank English sentencizer"
    nlp = spacy.blank("en")
    nlp.tokenizer = ReportTokenizer(nlp.vocab)
    nlp.add_pipe("sentencizer")
    return nlp, note


class ReportTokenizer:
    """A regex tokenizer for report sentences: decimals, abbreviations and initials stay whole.

    Several times faster than spaCy's rule tokenizer, and enough for the
    sentencizer, which only needs ``.``/``!``/``?`` as tokens of their own.
    """

    # The abbreviations and initials are tried only where a run of at most six
    # letters ends in a full stop (each of them starts so): most words skip them.
    TOKEN = re.compile(
        r"(\d+(?:[.,:/]\d+)*"
        r"|(?=[^\W\d_]{1,6}+\.)"
        r"(?:(?i:e\.g\.|i\.e\.|vs\.|approx\.|cf\.|incl\.|esp\.|resp\.|dr\.|mr\.|mrs\.|ms\.|st\.|prof\.)"
        r"|(?:[^\W\d_]\.){2,})"
        r"|[^\W\d_]+(?:['’-][^\W\d_]+)*"
        r"|\S)( ?)"
    )

    def __init__(self, vocab: Vocab) -> None:
        from spacy.tokens import Doc

        self.vocab = vocab
        self._doc = Doc

    def __call__(self, text: str) -> Doc:
        pairs = self.TOKEN.findall(text)
        return self._doc(self.vocab, words=[w for w, _ in pairs], spaces=[bool(g) for _, g in pairs])

    def pipe(self, texts: Iterable[str], batch_size: int = 1000) -> Iterable[Doc]:
        for text in texts:
            yield self(text)
