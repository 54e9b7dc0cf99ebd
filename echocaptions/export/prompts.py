"""Zero-shot prompt sets (``train_min/zeroshot/*.json``) as CLIP_benchmark class names and templates.

A prompt set names, per organ (or per dataset, or by default), templates with a
``{}`` slot and one or more names per class; train_min's zero-shot score uses
every template with every name of a class. CLIP_benchmark's webdataset layout
has one name per class (``classnames.txt``) and one template list with a
``{c}`` slot (``zeroshot_classification_templates.txt``): they get the first
name of each class. The full ensemble, every template with every name, goes
to a ``--custom_template_file`` JSON per prompt set.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from echocaptions.export.build import ExportError
from echocaptions.resources import bundled_dir

# In a source checkout the prompt sets sit beside the package; an installed wheel does not carry them.
PRIMARY = "ultrasound"
_FALLBACK = {"templates": ["ultrasound of the {organ} showing {}."]}


@dataclass
class PromptSets:
    """The prompt sets read from a file or folder, by name (file stem); ``primary`` fills classnames.txt."""

    sets: dict[str, dict[str, Any]]
    primary: str
    digest: str
    ignored: list[str]


def load(path: Path | None) -> PromptSets:
    """Read one prompt-set JSON, or every ``*.json`` of a folder that has an ``organs`` table."""
    if path is None:
        try:
            source = bundled_dir("zeroshot")
        except FileNotFoundError as exc:
            raise ExportError(f"{exc}; or pass --prompts FILE_OR_FOLDER with zero-shot prompt sets") from exc
    else:
        source = Path(path)
    if not source.exists():
        where = "--prompts" if path is not None else f"the default prompt folder {source}"
        raise ExportError(
            f"{where}: not found; pass --prompts FILE_OR_FOLDER with zero-shot prompt sets "
            "(JSON files like train_min/zeroshot/ultrasound.json of a source checkout)"
        )
    files = [source] if source.is_file() else sorted(source.glob("*.json"))
    sets: dict[str, dict[str, Any]] = {}
    ignored: list[str] = []
    digest = hashlib.sha256()
    for file in files:
        raw = file.read_bytes()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ExportError(f"{file}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or not isinstance(data.get("organs"), dict):
            ignored.append(f"{file.name}: no 'organs' table, not a zero-shot prompt set")
            continue
        sets[file.stem] = data
        digest.update(file.name.encode() + b"\0" + raw + b"\0")
    if not sets:
        raise ExportError(
            f"{source}: no zero-shot prompt set (a JSON file with an 'organs' table) there"
            + (f"; ignored: {'; '.join(ignored)}" if ignored else "")
        )
    primary = PRIMARY if PRIMARY in sets else next(iter(sets))
    return PromptSets(sets, primary, digest.hexdigest(), ignored)


def entry(prompts: dict[str, Any], organ: str, dataset: str | None) -> dict[str, Any]:
    """A dataset's own entry when the set has one, else the organ's, else the default (as train_min)."""
    found = (prompts.get("datasets") or {}).get(dataset or "") or prompts["organs"].get(organ)
    return found or prompts.get("default") or _FALLBACK


def class_names(prompts: dict[str, Any], organ: str, label: str, dataset: str | None) -> list[str]:
    return (entry(prompts, organ, dataset).get("classes") or {}).get(label) or [label.replace("_", " ")]


def templates(prompts: dict[str, Any], organ: str, dataset: str | None) -> list[str]:
    """Templates with ``{organ}`` filled in and ``{}`` turned into CLIP_benchmark's ``{c}``."""
    out = []
    for template in entry(prompts, organ, dataset)["templates"]:
        pieces = template.replace("{organ}", organ).split("{}")
        out.append("{c}".join(p.replace("{", "{{").replace("}", "}}") for p in pieces))
    return out


def ensemble(prompts: dict[str, Any], organ: str, label: str, dataset: str | None) -> list[str]:
    """Every template with every name of the class: the prompts train_min averages."""
    return [t.format(c=name) for t in templates(prompts, organ, dataset)
            for name in class_names(prompts, organ, label, dataset)]


def classnames(prompts: dict[str, Any], organ: str, labels: Sequence[str], dataset: str | None) -> list[str]:
    """One name per class (its first), or the label names when first names would collide."""
    names = [class_names(prompts, organ, label, dataset)[0] for label in labels]
    return names if len(set(names)) == len(names) else [label.replace("_", " ") for label in labels]
