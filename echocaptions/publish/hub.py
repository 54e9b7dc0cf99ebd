"""Check a built dataset folder and upload it to the Hugging Face Hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from echocaptions.publish.build import CARD, BuildFolderError, open_build

IGNORE = [".work/**", ".cache/**", "*.tmp"]


class PublishError(BuildFolderError):
    """The folder cannot be published: not a finished build, or its card disagrees with its files."""


@dataclass
class PublishPlan:
    folder: Path
    repo_id: str
    files: list[str]
    splits: dict[str, int]


def check_build(folder: Path) -> PublishPlan:
    """The card parses, its data_files match shards, the folder is a finished build (:func:`open_build`),
    and every config's row counts match stats.json."""
    import pyarrow.parquet as pq
    from huggingface_hub import DatasetCard

    folder = Path(folder)
    card_path = folder / CARD
    if not card_path.is_file():
        raise PublishError(f"{folder}: no {CARD}; run `echocaptions build` into this folder first")
    card = DatasetCard.load(card_path)
    configs = card.data.to_dict().get("configs") or []
    if not configs or not all(c.get("data_files") for c in configs):
        raise PublishError(f"{card_path}: the YAML header declares no configs with data_files")
    matches = []
    for config in configs:
        for entry in config["data_files"]:
            matched = sorted(folder.glob(entry["path"]))
            if not matched:
                raise PublishError(
                    f"{card_path}: config {config['config_name']!r} split {entry['split']!r}: "
                    f"pattern {entry['path']!r} matches no file"
                )
            matches.append((entry, matched))
    build = open_build(folder, error=PublishError)
    stats = build.stats()
    splits: dict[str, int] = {}
    for entry, matched in matches:
        if matched == build.shards.get(entry["split"]):  # the default config: open_build counted its rows
            rows = build.rows_per_split[entry["split"]]
        else:
            rows = sum(pq.ParquetFile(p).metadata.num_rows for p in matched)
        expected = stats["splits"].get(entry["split"])
        if rows != expected:
            raise PublishError(
                f"{folder}: split {entry['split']!r} has {rows} rows in its shards but "
                f"stats.json says {expected}; rebuild the folder"
            )
        splits[entry["split"]] = rows
    files = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.relative_to(folder).as_posix().startswith((".work", ".cache"))
    )
    return PublishPlan(folder=folder, repo_id="", files=files, splits=splits)


def publish(
    folder: Path, repo_id: str, private: bool = False, token: str | None = None, dry_run: bool = False
) -> PublishPlan:
    if repo_id.count("/") != 1:
        raise PublishError(f"--repo-id {repo_id!r}: expected ORG/NAME")
    plan = check_build(folder)
    plan.repo_id = repo_id
    if dry_run:
        return plan
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        ignore_patterns=IGNORE,
        commit_message="Upload dataset built with echocaptions",
    )
    return plan
