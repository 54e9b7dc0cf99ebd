"""TN3K thyroid nodule images (Gong et al., Computers in Biology and Medicine 2023; TRFE-Net).

Layout as released (``tn3k/``)::

    trainval-image/0000.jpg ...   trainval-mask/0000.jpg ...
    test-image/0000.jpg ...       test-mask/0000.jpg ...
    tn3k-trainval-fold0.json ... fold4.json     (cross-validation folds)
    label4trainval.csv  label4test.csv          (benign / malignant labels, see below)

The root may be ``tn3k`` itself or the folder containing it. The images,
masks and fold files come from the TRFE-Net repository; the label files do
not: they come only with the later TNCD release of the ACL repository, to be
put beside ``trainval-image/``. Each ``label4*.csv`` line is ``<image
name>,<0|1>`` with no header (0 = benign, 1 = malignant; 2,879 and 614 lines);
a header line, names without ``.jpg`` and ``benign`` / ``malignant`` are
accepted, any other value is a reject naming the file, the value and what is
expected. When a split's label file is absent (the TRFE-Net download alone),
its images are listed unlabelled and the build shows a notice naming the
missing file(s) and where to get them; when it is present, an image without
a line is a reject. The official test split is kept: ``test-image`` items
carry ``split_hint="test"``, ``trainval-image`` items ``"train"``. The fold
files index the directory listing and are not read. TN3K gives no patient ids
(``patient_id`` stays ``None``). Masks (``*-mask/<same name>``) are not
captioned; they are attached in ``extra["masks"]``, and a mask without its
image is a reject.
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


TRFE_NET = "https://github.com/haifangong/TRFE-Net-for-thyroid-nodule-segmentation"
ACL = "https://github.com/chenghui-666/ACL"
EXPECTED_LABELS = "0 (benign), 1 (malignant), benign or malignant"


def read_labels(path: Path) -> dict[str, str]:
    """Image stem -> raw label value, from ``name,label`` lines (a header line is skipped)."""
    labels: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path} is not a text file of 'NNNN.jpg,0|1' lines ({exc})") from exc
    for n, line in enumerate(text.splitlines()):
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
        f"(images and masks); benign/malignant label CSVs from the TNCD release of {ACL}."
    )
    license = "research use; cite Gong et al. 2023"
    download = (
        f"images and masks: the TN3K archive linked from the TRFE-Net repository ({TRFE_NET}); "
        f"labels label4trainval.csv / label4test.csv: the TNCD data release of the ACL "
        f"repository ({ACL})"
    )
    folder = (f"TN3K/ (the archive's {FOLDER}/ folder, or its content: trainval-image/, "
              "test-image/...; put the two label CSVs beside trainval-image/)")
    required = ("trainval-image/ and/or test-image/ with NNNN.jpg images (TRFE-Net release)",)
    optional = (
        "label4trainval.csv, label4test.csv (TNCD release of the ACL repository, not part of the "
        "TRFE-Net download): without them the images are listed unlabelled, with a notice",
        "trainval-mask/, test-mask/ (same names as the images): without them extra['masks'] is empty",
        "tn3k-trainval-fold0..4.json: never read (they index the directory listing)",
    )
    quirks = (
        "the label files come only with the later TNCD/ACL release, not with the TRFE-Net images",
        "label lines are 'NNNN.jpg,0|1' with no header (a header line or names without .jpg are "
        "accepted); a value other than 0/1/benign/malignant is a reject naming file and value",
        "test-image/ numbering restarts at 0000.jpg: ids and source paths keep the folder",
        "the official test split is kept (split_hint 'test')",
    )
    grouping_note = (
        "TN3K publishes no patient ids, so images of one patient cannot be grouped; only the "
        "official test split is fixed, and rows split here from trainval-image/ are not grouped "
        "by patient"
    )

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
        missing = [label_file for images, _, label_file, _ in SPLITS
                   if (base / images).is_dir() and not (base / label_file).is_file()]
        if missing:
            self.notice(
                "tn3k_labels",
                f"{' and '.join(missing)} not found in {base}: those TN3K images are listed "
                f"without benign/malignant labels. The label files are not part of the TRFE-Net "
                f"images and masks ({TRFE_NET}); they come with the TNCD release of the ACL "
                f"repository ({ACL}): put them beside trainval-image/ and rebuild",
            )
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
        used: set[str] = set()
        for image in sorted_files(images) if images.is_dir() else []:
            if media_kind(image) != "image":
                yield self.reject(rel(image), f"unknown extension {extension(image) or '(none)'!r}")
                continue
            stem = _stem(image.name)
            seen.add(stem)
            label: str | None = None
            if labels is not None:
                key = stem if stem in labels or not stem.isdigit() else str(int(stem))
                raw = labels.get(key)
                used.add(key)
                if raw is None:
                    yield self.reject(rel(image), f"image without its {label_file} line",
                                      f"no line names {image.name}")
                    continue
                label = LABELS.get(raw.lower())
                if label is None:
                    yield self.reject(
                        rel(image), f"label outside vocabulary: {raw!r} for {image.name} in "
                        f"{label_file}; expected {EXPECTED_LABELS}")
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
        unused = sorted(set(labels or ()) - used)
        if unused:
            self.notice(
                f"tn3k_unused_{label_file}",
                f"{len(unused)} line(s) of {label_file} name no image in {rel(images)}/ "
                f"(first: {', '.join(unused[:3])}); those labels are not used",
            )
