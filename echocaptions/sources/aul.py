"""AUL, Annotated Ultrasound Liver images (Xu et al., Zenodo record 7272660).

Layout as downloaded (the Zenodo archive unzips to ``Annotated_Ultrasound_Liver_Yiming/``)::

    Annotated_Ultrasound_Liver_Yiming/
      Normal/image/N.jpg     Normal/segmentation/{outline,liver}/N.json
      Benign/image/N.jpg     Benign/segmentation/{outline,liver,mass}/N.json
      Malignant/image/N.jpg  Malignant/segmentation/{outline,liver,mass}/N.json

``Annotated_Ultrasound_Liver_Yiming/`` (or a folder holding the class folders)
is found in the root or under up to two wrapper folders (a download folder);
``__MACOSX/`` and hidden folders are never the data. ``source_path`` is
relative to the folder holding the class folders, so ids do not depend on
which root was given.

Each JSON is a polygon (a list of ``[x, y]`` points). The class folder gives
the label; a mass polygon sets ``liver_lesion`` to ``mass`` (AUL does not say
which kind), a Normal image gets ``liver_lesion = none``. AUL has no patient
ids, so ``patient_id`` stays ``None``. Segmentation paths go to
``extra["segmentation"]`` with only the polygons that exist: some Malignant
images have no liver or outline JSON and are read all the same. A
segmentation whose image is missing is a reject.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, register
from echocaptions.sources.imagefolder import (
    extension,
    locate_layout,
    media_kind,
    natural_key,
    sorted_files,
)

FOLDER = "Annotated_Ultrasound_Liver_Yiming"
CLASSES: dict[str, str] = {"normal": "normal", "benign": "benign", "malignant": "malignant"}
SEGMENTATIONS: tuple[str, ...] = ("outline", "liver", "mass")


def _holds_classes(folder: Path) -> Path | None:
    """``folder/Annotated_Ultrasound_Liver_Yiming`` or ``folder`` when it holds an AUL class
    folder with an ``image/`` folder inside."""
    for candidate in (folder / FOLDER, folder):
        try:
            entries = list(candidate.iterdir())
        except OSError:
            continue
        if any(p.is_dir() and p.name.lower() in CLASSES and (p / "image").is_dir() for p in entries):
            return candidate
    return None


@register
class AulSource(Source):
    """AUL liver images, labelled by class folder, with polygon segmentations."""

    layout = "aul"
    organs = ("liver",)
    expected = (
        f"[{FOLDER}/]{{Normal,Benign,Malignant}}/image/N.jpg with "
        "{Normal,Benign,Malignant}/segmentation/{outline,liver,mass}/N.json polygons "
        "(class folders in the root or up to two folders below it)."
    )
    published = (
        "Xu Y, et al. Annotated Ultrasound Liver images (AUL), Zenodo, "
        "https://zenodo.org/records/7272660 (doi:10.5281/zenodo.7272660)."
    )
    license = "CC-BY-4.0"
    download = "Zenodo record 7272660 (https://zenodo.org/records/7272660): download the archive and unzip it"
    folder = "AUL"
    required = (
        f"{FOLDER}/{{Normal,Benign,Malignant}}/image/N.jpg (the class folders may also sit "
        "directly in AUL/)",
    )
    optional = (
        "<Class>/segmentation/mass/N.json: without it a Benign or Malignant image has no "
        "liver_lesion finding (with it: mass)",
        "<Class>/segmentation/{outline,liver}/N.json: kept as paths in extra['segmentation']; "
        "nothing else is lost without them",
    )
    quirks = (
        f"the archive unzips to {FOLDER}/; the class folders are found under up to two wrapper "
        "folders, skipping __MACOSX/ and hidden folders",
        "some Malignant images have no liver or no outline JSON: they are read, with the polygons "
        "that exist",
        "a polygon JSON whose image is missing is a reject, as is any file outside image/ and "
        "segmentation/",
        "no patient ids are published: rows are not grouped by patient",
    )
    grouping_note = (
        "AUL publishes no patient ids; several images may come from one patient, so rows cannot "
        "be grouped by patient"
    )

    def base(self) -> Path:
        """The folder that holds the class folders."""
        return locate_layout(self, _holds_classes, f"AUL class folders ({FOLDER}/ or <Class>/image/)")

    def check(self) -> None:
        super().check()
        self.base()

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        super().check()
        base = self.base()
        for entry in sorted(base.iterdir(), key=lambda p: natural_key(p.name)):
            if entry.name.startswith("."):
                continue
            if entry.is_file():
                yield self.reject(_rel(base, entry), "not inside a class folder",
                                  f"AUL classes are {sorted(c.capitalize() for c in CLASSES)}")
                continue
            yield from self._class(base, entry)

    def _class(self, base: Path, folder: Path) -> Iterator[SourceItem | Reject]:
        files = sorted_files(folder)
        if not files:
            yield self.reject(_rel(base, folder), "empty folder")
            return
        label = CLASSES.get(folder.name.lower())
        if label is None:
            for f in files:
                yield self.reject(
                    _rel(base, f), f"label outside vocabulary: folder {folder.name!r} is not an AUL class "
                    f"{sorted(c.capitalize() for c in CLASSES)}",
                )
            return
        image_dir = folder / "image"
        images = {f.stem: f for f in files if f.parent == image_dir and media_kind(f) == "image"}
        if not images:
            yield self.reject(_rel(base, image_dir), "empty folder", "no images in the class's image/ folder")
        segs: dict[str, dict[str, str]] = {}
        for f in files:
            rel = f.relative_to(folder).parts
            if f.parent == image_dir and media_kind(f) == "image":
                continue
            if len(rel) == 3 and rel[0] == "segmentation" and extension(f) == ".json":
                if f.stem in images:
                    segs.setdefault(f.stem, {})[rel[1]] = _rel(base, f)
                else:
                    yield self.reject(_rel(base, f), f"{rel[1]} segmentation without its image",
                                      f"expected {_rel(base, image_dir / (f.stem + '.jpg'))}")
                continue
            if media_kind(f) is None:
                yield self.reject(_rel(base, f), f"unknown extension {extension(f) or '(none)'!r}")
            else:
                yield self.reject(_rel(base, f), "file outside image/ and segmentation/",
                                  "AUL keeps images in <Class>/image/")
        for stem, image in images.items():
            seg = segs.get(stem, {})
            if "mass" in seg:
                lesion: str | None = "mass"
            elif label == "normal":
                lesion = "none"
            else:
                lesion = None
            yield SourceItem(
                source=self.name,
                dataset="aul",
                organ="liver",
                path=str(image.resolve()),
                source_path=_rel(base, image),
                label=label,
                findings={"liver_lesion": lesion},
                extra={"segmentation": dict(sorted(seg.items()))},
            )


def _rel(base: Path, path: Path) -> str:
    return path.relative_to(base).as_posix()
