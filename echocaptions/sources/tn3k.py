"""TN3K thyroid nodule images (Gong et al., Computers in Biology and Medicine 2023; TRFE-Net).

Layout as released (``tn3k/``)::

    trainval-image/0000.jpg ...   trainval-mask/0000.jpg ...
    test-image/0000.jpg ...       test-mask/0000.jpg ...
    label4trainval.csv  label4test.csv          (benign / malignant labels)
    tn3k-trainval-fold0.json ... fold4.json     (cross-validation folds)

The root may be ``tn3k`` itself or the folder containing it. Each
``label4*.csv`` line is ``<image name>,<0|1>`` (0 = benign, 1 = malignant);
a header line and names without ``.jpg`` are accepted. When a split's label
file is absent (the segmentation-only release), its images are listed
unlabelled; when it is present, an image without a line is a reject. The
official test split is kept: ``test-image`` items carry ``split_hint="test"``,
``trainval-image`` items ``"train"``. The fold files index the directory
listing and are not read. TN3K gives no patient ids (``patient_id`` stays
``None``). Masks (``*-mask/<same name>``) are not captioned; they are attached
in ``extra["masks"]``, and a mask without its image is a reject.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from echocaptions.schema import Reject, SourceItem
from echocaptions.sources.base import Source, SourceError, register
from echocaptions.sources.imagefolder import extension, media_kind, sorted_files

FOLDER = "tn3k"
SPLITS: tuple[tuple[str, str, str, str], ...] = (
    ("trainval-image", "trainval-mask", "label4trainval.csv", "train"),
    ("test-image", "test-mask", "label4test.csv", "test"),
)
LABELS: dict[str, str] = {"0": "benign", "1": "malignant", "benign": "benign", "malignant": "malignant"}


def _stem(name: str) -> str:
    return name[: len(name) - len(extension(name))] if media_kind(name) else name


def read_labels(path: Path) -> dict[str, str]:
    """Image stem -> raw label value, from ``name,label`` lines (a header line is skipped)."""
    labels: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines()):
        if "," not in line:
            continue
        name, value = (part.strip() for part in line.rsplit(",", 1))
        if n == 0 and value.lower() not in LABELS and not value.lstrip("-").isdigit():
            continue
        if name:
            labels.setdefault(_stem(name), value.removesuffix(".0"))
    return labels


@register
class Tn3kSource(Source):
    """TN3K thyroid nodules: official train-val / test split, benign / malignant from label CSVs."""

    layout = "tn3k"
    organs = ("thyroid",)
    expected = (
        "tn3k/{trainval,test}-image/NNNN.jpg with {trainval,test}-mask/NNNN.jpg and "
        "label4trainval.csv / label4test.csv ('NNNN.jpg,0|1') (root: tn3k or the folder containing it)."
    )
    published = (
        "Gong H, Chen J, Chen G, Li H, Li G, Chen F. Thyroid region prior guided attention for "
        "ultrasound segmentation of thyroid nodules. Computers in Biology and Medicine 155 (2023) "
        "106389; https://github.com/haifangong/TRFE-Net-for-thyroid-nodule-segmentation "
        "(benign/malignant label CSVs as distributed with the TN3K release)."
    )
    license = "research use; cite Gong et al. 2023"

    def base(self) -> Path:
        for candidate in (self.root, self.root / FOLDER):
            if any((candidate / images).is_dir() for images, *_ in SPLITS):
                return candidate
        raise SourceError(
            f"{self.missing_message()} (no trainval-image/ or test-image/ folder in {self.root} "
            f"or {self.root / FOLDER})"
        )

    def check(self) -> None:
        super().check()
        self.base()

    def iter_items(self) -> Iterator[SourceItem | Reject]:
        base = self.base()
        for images, masks, label_file, hint in SPLITS:
            labels = read_labels(base / label_file) if (base / label_file).is_file() else None
            yield from self._split(base, base / images, base / masks, label_file, labels, hint)

    def _split(
        self, base: Path, images: Path, masks: Path, label_file: str,
        labels: dict[str, str] | None, hint: str,
    ) -> Iterator[SourceItem | Reject]:
        def rel(path: Path) -> str:
            return path.relative_to(base).as_posix()

        mask_of = {_stem(m.name): m for m in sorted_files(masks)} if masks.is_dir() else {}
        seen: set[str] = set()
        kept: set[str] = set()
        for image in sorted_files(images) if images.is_dir() else []:
            if media_kind(image) != "image":
                yield self.reject(rel(image), f"unknown extension {extension(image) or '(none)'!r}")
                continue
            stem = _stem(image.name)
            seen.add(stem)
            label: str | None = None
            if labels is not None:
                raw = labels.get(stem, labels.get(str(int(stem))) if stem.isdigit() else None)
                if raw is None:
                    yield self.reject(rel(image), f"image without its {label_file} line",
                                      f"no line names {image.name}")
                    continue
                label = LABELS.get(raw.lower())
                if label is None:
                    yield self.reject(
                        rel(image), f"label outside vocabulary: {raw!r} for {image.name} in "
                        f"{label_file} is not 0 (benign) or 1 (malignant)")
                    continue
            mask = mask_of.get(stem)
            kept.add(stem)
            yield SourceItem(
                source=self.name,
                dataset="tn3k",
                organ="thyroid",
                path=str(image.resolve()),
                source_path=rel(image),
                label=label,
                split_hint=hint,
                extra={"masks": [rel(mask)] if mask else [], "labelled": labels is not None},
            )
        for stem, mask in mask_of.items():
            if stem not in kept:
                reason = "mask of a rejected image" if stem in seen else "mask without its image"
                yield self.reject(rel(mask), reason, rel(images / mask.name))
