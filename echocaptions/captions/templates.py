"""Template captions: per-organ Jinja phrasings fed by a record's labels and findings.

Each organ has one template file (``thyroid.j2``) and one vocabulary file
(``vocab/thyroid.yaml``) that turns codes into clinical words. A template
defines its phrasings as macros named ``<level>_<n>``:

- ``findings_<n>``: the record holds structured descriptors (TI-RADS, BI-RADS,
  liver grades, lung signs);
- ``diagnosis_<n>``: the record holds a class label only;
- ``organ_<n>``: the record holds the organ (and maybe the view) only.

The richest level a record supports is used; the phrasing within it is picked
by a seeded hash of the record id, so every process and every run agrees.
Templates run in Jinja's sandbox with ``StrictUndefined``: a misspelled field
fails loudly with the template file and line. Only vocabulary words and
vocabulary-mapped views reach a caption, never free text from a source.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jinja2 import FileSystemLoader, StrictUndefined, Template, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import SandboxedEnvironment

from echocaptions.schema import (
    FINDINGS_BY_ORGAN,
    FINDINGS_VOCABULARY,
    LABELS,
    ORGANS,
    Caption,
    Provenance,
    SchemaError,
    check_label,
)

LEVELS: tuple[str, ...] = ("findings", "diagnosis", "organ")
TEMPLATE_SUFFIX = ".j2"
VOCAB_DIR = "vocab"
_MACRO_NAME = re.compile(r"^(findings|diagnosis|organ)_(\d+)$")


class TemplateError(ValueError):
    """A template or vocabulary file that cannot produce a caption; names the file."""


@dataclass(frozen=True)
class Vocabulary:
    """Clinical words for one organ's views, labels and finding codes."""

    path: Path
    organ: str
    views: dict[str, str]
    labels: dict[str, str]
    impressions: dict[str, str]
    findings: dict[str, dict[str, str]]
    negatives: dict[str, frozenset[str]]

    def missing(self, organ: str) -> list[str]:
        """Labels and finding codes of ``organ`` in the schema that have no words here."""
        gaps = [f"labels.{label}" for label in LABELS[organ] if label not in self.labels]
        gaps += [f"impressions.{label}" for label in LABELS[organ] if label not in self.impressions]
        for name in FINDINGS_BY_ORGAN[organ]:
            words = self.findings.get(name, {})
            gaps += [
                f"findings.{name}.{code}" for code in FINDINGS_VOCABULARY[name] if code not in words
            ]
        return gaps


