"""Recipes: validated YAML that says what to build and how.

A recipe names its sources (layout, folder under a data root, role), the
caption policy, split fractions, seed and output options. Command-line
overrides (``--data-root``, ``--source NAME=PATH``, ``--out``,
``--set key=value``) are applied before validation, so a bad override fails
with the same clear message as a bad file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from echocaptions.resources import bundled_dir
from echocaptions.schema import CAPTION_SOURCES, ORGANS

DATA_ROOT_ENV = "ECHOCAPTIONS_DATA_ROOT"


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file, the key and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_]+$")
    layout: str
    path: str
    role: Literal["train", "eval"] = "train"
    optional: bool = False
    organs: list[Literal["breast", "thyroid", "liver", "lung"]] | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)


class LLMSpec(_Strict):
    """A vLLM (or any OpenAI-compatible) server for the LLM caption tier."""

    # One URL, or a list of identical servers (same model) balanced by requests in flight.
    base_url: str | list[str]
    model: str
    api_key_env: str | None = None
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=96, ge=8)
    seed: int = 0
    concurrency: int = Field(default=8, ge=1)
    timeout: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    captions_per_image: int = Field(default=1, ge=1)
    prompt: str = "caption"
    prompt_dir: str | None = None
    structured: Literal["auto", "json_schema", "off"] = "auto"
    validation_retries: int = Field(default=2, ge=0)
    min_words: int = Field(default=5, ge=1)
    max_words: int = Field(default=60, ge=2)
    with_report: bool = False
    # When no server answers at the start, build anyway: every row falls back
    # to the next tier with the reason (instead of stopping before any work).
    optional: bool = False

    @field_validator("base_url")
    @classmethod
    def _urls(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and (not value or len(set(value)) != len(value)):
            raise ValueError("a list of base URLs needs at least one URL and no URL twice")
        return value


class CaptionSpec(_Strict):
    policy: list[Literal["report", "llm", "template"]] = Field(
        default_factory=lambda: ["report", "template"]
    )
    template_dir: str | None = None
    # Distinct template phrasings kept per image (the first is `caption`'s);
    # more than one feeds the template_multi strategy of train_min.
    template_variants: int = Field(default=1, ge=1, le=16)

    @field_validator("policy")
    @classmethod
    def _policy_not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"policy must name at least one of {CAPTION_SOURCES}")
        if len(set(value)) != len(value):
            raise ValueError("policy names a caption source twice")
        return value


class ReportSpec(_Strict):
    """How expert reports become captions; they are always de-identified first."""

    publish: bool = True
    tokenizer: str = "clip"
    budget: int | None = Field(default=None, ge=8)
    languages: list[str] = Field(default_factory=lambda: ["en"])
    sections: dict[str, Literal["impression", "findings", "history", "technique", "comparison", "other"]] = Field(
        default_factory=dict
    )
    spacy_model: str | None = None
    ner: Literal["auto", "on", "off"] = "off"
    fill_findings: bool = True
    # Reports in a language outside `languages` are translated to English by
    # the llm block's server (de-identified text only) instead of falling back.
    translate: bool = False
    translate_max_tokens: int = Field(default=512, ge=16)

    @field_validator("tokenizer")
    @classmethod
    def _tokenizer(cls, value: str) -> str:
        if value not in ("clip", "bert") and not value.startswith("bert:"):
            raise ValueError(f"tokenizer {value!r}: allowed values: 'clip', 'bert', 'bert:/path/to/tokenizer'")
        return value


class SplitSpec(_Strict):
    train: float = Field(default=0.8, ge=0.0, le=1.0)
    validation: float = Field(default=0.1, ge=0.0, le=1.0)
    test: float = Field(default=0.1, ge=0.0, le=1.0)
    respect_official: bool = True

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitSpec:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must sum to 1.0, got {total:g}")
        return self


class DedupSpec(_Strict):
    """Near-duplicate removal across all sources of a build."""

    enabled: bool = True
    max_hamming: int = Field(default=4, ge=0, le=31)
    keep: list[Literal["eval", "report", "larger", "first"]] = Field(
        default_factory=lambda: ["eval", "report", "larger"]
    )
    keep_label_conflicts: bool = False


class ImageSpec(_Strict):
    max_side: int | None = Field(default=512, ge=32)
    grayscale: Literal["auto", "always", "never"] = "auto"
    crop_sector: bool = False
    drop_burned_in: bool = False


class VideoSpec(_Strict):
    fps: float = Field(default=1.0, gt=0)
    max_frames: int = Field(default=8, ge=1)


class OutputSpec(_Strict):
    dir: str | None = None
    rows_per_shard: int = Field(default=2000, ge=1)
    shard_items: int = Field(default=256, ge=1)
    license: str = "other"
    pretty_name: str | None = None
    # One Hugging Face config per caption strategy under strategies/{name}/.
    strategy_configs: bool = True
    # Embed the images in the strategy configs too (one more copy per strategy).
    strategy_images: bool = False


class SynthSpec(_Strict):
    """Phantom data generated into the data root when that root is empty (demo)."""

    per_class: int = Field(default=8, ge=1)
    seed: int = 0
    organs: list[Literal["breast", "thyroid", "liver", "lung"]] = Field(
        default_factory=lambda: list(ORGANS)
    )
    size: tuple[int, int] = (256, 320)


class ExecutorSpec(_Strict):
    """Where the image stage runs; ``--executor`` and ``--ray-address`` override it."""

    name: Literal["local", "ray"] = "local"
    # Ray only: HOST:PORT of the head (``ray start --head``), ``auto``, or none for a private Ray.
    address: str | None = None
    cpus_per_task: float = Field(default=1.0, gt=0)
    gpus_per_task: float = Field(default=0.0, ge=0)
    max_retries: int = Field(default=3, ge=0)


class Recipe(_Strict):
    name: str
    description: str = ""
    seed: int = 0
    data_root: str | None = None
    sources: list[SourceSpec]
    captions: CaptionSpec = Field(default_factory=CaptionSpec)
    splits: SplitSpec = Field(default_factory=SplitSpec)
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    image: ImageSpec = Field(default_factory=ImageSpec)
    video: VideoSpec = Field(default_factory=VideoSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)
    reports: ReportSpec = Field(default_factory=ReportSpec)
    llm: LLMSpec | None = None
    synth: SynthSpec | None = None
    executor: ExecutorSpec | None = None

    @model_validator(mode="after")
    def _llm_needs_a_server(self) -> Recipe:
        if "llm" in self.captions.policy and self.llm is None:
            raise ValueError(
                "captions.policy names llm but the recipe has no llm block "
                "(llm: {base_url: http://127.0.0.1:8000/v1, model: NAME})"
            )
        if self.reports.translate and self.llm is None:
            raise ValueError(
                "reports.translate is true but the recipe has no llm block to translate with "
                "(llm: {base_url: http://127.0.0.1:8000/v1, model: NAME})"
            )
        return self

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: list[SourceSpec]) -> list[SourceSpec]:
        if not value:
            raise ValueError("a recipe needs at least one source")
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {dupes}")
        return value

    # resolved paths --------------------------------------------------------
    def resolved_data_root(self) -> Path:
        root = self.data_root or os.environ.get(DATA_ROOT_ENV) or "data"
        return Path(root).expanduser().resolve()

    def source_root(self, spec: SourceSpec) -> Path:
        path = Path(spec.path).expanduser()
        return path if path.is_absolute() else self.resolved_data_root() / path

    def out_dir(self) -> Path:
        return Path(self.output.dir or f"out/{self.name}").expanduser().resolve()


def list_recipes() -> list[str]:
    return sorted(p.stem for p in bundled_dir("recipes").glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """A bundled recipe by name (``thyroid``) or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist")
        return path
    bundled = bundled_dir("recipes") / f"{name_or_path}.yaml"
    if not bundled.is_file():
        raise RecipeError(
            f"no bundled recipe named {str(name_or_path)!r}; bundled recipes: "
            f"{', '.join(list_recipes())}; or pass a path to a YAML file"
        )
    return bundled


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text != "" else ""


