"""The one record schema every source is normalised into.

A row of the published dataset is a :class:`Record`. Sources yield
:class:`SourceItem` (metadata only, no pixels); the image stage turns each into
a record or a :class:`Reject`. The same schema is exposed as
``datasets.Features`` (:func:`hf_features`) and as an Arrow schema carrying
those features in its metadata (:func:`arrow_schema`), so Parquet written by
the build opens with ``datasets.load_dataset`` and decodes its images.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

ORGANS: tuple[str, ...] = ("breast", "thyroid", "liver", "lung")

# Normalised class labels per organ. ``normal`` always means "no disease of
# interest in this image". The published ClassLabel is the union, in this order.
LABELS: dict[str, tuple[str, ...]] = {
    "breast": ("normal", "benign", "malignant"),
    "thyroid": ("normal", "benign", "malignant"),
    "liver": ("normal", "benign", "malignant", "steatosis", "fibrosis", "cirrhosis"),
    "lung": ("normal", "covid", "pneumonia", "viral_pneumonia"),
}
LABEL_NAMES: tuple[str, ...] = (
    "normal",
    "benign",
    "malignant",
    "steatosis",
    "fibrosis",
    "cirrhosis",
    "covid",
    "pneumonia",
    "viral_pneumonia",
)

# Structured findings: one flat struct of optional strings, grouped by prefix.
# Values are the codes of VOCABULARY below; a source maps its own spellings.
FINDINGS_VOCABULARY: dict[str, tuple[str, ...]] = {
    # Breast: ACR BI-RADS ultrasound lexicon (5th edition).
    "birads_category": ("0", "1", "2", "3", "4", "4a", "4b", "4c", "5", "6"),
    "birads_tissue": ("homogeneous_fat", "homogeneous_fibroglandular", "heterogeneous"),
    "birads_shape": ("oval", "round", "irregular"),
    "birads_orientation": ("parallel", "not_parallel"),
    "birads_margin": ("circumscribed", "indistinct", "angular", "microlobulated", "spiculated"),
    "birads_echo_pattern": (
        "anechoic",
        "hyperechoic",
        "complex_cystic_solid",
        "hypoechoic",
        "isoechoic",
        "heterogeneous",
    ),
    "birads_posterior": ("none", "enhancement", "shadowing", "combined"),
    # indeterminate: the reader could not tell (BrEaST's "indefinable")
    "birads_calcifications": ("none", "in_mass", "outside_mass", "intraductal", "indeterminate"),
    # Thyroid: ACR TI-RADS (2017) feature groups, plus the older Kwak categories.
    "tirads_category": ("1", "2", "3", "4", "4a", "4b", "4c", "5"),
    "tirads_composition": ("cystic", "spongiform", "mixed", "solid"),
    "tirads_echogenicity": ("anechoic", "hyperechoic", "isoechoic", "hypoechoic", "very_hypoechoic"),
    "tirads_shape": ("wider_than_tall", "taller_than_wide"),
    "tirads_margin": ("smooth", "ill_defined", "lobulated", "irregular", "extrathyroidal_extension"),
    "tirads_foci": ("none", "comet_tail", "macrocalcifications", "peripheral", "punctate"),
    # Liver.
    "liver_steatosis": ("S0", "S1", "S2", "S3"),
    "liver_fibrosis": ("F0", "F1", "F2", "F3", "F4"),
    "liver_lesion": ("none", "cyst", "haemangioma", "fnh", "hcc", "metastasis", "mass"),
    # Lung (point of care).
    "lung_a_lines": ("present", "absent"),
    "lung_b_lines": ("absent", "few", "multiple", "confluent"),
    "lung_consolidation": ("absent", "present", "subpleural", "lobar"),
    "lung_effusion": ("absent", "present"),
    "lung_pleural_line": ("smooth", "irregular", "thickened", "fragmented"),
    "lung_sliding": ("present", "absent"),
}
FINDINGS_FIELDS: tuple[str, ...] = tuple(FINDINGS_VOCABULARY)
FINDINGS_BY_ORGAN: dict[str, tuple[str, ...]] = {
    "breast": tuple(f for f in FINDINGS_FIELDS if f.startswith("birads_")),
    "thyroid": tuple(f for f in FINDINGS_FIELDS if f.startswith("tirads_")),
    "liver": tuple(f for f in FINDINGS_FIELDS if f.startswith("liver_")),
    "lung": tuple(f for f in FINDINGS_FIELDS if f.startswith("lung_")),
}

CAPTION_SOURCES: tuple[str, ...] = ("report", "template", "llm")
# Item facts a source records in ``extra`` that reach ``caption_meta.flags`` (comma-separated):
# a DICOM header saying the pixels show text; a label its publisher marks as uncertain.
# Report corpus items add ``organ_from=<rule>`` (key, label, folder or option).
ROW_FLAGS: tuple[str, ...] = ("burned_in_annotation", "label_uncertain")
ROLES: tuple[str, ...] = ("train", "eval")


class SchemaError(ValueError):
    """A value outside the documented vocabulary."""


def check_label(organ: str, label: str | None) -> None:
    if organ not in ORGANS:
        raise SchemaError(f"organ {organ!r} is not one of {ORGANS}")
    if label is not None and label not in LABELS[organ]:
        raise SchemaError(
            f"label {label!r} is not in the {organ} vocabulary {LABELS[organ]}"
        )


def check_findings(organ: str, findings: dict[str, str | None]) -> None:
    allowed = FINDINGS_BY_ORGAN[organ]
    for key, value in findings.items():
        if key not in allowed:
            raise SchemaError(f"finding {key!r} does not apply to {organ}; allowed: {allowed}")
        if value is not None and value not in FINDINGS_VOCABULARY[key]:
            raise SchemaError(
                f"finding {key}={value!r} is not one of {FINDINGS_VOCABULARY[key]}"
            )


def phash_hex(value: int) -> str:
    """A signed 64-bit perceptual hash as 16 hex digits."""
    return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"


def build_key(dataset: str, value: str | None) -> str | None:
    """A patient or study id unique across a build: ``<dataset>:<the dataset's own id>``.

    Datasets number their patients independently (``7`` in DDTI and ``7`` in
    BUS-BRA are different people), so the published ``patient_id`` and
    ``study_id`` carry the dataset as a prefix; the dataset's own value is the
    part after the first ``:``.
    """
    return None if value is None or value == "" else f"{dataset}:{value}"


def make_id(dataset: str, source_path: str, frame: int | None = None) -> str:
    """Stable record id: dataset, source path and frame, hashed to 16 hex digits."""
    key = f"{dataset}\x1f{source_path}\x1f{'' if frame is None else frame}"
    return f"{dataset}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@dataclass
class SourceItem:
    """One image (or one video / volume to sample frames from) as a source lists it.

    ``path`` is absolute for reading; ``source_path`` is relative to the source
    root and is what reaches the output. ``frame`` picks one frame of a
    multi-frame file; ``None`` with ``expand`` set asks the image stage to
    sample frames (videos) by the recipe's rule.
    """

    source: str
    dataset: str
    organ: str
    path: str
    source_path: str
    label: str | None = None
    patient_id: str | None = None
    study_id: str | None = None
    frame: int | None = None
    expand: bool = False
    view: str | None = None
    findings: dict[str, str | None] = field(default_factory=dict)
    report: str | None = None
    license: str | None = None
    split_hint: str | None = None
    role: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return make_id(self.dataset, self.source_path, self.frame)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceItem:
        return cls(**data)


@dataclass
class Reject:
    """An item that did not become a row, and why."""

    source: str
    path: str
    reason: str
    stage: str = "enumerate"
    detail: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Provenance:
    """Where a caption came from. Fields that do not apply stay ``None``."""

    template: str | None = None
    level: str | None = None
    variant: int | None = None
    prompt_id: str | None = None
    prompt_version: str | None = None
    model: str | None = None
    seed: int | None = None
    temperature: float | None = None
    cached: bool | None = None  # answered from the request cache; not published (see to_row)
    note: str | None = None


@dataclass
class Caption:
    source: str
    text: str
    provenance: Provenance = field(default_factory=Provenance)

    def to_row(self) -> dict[str, Any]:
        """The published form: ``cached`` is left out, so a rerun that pays for nothing
        writes the same bytes as the build that paid."""
        provenance = {k: v for k, v in asdict(self.provenance).items() if k in PROVENANCE_FIELDS}
        return {"source": self.source, "text": self.text, **provenance}


@dataclass
class Record:
    """One published row."""

    id: str
    image: bytes
    organ: str
    dataset: str
    source_path: str
    width: int
    height: int
    sha256: str
    phash: str = ""
    split: str = "train"
    frame: int | None = None
    view: str | None = None
    patient_id: str | None = None
    study_id: str | None = None
    label: str | None = None
    findings: dict[str, str | None] = field(default_factory=dict)
    findings_source: str | None = None
    report: str | None = None
    report_language: str | None = None
    caption: str = ""
    caption_source: str = ""
    captions: list[Caption] = field(default_factory=list)
    caption_meta: dict[str, Any] = field(default_factory=dict)
    license: str | None = None


@dataclass(frozen=True)
class Field:
    """One published column: its name, its ``datasets`` feature, and how the README describes it.

    ``feature`` builds the feature on call (``datasets`` is imported lazily);
    ``type_text`` and ``meaning`` are the README's "type" and "meaning" cells.
    """

    name: str
    feature: Callable[[], Any]
    type_text: str
    meaning: str


def _value(dtype: str) -> Callable[[], Any]:
    def make():
        from datasets import Value

        return Value(dtype)

    return make


def _image():
    from datasets import Image

    return Image()


def _class_label(names: tuple[str, ...]) -> Callable[[], Any]:
    def make():
        from datasets import ClassLabel

        return ClassLabel(names=list(names))

    return make


def _provenance() -> dict[str, Any]:
    from datasets import Value

    return {name: Value(dtype) for name, dtype in PROVENANCE_FIELDS.items()}


def _findings():
    from datasets import Value

    return {name: Value("string") for name in FINDINGS_FIELDS}


def _captions():
    from datasets import List, Value

    return List({"source": Value("string"), "text": Value("string"), **_provenance()})


def _caption_meta():
    from datasets import Value

    return {
        "policy": Value("string"),
        "chosen": Value("string"),
        "fallback": Value("string"),
        "flags": Value("string"),
        **_provenance(),
    }


# The published columns, in table order: COLUMNS, hf_features() and the README's
# schema table (schema_markdown()) all come from here.
FIELDS: tuple[Field, ...] = (
    Field("id", _value("string"), "string", "stable id: dataset + hash of source path and frame"),
    Field(
        "image", _image, "Image (PNG bytes)",
        "8-bit grayscale unless the source is colour; long side ≤ `image.max_side`",
    ),
    Field("organ", _class_label(ORGANS), "ClassLabel", ", ".join(ORGANS)),
    Field("dataset", _value("string"), "string", "the source dataset"),
    Field("source_path", _value("string"), "string", "path relative to the source root"),
    Field("frame", _value("int32"), "int32", "frame index for videos and multi-frame files, else null"),
    Field("view", _value("string"), "string", "probe or view when the layout says (e.g. convex, linear)"),
    Field(
        "patient_id", _value("string"), "string",
        "`<dataset>:<the dataset's own patient id>`, unique across the build (datasets number their patients "
        "independently); only when the layout has one — never invented",
    ),
    Field("study_id", _value("string"), "string", "`<dataset>:<study / case / nodule id>` when the layout has one"),
    Field("label", _class_label(LABEL_NAMES), "ClassLabel", "normalised class (vocabulary below)"),
    Field("findings", _findings, "struct of strings", "structured descriptors (below)"),
    Field(
        "findings_source", _value("string"), "string",
        "where `findings` came from: `layout`, `report` or `layout+report`",
    ),
    Field(
        "report", _value("string"), "string",
        "the expert report, de-identified; null when the recipe sets `reports.publish: false`",
    ),
    Field("report_language", _value("string"), "string", "detected language of the report (ISO 639-1)"),
    Field("caption", _value("string"), "string", "the chosen caption"),
    Field("caption_source", _value("string"), "string", "`report`, `template` or `llm`"),
    Field(
        "captions", _captions, "list of struct",
        "every candidate: source, text and provenance (template file, level, variant, prompt id/version, "
        "model, seed, temperature, note)",
    ),
    Field(
        "caption_meta", _caption_meta, "struct",
        "policy, chosen tier, why earlier tiers were skipped, the chosen provenance, and `flags` "
        "(comma-separated: `burned_in_annotation`, `label_uncertain` for POCUS clips without a PCR test, "
        "`organ_from=<rule>` for report corpus rows)",
    ),
    Field("width", _value("int32"), "int32", "pixels"),
    Field("height", _value("int32"), "int32", "pixels"),
    Field("sha256", _value("string"), "string", "hash of the decoded pixels (mode, size, bytes)"),
    Field("phash", _value("string"), "string", "64-bit perceptual hash of the image content, 16 hex digits"),
    Field("license", _value("string"), "string", "licence of the source"),
    Field("split", _value("string"), "string", "the split the row is in"),
)

# Column order of the published table.
COLUMNS: tuple[str, ...] = tuple(f.name for f in FIELDS)

PROVENANCE_FIELDS: dict[str, str] = {
    "template": "string",
    "level": "string",
    "variant": "int32",
    "prompt_id": "string",
    "prompt_version": "string",
    "model": "string",
    "seed": "int64",
    "temperature": "float32",
    "note": "string",
}


def hf_features():
    """The published schema as ``datasets.Features``, in :data:`FIELDS` order."""
    from datasets import Features

    return Features({f.name: f.feature() for f in FIELDS})


def schema_markdown() -> str:
    """The README's schema table (``| column | type | meaning |``), rendered from :data:`FIELDS`.

    Neighbouring fields with the same type and meaning share a row (``width``, ``height``).
    """
    rows: list[tuple[list[str], str, str]] = []
    for f in FIELDS:
        if rows and rows[-1][1:] == (f.type_text, f.meaning):
            rows[-1][0].append(f.name)
        else:
            rows.append(([f.name], f.type_text, f.meaning))
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| {', '.join(f'`{n}`' for n in names)} | {kind} | {meaning} |" for names, kind, meaning in rows]
    return "\n".join(lines) + "\n"


def arrow_schema():
    """Arrow schema of the Parquet shards, with the HF features in its metadata."""
    return hf_features().arrow_schema


def record_to_row(record: Record) -> dict[str, Any]:
    """A record as a dict in Arrow storage form (class labels as indices)."""
    findings = {name: record.findings.get(name) for name in FINDINGS_FIELDS}
    meta = {
        "policy": None,
        "chosen": None,
        "fallback": None,
        "flags": None,
        **{name: None for name in PROVENANCE_FIELDS},
    }
    meta.update({k: v for k, v in record.caption_meta.items() if k in meta})
    return {
        "id": record.id,
        "image": {"bytes": record.image, "path": None},
        "organ": ORGANS.index(record.organ),
        "dataset": record.dataset,
        "source_path": record.source_path,
        "frame": record.frame,
        "view": record.view,
        "patient_id": record.patient_id,
        "study_id": record.study_id,
        "label": -1 if record.label is None else LABEL_NAMES.index(record.label),
        "findings": findings,
        "findings_source": record.findings_source,
        "report": record.report,
        "report_language": record.report_language,
        "caption": record.caption,
        "caption_source": record.caption_source,
        "captions": [c.to_row() for c in record.captions],
        "caption_meta": meta,
        "width": record.width,
        "height": record.height,
        "sha256": record.sha256,
        "phash": record.phash,
        "license": record.license,
        "split": record.split,
    }