def load_vocabulary(path: Path) -> Vocabulary:
    """Read a vocabulary YAML file; codes and words are kept as strings."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TemplateError(f"{path}: expected a mapping with organ, labels, impressions, findings")

    def mapping(value: Any, where: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise TemplateError(f"{path}: {where} must map codes to words")
        return {str(k): str(v) for k, v in value.items()}

    findings_raw = data.get("findings") or {}
    if not isinstance(findings_raw, dict):
        raise TemplateError(f"{path}: findings must map each field to a code -> words mapping")
    negatives_raw = data.get("negatives") or {}
    if not isinstance(negatives_raw, dict):
        raise TemplateError(f"{path}: negatives must map each field to a list of codes")
    return Vocabulary(
        path=path,
        organ=str(data.get("organ") or path.stem),
        views=mapping(data.get("views"), "views"),
        labels=mapping(data.get("labels"), "labels"),
        impressions=mapping(data.get("impressions"), "impressions"),
        findings={
            str(name): mapping(codes, f"findings.{name}") for name, codes in findings_raw.items()
        },
        negatives={
            str(name): frozenset(str(c) for c in codes or ())
            for name, codes in negatives_raw.items()
        },
    )


def join_and(items: Any) -> str:
    """``a``, ``a and b``, ``a, b and c``; empty and missing items are skipped."""
    words = [str(item) for item in items if item]
    if len(words) < 2:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def with_article(phrase: Any) -> Any:
    """Prefix the indefinite article (``a``/``an``); empty input stays empty."""
    if not phrase:
        return phrase
    text = str(phrase)
    first = text.split(" ", 1)[0].lower()
    vowel = first[0] in "aeiou" and not first.startswith(("uni", "use", "one"))
    return ("an " if vowel else "a ") + text


_DEBRIS = re.compile(
    r"\s+(?=[,.;:)])"
    r"|\(\s*\)"
    r"|[,;:]+\s*(?=\.)"
    r"|\b(?:and|or|with|of|on|showing)\s*(?=[,;:.])",
    re.IGNORECASE,
)
_PUNCT_RUN = re.compile(r"([,;:])(?:\s*[,;:])+")


def clean_caption(text: str) -> str:
    """One clean sentence: single spaces, no dangling commas or conjunctions, a final period."""
    text = " ".join(text.split())
    changed = 1
    while changed:
        text, removed = _DEBRIS.subn("", text)
        text, changed = _PUNCT_RUN.subn(r"\1", text)
        changed += removed
    text = text.strip(" ,;:.")
    if not text:
        return ""
    return text[0].upper() + text[1:] + "."


@dataclass
class _OrganTemplate:
    name: str
    template: Template
    macros: dict[str, list[tuple[int, str]]]
    vocab: Vocabulary


def _variant_index(seed: int, level: str, record_id: str, count: int) -> int:
    key = f"{seed}\x1f{level}\x1f{record_id}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") % count


class TemplateCaptioner:
    """Deterministic template captions for records of any bundled organ.

    ``template_dir`` holds ``<organ>.j2`` files and, optionally,
    ``vocab/<organ>.yaml`` (the bundled vocabulary is used where a folder has
    none). Templates are parsed and compiled once, when the captioner is made.
    """

    def __init__(self, template_dir: Path | None = None, seed: int = 0) -> None:
        from echocaptions.resources import bundled_dir

        bundled = bundled_dir("templates")
        self.template_dir = Path(template_dir) if template_dir is not None else bundled
        self.seed = int(seed)
        if not self.template_dir.is_dir():
            raise FileNotFoundError(
                f"template folder {self.template_dir} does not exist; pass a folder holding "
                f"<organ>{TEMPLATE_SUFFIX} files, or None for the bundled templates"
            )
        self._env = SandboxedEnvironment(
            loader=FileSystemLoader(str(self.template_dir)),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["join_and"] = join_and
        self._env.filters["a"] = with_article
        self._organs: dict[str, _OrganTemplate] = {}
        for organ in ORGANS:
            path = self.template_dir / f"{organ}{TEMPLATE_SUFFIX}"
            if path.is_file():
                vocab_path = self.template_dir / VOCAB_DIR / f"{organ}.yaml"
                if not vocab_path.is_file():
                    vocab_path = bundled / VOCAB_DIR / f"{organ}.yaml"
                self._organs[organ] = self._load(path, load_vocabulary(vocab_path))
        if not self._organs:
            raise FileNotFoundError(
                f"no caption templates in {self.template_dir}; expected files named "
                + ", ".join(f"{o}{TEMPLATE_SUFFIX}" for o in ORGANS)
            )

    @property
    def organs(self) -> tuple[str, ...]:
        """Organs this captioner has a template for."""
        return tuple(self._organs)

    def variants(self, organ: str, level: str) -> list[int]:
        """Phrasing numbers a template defines for ``level``."""
        return [number for number, _ in self._organ(organ).macros[level]]

    def _load(self, path: Path, vocab: Vocabulary) -> _OrganTemplate:
        name = path.name
        try:
            source = path.read_text(encoding="utf-8")
            tree = self._env.parse(source, name, str(path))
            code = self._env.compile(tree, name, str(path))
            template = self._env.template_class.from_code(
                self._env, code, self._env.make_globals(None)
            )
        except JinjaTemplateError as exc:
            line = getattr(exc, "lineno", None)
            raise TemplateError(f"{path}:{line}: {exc}") from exc
        macros: dict[str, list[tuple[int, str]]] = {level: [] for level in LEVELS}
        for node in tree.body:
            match = isinstance(node, nodes.Macro) and _MACRO_NAME.match(node.name)
            if match:
                macros[match.group(1)].append((int(match.group(2)), node.name))
        for level in LEVELS:
            macros[level].sort()
        if not macros["organ"]:
            raise TemplateError(
                f"{path}: defines no organ_<n> macro; every template needs at least "
                "organ_0, the phrasing used when a record holds only its organ and view"
            )
        return _OrganTemplate(name=name, template=template, macros=macros, vocab=vocab)

    def _organ(self, organ: str) -> _OrganTemplate:
        try:
            return self._organs[organ]
        except KeyError:
            if organ not in ORGANS:
                raise SchemaError(f"organ {organ!r} is not one of {ORGANS}") from None
            raise TemplateError(
                f"no template for {organ}: add {self.template_dir / (organ + TEMPLATE_SUFFIX)}"
            ) from None

    def _context(
        self,
        entry: _OrganTemplate,
        organ: str,
        label: str | None,
        findings: dict[str, str | None],
        view: str | None,
        dataset: str | None,
    ) -> dict[str, Any]:
        vocab = entry.vocab
        fields = FINDINGS_BY_ORGAN[organ]
        code: dict[str, str | None] = dict.fromkeys(fields)
        words: dict[str, str | None] = dict.fromkeys(fields)
        present: dict[str, str | None] = dict.fromkeys(fields)
        for name, value in findings.items():
            if value is None or value == "":
                continue
            if name not in code:
                raise SchemaError(f"finding {name!r} does not apply to {organ}; allowed: {fields}")
            value = str(value)
            phrase = vocab.findings.get(name, {}).get(value)
            if phrase is None:
                if value not in FINDINGS_VOCABULARY[name]:
                    raise SchemaError(
                        f"finding {name}={value!r} is not one of {FINDINGS_VOCABULARY[name]}"
                    )
                raise TemplateError(
                    f"{vocab.path}: no words for {name}={value!r}; add it under findings.{name}"
                )
            code[name] = value
            words[name] = phrase
            if value not in vocab.negatives.get(name, ()):
                present[name] = phrase
        label_text = impression = None
        if label is not None:
            label_text = vocab.labels.get(label)
            impression = vocab.impressions.get(label)
            if label_text is None or impression is None:
                part = "labels" if label_text is None else "impressions"
                raise TemplateError(
                    f"{vocab.path}: no words for label {label!r}; add it under {part}"
                )
        view_text = None
        if view:
            view_text = vocab.views.get(view.strip().lower().replace("-", "_").replace(" ", "_"))
        return {
            "organ": organ,
            "organ_text": vocab.organ,
            "view": view_text,
            "label": label,
            "label_text": label_text,
            "impression": impression,
            "f": words,
            "present": present,
            "code": code,
            "dataset": dataset,
        }

    def _render(self, entry: _OrganTemplate, macro: str, context: dict[str, Any]) -> str:
        template = entry.template
        try:
            ctx = template.new_context({**self._env.globals, **context}, shared=True)
            for _ in template.root_render_func(ctx):
                pass
            return str(ctx.vars[macro]())
        except Exception as exc:
            line = None
            for frame, lineno in traceback.walk_tb(exc.__traceback__):
                if frame.f_code.co_filename == template.filename:
                    line = template.get_corresponding_lineno(lineno)
            where = self.template_dir / entry.name
            raise TemplateError(
                f"{where}:{line}: {type(exc).__name__} while rendering {macro}: {exc}"
            ) from exc

    def caption(
        self,
        *,
        record_id: str,
        organ: str,
        label: str | None,
        findings: dict[str, str | None],
        view: str | None = None,
        dataset: str | None = None,
    ) -> Caption:
        """Caption one record at the richest level its metadata supports.

        The first of :meth:`captions` with ``count=1``.
        """
        return self.captions(
            record_id=record_id,
            organ=organ,
            label=label,
            findings=findings,
            view=view,
            dataset=dataset,
            count=1,
        )[0]

    def captions(
        self,
        *,
        record_id: str,
        organ: str,
        label: str | None,
        findings: dict[str, str | None],
        view: str | None = None,
        dataset: str | None = None,
        count: int = 1,
    ) -> list[Caption]:
        """Up to ``count`` distinct phrasings at the richest level the metadata supports.

        The first is the phrasing picked by the hash of the record id and seed
        (what :meth:`caption` returns); the others follow it in the template's
        order, so a record with K captions keeps its single caption first.
        """
        check_label(organ, label)
        entry = self._organ(organ)
        context = self._context(entry, organ, label, findings or {}, view, dataset)
        macros = entry.macros
        if macros["findings"] and any(context["present"].values()):
            level = "findings"
        elif macros["diagnosis"] and label is not None:
            level = "diagnosis"
        else:
            level = "organ"
        choices = macros[level]
        first = _variant_index(self.seed, level, record_id, len(choices))
        out: list[Caption] = []
        seen: set[str] = set()
        for step in range(len(choices)):
            if len(out) >= count:
                break
            number, macro = choices[(first + step) % len(choices)]
            text = clean_caption(self._render(entry, macro, context))
            if not text:
                raise TemplateError(
                    f"{self.template_dir / entry.name}: macro {macro} rendered an empty caption"
                )
            if text in seen:
                continue
            seen.add(text)
            out.append(
                Caption(
                    source="template",
                    text=text,
                    provenance=Provenance(template=entry.name, level=level, variant=number, seed=self.seed),
                )
            )
        return out

    def preview(self, organ: str, n: int) -> list[Caption]:
        """``n`` example captions for ``organ`` from made-up records, cycling through levels."""
        rng = random.Random(f"{self.seed}-{organ}")
        fields = FINDINGS_BY_ORGAN[organ]
        out: list[Caption] = []
        for i, level in zip(range(n), itertools.cycle(LEVELS)):
            findings: dict[str, str | None] = {}
            if level == "findings":
                chosen = rng.sample(fields, k=rng.randint(1, len(fields)))
                findings = {name: rng.choice(FINDINGS_VOCABULARY[name]) for name in chosen}
            label = None if level == "organ" else rng.choice(LABELS[organ])
            view = rng.choice([None, *self._organ(organ).vocab.views])
            out.append(
                self.caption(
                    record_id=f"preview-{organ}-{i}",
                    organ=organ,
                    label=label,
                    findings=findings,
                    view=view,
                )
            )
        return out