def _set_dotted(data: dict[str, Any], key: str, value: Any, origin: str) -> None:
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _list_item(node, part, ".".join(parts[: i + 1]), origin)
            continue
        if not isinstance(node, dict):
            raise RecipeError(f"{origin}: --set {key}: {'.'.join(parts[:i])} is not a mapping")
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        raise RecipeError(f"{origin}: --set {key}: cannot replace a whole list item")
    if not isinstance(node, dict):
        raise RecipeError(f"{origin}: --set {key}: {'.'.join(parts[:-1])} is not a mapping")
    node[last] = value


def _list_item(items: list[Any], part: str, where: str, origin: str) -> Any:
    for item in items:
        if isinstance(item, dict) and item.get("name") == part:
            return item
    if part.isdigit() and int(part) < len(items):
        return items[int(part)]
    names = [i.get("name") for i in items if isinstance(i, dict)]
    raise RecipeError(f"{origin}: --set {where}: no list item named {part!r}; items: {names}")


def load_recipe(
    name_or_path: str | Path,
    *,
    data_root: str | Path | None = None,
    sources: dict[str, str] | None = None,
    out: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Recipe:
    """Read, override and validate a recipe; errors name the file, key and allowed values."""
    path = recipe_path(name_or_path)
    origin = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RecipeError(f"{origin}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{origin}: a recipe must be a YAML mapping with at least 'name' and 'sources'")
    for item in overrides or []:
        if "=" not in item:
            raise RecipeError(f"--set {item!r}: expected KEY=VALUE, e.g. --set seed=3")
        key, raw = item.split("=", 1)
        _set_dotted(data, key.strip(), _parse_value(raw), origin)
    if data_root is not None:
        data["data_root"] = str(data_root)
    if out is not None:
        data.setdefault("output", {})
        data["output"] = {**(data["output"] or {}), "dir": str(out)}
    for name, src_path in (sources or {}).items():
        matches = [s for s in data.get("sources") or [] if isinstance(s, dict) and s.get("name") == name]
        if not matches:
            known = [s.get("name") for s in data.get("sources") or [] if isinstance(s, dict)]
            raise RecipeError(f"{origin}: --source {name}=...: no source named {name!r}; sources: {known}")
        matches[0]["path"] = str(Path(src_path).expanduser().resolve())
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(_format_validation(origin, exc)) from exc
    return recipe


def _format_validation(origin: str, exc: ValidationError) -> str:
    lines = [f"{origin}: invalid recipe"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "literal_error":
            expected = err.get("ctx", {}).get("expected", "")
            msg = f"got {err.get('input')!r}; allowed values: {expected}"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling)"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)
