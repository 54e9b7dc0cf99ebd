"""AUL, Annotated Ultrasound Liver images (Xu et al., Zenodo record 7272660).

Layout as downloaded::

    Normal/image/N.jpg     Normal/segmentation/{outline,liver}/N.json
    Benign/image/N.jpg     Benign/segmentation/{outline,liver,mass}/N.json
    Malignant/image/N.jpg  Malignant/segmentation/{outline,liver,mass}/N.json

Each JSON is a polygon (a list of ``[x, y]`` points). The class folder gives
the label; a mass polygon sets ``liver_lesion`` to ``mass`` (AUL does not say
which kind), a Normal image gets ``liver_lesion = none``. AUL has no patient
ids, so ``patient_id`` stays ``None``. Segmentation paths go to
``extra["segmentation"]``; a segmentation whose image is missing is a reject.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, natural_key, sorted_files

CLASSES: dict[str, str] = {"normal": "normal", "benign": "benign", "malignant": "malignant"}
SEGMENTATIONS: tuple[str, ...] = ("outline", "liver", "mass")


@register
class AulSource(Source):
    """AUL liver images, labelled by class folder, with polygon segmentations."""

    layout = "aul"
    organs = ("liver",)
    expected = (
        "{Normal,Benign,Malignant}/image/N.jpg with "
        "{Normal,Benign,Malignant}/segmentation/{outline,liver,mass}/N.json polygons."
    )
    published = (
        "Xu Y, et al. Annotated Ultrasound Liver images (AUL), Zenodo, "
        "https://zenodo.org/records/7272660 (doi:10.5281/zenodo.7272660)."
    )
    license = "CC-BY-4.0"

    def check(self) -> None:
        super().check()
        if not any((d / "image").is_dir() for d in self.root.iterdir() if d.is_dir()):
            raise SourceError(
                f"{self.missing_message()} (no <Class>/image/ folder in {self.root})"
            )

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        self.check()
        for entry in sorted(self.root.iterdir(), key=lambda p: natural_key(p.name)):
            if entry.name.startswith("."):
                continue
            if entry.is_file():
                yield self.reject(entry, "not inside a class folder",
                                  f"AUL classes are {sorted(c.capitalize() for c in CLASSES)}")
                continue
            yield from self._class(entry)

    def _class(self, folder: Path) -> Iterator[SourceItem | Reject]:
        files = sorted_files(folder)
        if not files:
            yield self.reject(folder, "empty folder")
            return
        label = CLASSES.get(folder.name.lower())
        if label is None:
            for f in files:
                yield self.reject(
                    f, f"label outside vocabulary: folder {folder.name!r} is not an AUL class "
                    f"{sorted(c.capitalize() for c in CLASSES)}",
                )
            return
        image_dir = folder / "image"
        images = {f.stem: f for f in files if f.parent == image_dir and media_kind(f) == "image"}
        if not images:
            yield self.reject(image_dir, "empty folder", "no images in the class's image/ folder")
        segs: dict[str, dict[str, str]] = {}
        for f in files:
            rel = f.relative_to(folder).parts
            if f.parent == image_dir and media_kind(f) == "image":
                continue
            if len(rel) == 3 and rel[0] == "segmentation" and extension(f) == ".json":
                if f.stem in images:
                    segs.setdefault(f.stem, {})[rel[1]] = self.rel(f)
                else:
                    yield self.reject(f, f"{rel[1]} segmentation without its image",
                                      f"expected {self.rel(image_dir / (f.stem + '.jpg'))}")
                continue
            if media_kind(f) is None:
                yield self.reject(f, f"unknown extension {extension(f) or '(none)'!r}")
            else:
                yield self.reject(f, "file outside image/ and segmentation/",
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
                source_path=self.rel(image),
                label=label,
                findings={"liver_lesion": lesion},
                extra={"segmentation": dict(sorted(seg.items()))},
            )
