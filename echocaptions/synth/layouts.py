"""Phantom sources: fake ultrasound datasets in the exact on-disk layouts of the real ones.

:func:`make_phantom` writes, each in its own sub-folder of ``out`` (named as in
:data:`LAYOUT_FOLDERS`, the folder names the bundled recipes use):

- ``busi``: ``BUSI/Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (N).png`` (RGB,
  like the real files) with grayscale ``_mask.png`` and, for some, ``_mask_1.png``;
- ``ddti``: ``DDTI/N.xml`` case files with DDTI's own descriptor spellings and ``N_k.jpg``;
- ``aul``: ``AUL/{Normal,Benign,Malignant}/image/N.jpg`` and
  ``segmentation/{outline,liver,mass}/N.json`` polygons;
- ``pocus``: ``covid19_ultrasound/data/dataset_metadata.csv`` and
  ``covid19_ultrasound/data/pocus_videos/{convex,linear}/{Cov,Pneu,Reg,Vir}-<name>.mp4|gif``;
- ``report_corpus``: ``ultrasound_reports/annotation.json`` (R2Gen style) and
  ``ultrasound_reports/<organ>/<uid>/<k>.png``.

The returned roots are what each adapter reads: ``BUSI`` (the folder holding
``Dataset_BUSI_with_GT``), ``DDTI``, ``AUL``, ``covid19_ultrasound/data`` and
``ultrasound_reports``.

``per_class`` is the number of images per class (BUSI, AUL), of cases per
label (DDTI, each with one or two images), of clips per label (POCUS) and of
studies per organ and label (report corpus). Pixels come from
:mod:`echocaptions.synth.bmode`; findings and reports follow each class
(:mod:`echocaptions.synth.reports`). Each file draws from its own generator
seeded by ``seed`` and its name, and encoders run with fixed settings, so two
runs with the same arguments write byte-identical files. Metadata describes
the pixels: every writer takes the label, complete findings and lesion masks
from :func:`echocaptions.synth.bmode.draw`, so DDTI descriptors and TI-RADS,
POCUS flags and report text state what was drawn, and masks / polygons
(:func:`mask_polygon`, the traced contour) outline the drawn lesion, liver and
imaged field; BUSI gets ``_mask_1.png`` only where a second lesion was drawn
and a blank mask for a normal image. ``broken=True`` adds a few damaged items
per layout (truncated image, unparseable XML, mask without its image, class
outside the vocabulary, unknown file type) for reject tests.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

from echocaptions.registry import Registry
from echocaptions.schema import ORGANS
from echocaptions.sources.ddti import CALCIFICATIONS, COMPOSITION, ECHOGENICITY, MARGINS
from echocaptions.synth.bmode import Rendered, draw, render
from echocaptions.synth.reports import (
    ddti_reporteco,
    kwak_tirads,
    make_report,
    pick,
    sample_findings,
)

MARKER = "PHANTOM.json"
# Folder names under ``out``: the names the bundled recipes point at.
LAYOUT_FOLDERS: dict[str, str] = {
    "busi": "BUSI",
    "ddti": "DDTI",
    "aul": "AUL",
    "pocus": "covid19_ultrasound",
    "report_corpus": "ultrasound_reports",
    "report_corpus_zh": "ultrasound_reports_zh",
}
LAYOUT_ORGANS: dict[str, tuple[str, ...]] = {
    "busi": ("breast",),
    "ddti": ("thyroid",),
    "aul": ("liver",),
    "pocus": ("lung",),
    "report_corpus": ("breast", "thyroid", "liver"),
    "report_corpus_zh": ("breast", "thyroid", "liver"),
}


@dataclass(frozen=True)
class _Ctx:
    seed: int
    size: tuple[int, int]
    per_class: int
    broken: bool
    organs: tuple[str, ...]

    def rng(self, *keys: object) -> np.random.Generator:
        """A generator for one file, independent of the order files are written in."""
        key = zlib.crc32("/".join(map(str, keys)).encode())
        return np.random.default_rng([self.seed, key])


# -- encoders with fixed settings ------------------------------------------------


def _rgb(gray: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(gray[..., None], 3, axis=2), "RGB")


def _save_png(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", compress_level=6)


def _save_jpeg(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=90, optimize=False, progressive=False)


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: max(16, len(data) // 3)])


def _save_gif(frames: Sequence[np.ndarray], path: Path, fps: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f, "L") for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=1000 // fps, loop=0, optimize=False)


def _save_mp4(frames: Sequence[np.ndarray], path: Path, fps: int = 10) -> None:
    """H.264 (or MPEG-4 part 2) in MP4, single-threaded and bit-exact so output is reproducible."""
    import av

    if "libx264" in av.codecs_available:
        # mbtree off: with it, the same frames could give different bytes from run to run
        options = {"preset": "veryfast", "crf": "23", "x264-params": "threads=1:lookahead_threads=1:mbtree=0"}
        _save_video(frames, path, "mp4", "libx264", fps, options)
    else:
        _save_video(frames, path, "mp4", "mpeg4", fps, {})


# -- geometry --------------------------------------------------------------------

# Moore neighbourhood, clockwise in image coordinates (y down), starting west.
_MOORE = ((0, -1), (-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1))


def _trace(mask: np.ndarray) -> list[tuple[int, int]]:
    """Outer boundary pixels (row, col) of the mask's widest region, in order (Moore tracing).

    Tracing starts at the left end of the longest horizontal run, so a stray
    fragment is never picked over the main region.
    """
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), bool)
    padded[1:-1, 1:-1] = mask
    diff = np.diff(padded.astype(np.int8), axis=1)
    starts = np.argwhere(diff == 1)
    ends = np.argwhere(diff == -1)
    lengths = ends[:, 1] - starts[:, 1]
    r, c = (int(v) for v in starts[int(np.argmax(lengths))] + (0, 1))
    start, prev_dir = (r, c), 0  # came from the west neighbour, which is outside
    out = [start]
    cur, d = start, prev_dir
    for _ in range(4 * (h + w) * 4):
        for k in range(1, 9):
            nd = (d + k) % 8
            dr, dc = _MOORE[nd]
            if padded[cur[0] + dr, cur[1] + dc]:
                cur = (cur[0] + dr, cur[1] + dc)
                d = (nd + 5) % 8  # look again from the neighbour after the one we came from
                break
        else:
            break  # isolated pixel
        if cur == start:
            break
        out.append(cur)
    return [(y - 1, x - 1) for y, x in out]


def mask_polygon(mask: np.ndarray, n_points: int = 40) -> list[list[int]]:
    """The traced outline of a binary mask as ``[[x, y], ...]`` integer points
    (at most ``n_points``, evenly spaced along the contour); empty for an empty mask."""
    if not mask.any():
        return []
    contour = _trace(np.asarray(mask, bool))
    step = max(1, len(contour) / n_points)
    idx = sorted({int(i * step) for i in range(min(n_points, len(contour)))})
    return [[int(contour[i][1]), int(contour[i][0])] for i in idx]


def _mask_png(mask: np.ndarray) -> Image.Image:
    return Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L")


# -- BUSI ------------------------------------------------------------------------


def _busi(root: Path, ctx: _Ctx, wrappers: bool = False) -> Path:
    """``wrappers``: as Kaggle's ``archive.zip`` unzipped into its own folder,
    ``BUSI/archive/Dataset_BUSI_with_GT/``."""
    base = root / "archive" / "Dataset_BUSI_with_GT" if wrappers else root / "Dataset_BUSI_with_GT"
    for label in ("benign", "malignant", "normal"):
        for n in range(1, ctx.per_class + 1):
            rng = ctx.rng("busi", label, n)
            extra = 1 if label == "benign" and n % 3 == 0 else 0
            r = draw("breast", label, sample_findings("breast", label, rng), rng, ctx.size,
                     extra_lesions=extra)
            stem = base / label / f"{label} ({n})"
            _save_png(_rgb(r.image), stem.with_name(stem.name + ".png"))
            # Like BUSI: one mask per lesion drawn, a blank mask for a normal image.
            masks = [m for m in r.masks if m.any()] or [np.zeros(ctx.size, bool)]
            for k, mask in enumerate(masks):
                suffix = "_mask.png" if k == 0 else f"_mask_{k}.png"
                _save_png(_mask_png(mask), stem.with_name(stem.name + suffix))
    if ctx.broken:
        k = ctx.per_class + 1
        rng = ctx.rng("busi", "broken")
        r = draw("breast", "benign", {}, rng, ctx.size)
        img = _rgb(r.image)
        _save_png(img, base / "benign" / f"benign ({k}).png")
        _truncate(base / "benign" / f"benign ({k}).png")
        _save_png(_mask_png(r.masks[0]), base / "malignant" / f"malignant ({k})_mask.png")
        _save_png(img, base / "unknown" / "unknown (1).png")
        _write_text(base / "normal" / "Thumbs.db", "not an image\n")
    return root


# -- DDTI ------------------------------------------------------------------------

_DDTI_SPELLINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "benign": {
        "composition": ("spongiform", "predominantly cystic", "predominantly solid"),
        "echogenicity": ("isoechogenicity", "hyperechogenicity", "isoechogenicity"),
        "margins": ("well defined", "well defined smooth"),
        "calcifications": ("non", "non", "macrocalcifications"),
    },
    "malignant": {
        "composition": ("solid", "dense", "predominantly solid"),
        "echogenicity": ("hypoechogenicity", "marked hypoechogenicity"),
        "margins": ("ill defined", "microlobulated", "macrolobulated", "spiculated"),
        "calcifications": ("microcalcifications", "microcalcification", "macrocalcification", "non"),
    },
}


def _ddti_xml(number: int, fields: dict[str, str], marks: list[tuple[int, str]]) -> str:
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<case>", f"<number>{number}</number>"]
    for tag in ("age", "sex", "composition", "echogenicity", "margins", "calcifications",
                "tirads", "reportbacaf", "reporteco"):
        value = fields.get(tag, "")
        lines.append(f"<{tag}>{escape(value)}</{tag}>" if value else f"<{tag}></{tag}>")
    for k, svg in marks:
        lines += ["<mark>", f"<image>{k}</image>", f"<svg>{escape(svg)}</svg>", "</mark>"]
    lines.append("</case>")
    return "\n".join(lines) + "\n"


def _ddti_svg(mask: np.ndarray) -> str:
    points = [{"x": x, "y": y} for x, y in mask_polygon(mask)]
    return json.dumps([{"points": points, "annotation": {}, "regionType": "freehand"}],
                      separators=(",", ":"))


def _ddti_case(
    root: Path, ctx: _Ctx, number: int, label: str, n_images: int, tirads: str | None = None,
    written_number: int | None = None,
) -> None:
    """One case: every image shows the same nodule (the findings the first one drew), the
    descriptors spell those findings and the category follows them (:func:`kwak_tirads`).

    From case 7 on, cases carry the real files' irregularities, chosen by case number: an
    empty ``<tirads>`` (numbers 2 or 4 modulo 5: 7, 9, 12, 14...), ``<sex>u</sex>`` (multiples
    of 4), a trailing space after the echogenicity (multiples of 3) and doubled spaces inside
    the margins (3 modulo 4). ``tirads`` overrides the category; ``written_number`` writes a
    ``<number>`` that disagrees with the file name.
    """
    rng = ctx.rng("ddti", number)
    spell = {tag: pick(rng, values) for tag, values in _DDTI_SPELLINGS[label].items()}
    findings: dict[str, str | None] = {
        "tirads_composition": COMPOSITION[spell["composition"]],
        "tirads_echogenicity": ECHOGENICITY[spell["echogenicity"]],
        "tirads_margin": MARGINS[spell["margins"]],
        "tirads_foci": CALCIFICATIONS[spell["calcifications"]],
    }
    if label == "benign":
        findings["tirads_shape"] = "wider_than_tall"
    marks = []
    drawn: Rendered | None = None
    for k in range(1, n_images + 1):
        if drawn is None:
            drawn = draw("thyroid", label, findings, rng, ctx.size)
            r = drawn
        else:
            r = draw("thyroid", drawn.label, dict(drawn.findings), rng, ctx.size)
        _save_jpeg(_rgb(r.image), root / f"{number}_{k}.jpg")
        marks.append((k, _ddti_svg(r.masks[0])))
    assert drawn is not None
    spell["tirads"] = kwak_tirads(dict(drawn.findings), label)
    fields = dict(spell)
    if tirads is not None:
        fields["tirads"] = tirads
    fields["age"] = str(int(rng.integers(18, 85)))
    fields["sex"] = "F" if rng.random() < 0.8 else "M"
    fields["reporteco"] = ddti_reporteco(spell, rng)
    if rng.random() < 0.3:
        fields["reportbacaf"] = "Bethesda II" if label == "benign" else pick(rng, ("Bethesda V", "Bethesda VI"))
    if number >= 7:
        if number % 5 in (2, 4) and tirads is None:
            fields["tirads"] = ""
        if number % 4 == 0:
            fields["sex"] = "u"
        if number % 3 == 0:
            fields["echogenicity"] += " "
        if number % 4 == 3:
            fields["margins"] = fields["margins"].replace(" ", "  ")
    shown = number if written_number is None else written_number
    _write_text(root / f"{number}.xml", _ddti_xml(shown, fields, marks))


def _ddti(root: Path, ctx: _Ctx) -> Path:
    """``per_class`` benign and malignant cases, alternating (odd numbers benign), every third
    with two images. ``broken`` adds, after them: an XML that does not parse, a truncated image,
    a category ``7``, an image without its XML, a missing second image and an XML whose
    ``<number>`` disagrees with its file name."""
    root.mkdir(parents=True, exist_ok=True)
    total = 2 * ctx.per_class
    for number in range(1, total + 1):
        label = "benign" if number % 2 else "malignant"
        _ddti_case(root, ctx, number, label, 2 if number % 3 == 0 else 1)
    if ctx.broken:
        m = total + 1
        _write_text(root / f"{m}.xml", f"<case>\n<number>{m}</number>\n<tirads>4a</tirads>\n<mark>\n")
        _save_jpeg(_rgb(render("thyroid", "malignant", {}, ctx.rng("ddti", m), ctx.size)),
                   root / f"{m}_1.jpg")
        _ddti_case(root, ctx, m + 1, "benign", 1)
        _truncate(root / f"{m + 1}_1.jpg")
        _ddti_case(root, ctx, m + 2, "malignant", 1, tirads="7")
        _save_jpeg(_rgb(render("thyroid", "benign", {}, ctx.rng("ddti", m + 3), ctx.size)),
                   root / f"{m + 3}_1.jpg")
        _ddti_case(root, ctx, m + 4, "benign", 2)
        (root / f"{m + 4}_2.jpg").unlink()
        _ddti_case(root, ctx, m + 5, "malignant", 1, written_number=m + 50)
    return root


# -- AUL -------------------------------------------------------------------------


def _aul_image(folder: Path, ctx: _Ctx, cls: str, n: int, without: tuple[str, ...] = ()) -> None:
    """An image with its field outline, liver outline and, when a lesion is drawn, the
    outline of the largest one (AUL has one mass polygon per image); the polygon kinds
    in ``without`` are not written (some real Malignant images lack one)."""
    label = cls.lower()
    rng = ctx.rng("aul", cls, n)
    r = draw("liver", label, sample_findings("liver", label, rng), rng, ctx.size)
    _save_jpeg(_rgb(r.image), folder / "image" / f"{n}.jpg")
    polygons = {"outline": mask_polygon(r.field), "liver": mask_polygon(r.regions["liver"])}
    lesions = [m for m in r.masks if m.any()]
    if lesions:
        polygons["mass"] = mask_polygon(max(lesions, key=lambda m: int(m.sum())))
    for kind, points in polygons.items():
        if kind not in without:
            _write_text(folder / "segmentation" / kind / f"{n}.json", json.dumps(points))


AUL_FOLDER = "Annotated_Ultrasound_Liver_Yiming"


def _aul(root: Path, ctx: _Ctx, wrappers: bool = False, variants: bool = False) -> Path:
    """``wrappers``: the class folders inside ``Annotated_Ultrasound_Liver_Yiming/``, as the
    Zenodo archive unzips. ``variants``: Malignant image 1 has no liver polygon and image 2
    no outline polygon, as some real ones."""
    base = root / AUL_FOLDER if wrappers else root
    missing = {1: ("liver",), 2: ("outline",)} if variants else {}
    for cls in ("Normal", "Benign", "Malignant"):
        for n in range(1, ctx.per_class + 1):
            _aul_image(base / cls, ctx, cls, n, missing.get(n, ()) if cls == "Malignant" else ())
    if ctx.broken:
        k = ctx.per_class + 1
        _aul_image(base / "Benign", ctx, "Benign", k)
        _truncate(base / "Benign" / "image" / f"{k}.jpg")
        r = draw("liver", "malignant", {}, ctx.rng("aul", "orphan"), ctx.size)
        _write_text(base / "Malignant" / "segmentation" / "mass" / f"{k}.json",
                    json.dumps(mask_polygon(r.masks[0])))
        _aul_image(base / "Cyst", ctx, "Benign", 1)
        _write_text(base / "Benign" / "image" / "notes.txt", "scanned on site B\n")
    return root


# -- POCUS -----------------------------------------------------------------------

POCUS_COLUMNS: tuple[str, ...] = (
    "Date added", "Current location", "Filename", "URL (Video Name)", "Label", "Lung Severity Score",
    "License", "LinkToLicense", "ChangesMade", "InThisRepo", "Type", "Probe", "DOI", "Source ID",
    "Comments from web site", "Title", "Comments first medical doctor (MD1)", "MD2", "MD3",
    "Framerate", "Resolution", "Length (frames)", "Gender", "Age", "Patient ID / Name",
    "Lung /abdomen interface", "Preconditions / Comments about patient", "Area according to DEGUM",
    "", "Effusion", "Consolidations", "B-lines", "A-lines", "Pleural line irregularities",
    "Air bronchogram", "Healthy", "Fever", "Cough", "Respiratory problems", "Headache",
    "Loss of smell/taste", "Fatigue", "Sore throat", "Asymptomatic", "Other",
)
_POCUS_CLASSES: tuple[tuple[str, str, str], ...] = (
    ("Cov", "COVID-19", "covid"),
    ("Pneu", "Bacterial pneumonia", "pneumonia"),
    ("Reg", "regular", "normal"),
    ("Vir", "Viral pneumonia", "viral_pneumonia"),
)
_POCUS_SOURCES: tuple[str, ...] = ("Atlas", "Butterfly", "Clarius", "Grepmed", "Litfl", "Uf")
_LICENSES: tuple[tuple[str, str], ...] = (
    ("CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
    ("CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    ("None", "N.A."),
)


def _flag(findings: dict[str, str | None], key: str, yes: tuple[str, ...]) -> str:
    return "1" if findings.get(key) in yes else "0"


def _pocus_findings(label: str, rng: np.random.Generator) -> dict[str, str | None]:
    """Findings for a clip, limited to what the CSV's 0/1 columns can say: the dataset's
    ``B-lines`` flag reads as ``multiple`` B-lines, so a clip shows several or none."""
    findings = sample_findings("lung", label, rng)
    if findings.get("lung_b_lines") == "few":
        findings["lung_b_lines"] = "multiple"
    return findings


def _pocus_row(name: str, location: str, raw_label: str, probe: str, patient: str,
               findings: dict[str, str | None], rng: np.random.Generator, frames: int,
               size: tuple[int, int]) -> dict[str, str]:
    lic, link = pick(rng, _LICENSES)
    row = dict.fromkeys(POCUS_COLUMNS, "")
    row.update({
        "Date added": "20.04.20", "Current location": location, "Filename": name,
        "URL (Video Name)": f"https://example.org/pocus/{name.replace(' ', '%20')}",
        "Label": raw_label, "License": lic, "LinkToLicense": link, "ChangesMade": "Cropping",
        "InThisRepo": "Yes", "Type": "video", "Probe": probe,
        "Source ID": str(int(rng.integers(1, 60))), "Framerate": "10",
        "Resolution": f"{size[1]}x{size[0]}", "Length (frames)": str(frames),
        "Gender": pick(rng, ("m", "f", "nd")), "Age": pick(rng, ("", "54", "67", "nd")),
        "Patient ID / Name": patient,
        "Effusion": _flag(findings, "lung_effusion", ("present",)),
        "Consolidations": _flag(findings, "lung_consolidation", ("subpleural", "lobar")),
        "B-lines": _flag(findings, "lung_b_lines", ("few", "multiple", "confluent")),
        "A-lines": _flag(findings, "lung_a_lines", ("present",)),
        "Pleural line irregularities": _flag(findings, "lung_pleural_line",
                                             ("irregular", "thickened", "fragmented")),
        "Air bronchogram": "1" if findings.get("lung_consolidation") == "lobar" else "0",
        "Healthy": "1" if raw_label == "regular" else "0",
    })
    if raw_label != "regular" or rng.random() < 0.5:
        row["Lung Severity Score"] = str(int(rng.integers(0, 4)))
    for column in POCUS_COLUMNS[POCUS_COLUMNS.index("Fever"):]:
        row[column] = "n/A"
    return row


# Real-world spellings (``variants=True``): folder under ``pocus_videos/``, file name, and
# the table row it gets: ``rated`` (flags from the drawing), ``uncertain`` (a Bolzano clip:
# location ``label_uncertain``, every flag 0 as in the real table) or ``none`` (no row).
_POCUS_VARIANTS: tuple[tuple[str, str, str], ...] = (
    ("convex", "Cov_convex_sonographic_v1.mov", "rated"),
    ("Convex", "Pneu_northumbria_set1_vid1.avi", "rated"),
    ("convex", "Reg_Avi_lung-sliding.MP4", "rated"),
    ("linear", "Cov_bolzano_Linee B 5.mpeg", "uncertain"),
    ("linear/label_uncertain", "Cov_bolzano_Linee B 2.mpeg", "uncertain"),
    ("linear/label_uncertain", "Cov_bolzano_sliding .mpeg", "uncertain"),
    ("linear", "Vir_prospective_file1.mp4", "none"),
)
# Container, codec and frame rate per suffix (MPEG-1 allows 24, 25, 30... frames per second only).
_POCUS_ENCODINGS: dict[str, tuple[str, str, int]] = {
    ".mov": ("mov", "mpeg4", 10), ".avi": ("avi", "mpeg4", 10), ".mpeg": ("mpeg", "mpeg1video", 25),
}


def _save_video(
    frames: Sequence[np.ndarray], path: Path, container: str, codec: str, fps: int,
    options: dict[str, str] | None = None,
) -> None:
    """Frames in ``container`` with ``codec``, single-threaded and bit-exact (reproducible bytes).

    ``options`` are the codec's (default: its bit-exact flag).
    """
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = (d - d % 2 for d in frames[0].shape[:2])
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container, options={"fflags": "+bitexact"}) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        stream.options = {"flags": "+bitexact"} if options is None else options
        for f in frames:
            rgb = np.repeat(f[:h, :w, None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    path.write_bytes(buffer.getvalue())


def _pocus_variants(data: Path, ctx: _Ctx, size: tuple[int, int], n_frames: int) -> list[dict[str, str]]:
    """The clips of :data:`_POCUS_VARIANTS` and their rows, plus a Butterfly row whose clip the
    repository does not host (its scripts fetch it)."""
    classes = {prefix: (raw, label) for prefix, raw, label in _POCUS_CLASSES}
    rows: list[dict[str, str]] = []
    for k, (folder, file_name, kind) in enumerate(_POCUS_VARIANTS):
        suffix = Path(file_name).suffix
        stem = file_name[: -len(suffix)]
        raw_label, label = classes[stem.split("_", 1)[0]]
        rng = ctx.rng("pocus", "variant", file_name)
        r = draw("lung", label, _pocus_findings(label, rng), rng, size, n_frames, masks=False)
        path = data / "pocus_videos" / folder / file_name
        container, codec, fps = _POCUS_ENCODINGS.get(suffix.lower(), ("mp4", "", 10))
        if codec:
            _save_video(r.frames, path, container, codec, fps)
        else:
            _save_mp4(r.frames, path)
        if kind == "none":
            continue
        probe = folder.split("/")[0].lower()
        location = f"pocus_videos/{folder}" if kind == "rated" else "pocus_videos/linear/label_uncertain"
        row = _pocus_row(stem.strip(), location, raw_label, probe, str(200 + k), dict(r.findings), rng,
                         n_frames, size)
        row["Framerate"] = str(fps)
        if kind == "uncertain":
            row.update({"Comments from web site": "Most patients were COVID-19 patients",
                        "MD2": "B-lines", "Lung Severity Score": "", "Patient ID / Name": "",
                        "InThisRepo": "No", "License": "None", "LinkToLicense": "N.A."})
            for column in ("Effusion", "Consolidations", "B-lines", "A-lines",
                           "Pleural line irregularities", "Air bronchogram", "Healthy"):
                row[column] = "0"
        rows.append(row)
    rows.append(_pocus_row("Cov-Butterfly-COVID Lung 2", "butterfly", "COVID-19", "convex", "",
                           {}, ctx.rng("pocus", "variant", "butterfly"), n_frames, size))
    rows[-1]["InThisRepo"] = "No"
    return rows


def _pocus(root: Path, ctx: _Ctx, variants: bool = False) -> Path:
    """``variants``: also the real files' spellings (:data:`_POCUS_VARIANTS`)."""
    data = root / "data"
    h, w = ctx.size
    size = (h - h % 2, w - w % 2)
    rows: list[dict[str, str]] = []
    patient = 100
    n_frames = 6
    for prefix, raw_label, label in _POCUS_CLASSES:
        for j in range(ctx.per_class):
            rng = ctx.rng("pocus", prefix, j)
            if j % 2 == 0:
                patient += 1
            source = _POCUS_SOURCES[j % len(_POCUS_SOURCES)]
            name = (f"{prefix}-{source}+({40 + j})" if j % 4 == 0
                    else f"{prefix}-{source}-Example {j + 1}" if j % 4 == 1
                    else f"{prefix}-{source}-{j + 1}")
            probe = "linear" if j % 3 == 1 else "convex"
            ext = ".gif" if j % 2 == 1 else ".mp4"
            r = draw("lung", label, _pocus_findings(label, rng), rng, size, n_frames, masks=False)
            path = data / "pocus_videos" / probe / f"{name}{ext}"
            (_save_gif if ext == ".gif" else _save_mp4)(r.frames, path)
            rows.append(_pocus_row(name, f"data/pocus_videos/{probe.capitalize()}", raw_label, probe,
                                   "" if j % 5 == 4 else str(patient), dict(r.findings), rng,
                                   n_frames, size))
    rows.append(_pocus_row("Cov-Butterfly-Consolidation_Example 4", "not used", "COVID-19", "convex",
                           "", {}, ctx.rng("pocus", "unused"), n_frames, size))
    if ctx.broken:
        rng = ctx.rng("pocus", "broken")
        r = draw("lung", "covid", _pocus_findings("covid", rng), rng, size, 3, masks=False)
        frames = r.frames
        broken = data / "pocus_videos" / "convex" / "Cov-Broken-1.mp4"
        _save_mp4(frames, broken)
        _truncate(broken)
        rows.append(_pocus_row("Cov-Broken-1", "data/pocus_videos/Convex", "COVID-19", "convex", "999",
                               dict(r.findings), rng, 3, size))
        _save_mp4(frames, data / "pocus_videos" / "linear" / "Xyz-Unknown-1.mp4")
        _write_text(data / "pocus_videos" / "convex" / "README.txt", "videos from the POCUS atlas\n")
    if variants:
        rows += _pocus_variants(data, ctx, size, n_frames)
    data.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(POCUS_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(data / "dataset_metadata.csv", buffer.getvalue())
    return data


# -- report corpus ---------------------------------------------------------------

_CATEGORY_TAG = {"breast": ("birads_category", "BI-RADS"), "thyroid": ("tirads_category", "TI-RADS")}


def _corpus_study(
    root: Path, ctx: _Ctx, rng: np.random.Generator, organ: str, label: str, prefix: str, n_images: int
) -> tuple[list[str], dict[str, str | None]]:
    """Draw one study's images as ``<prefix>/<k>.png``; its paths, and findings with the category set."""
    sampled = sample_findings(organ, label, rng)
    paths = []
    drawn: Rendered | None = None
    for k in range(n_images):
        rel = f"{prefix}/{k}.png"
        # Every image of a study shows what the first one drew.
        r = draw(organ, label if drawn is None else drawn.label,
                 sampled if drawn is None else dict(drawn.findings), rng, ctx.size, masks=False)
        drawn = drawn or r
        _save_png(Image.fromarray(r.image, "L"), root / rel)
        paths.append(rel)
    assert drawn is not None
    findings: dict[str, str | None] = dict(drawn.findings)
    category = _CATEGORY_TAG.get(organ, ("", ""))[0]
    if category and sampled.get(category):
        findings[category] = sampled[category]
    if organ == "thyroid" and label != "normal":
        findings["tirads_category"] = kwak_tirads(findings, label)
    return paths, findings


def _report_corpus(root: Path, ctx: _Ctx) -> Path:
    splits: dict[str, list[dict[str, object]]] = {"train": [], "val": [], "test": []}
    uid = 1000
    for organ in (o for o in LAYOUT_ORGANS["report_corpus"] if o in ctx.organs):
        for label in ("normal", "benign", "malignant"):
            for j in range(ctx.per_class):
                uid += 1
                rng = ctx.rng("report_corpus", uid)
                paths, findings = _corpus_study(root, ctx, rng, organ, label, f"{organ}/{uid}",
                                                2 if j % 3 == 1 else 1)
                labels = [label]
                if organ in _CATEGORY_TAG and findings.get(_CATEGORY_TAG[organ][0]):
                    labels.append(f"{_CATEGORY_TAG[organ][1]} {findings[_CATEGORY_TAG[organ][0]]}")
                split = ("train",) * 7 + ("val",) + ("test",) * 2
                splits[split[uid % 10]].append({
                    "uid": uid, "image_path": paths,
                    "finding": make_report(organ, label, findings, rng).text, "labels": labels,
                })
    if ctx.broken and splits["train"]:
        rng = ctx.rng("report_corpus", "broken")
        organ = str(splits["train"][0]["image_path"][0]).split("/")[0]  # type: ignore[index]
        img = Image.fromarray(render(organ, "benign", {}, rng, ctx.size), "L")
        splits["train"].append({"uid": 9001, "image_path": [f"{organ}/9001/0.png"],
                                "finding": "Missing image.", "labels": ["benign"]})
        _save_png(img, root / "kidney" / "9002" / "0.png")
        splits["train"].append({"uid": 9002, "image_path": ["kidney/9002/0.png"],
                                "finding": "Kidney study.", "labels": ["normal"]})
        _save_png(img, root / organ / "9003" / "0.png")
        _truncate(root / organ / "9003" / "0.png")
        splits["train"].append({"uid": 9003, "image_path": [f"{organ}/9003/0.png"],
                                "finding": "Truncated image.", "labels": ["benign"]})
        _save_png(img, root / organ / "orphan" / "0.png")
    _write_text(root / "annotation.json", json.dumps(splits, indent=2, ensure_ascii=False) + "\n")
    return root


def _report_corpus_zh(root: Path, ctx: _Ctx) -> Path:
    """A Chinese report corpus as the public ones ship: ``annotation.json`` with a UTF-8 byte-order
    mark, R2Gen keys ``id`` / ``report``, Chinese reports (two in five word-segmented with spaces)
    carrying planted PHI (:func:`echocaptions.synth.reports.make_report_zh`).

    The organ is given each way such corpora give it: breast records by an ``organ`` key (乳腺),
    thyroid records by a label (甲状腺), liver images by their folder (``肝脏/<id>/0.png``); breast
    and thyroid images lie under ``images/<id>/``. Class labels are Chinese (正常 / 良性 / 恶性).
    ``broken`` adds a record whose organ no rule gives.
    """
    from echocaptions.synth.reports import ZH_LABELS, ZH_ORGANS, make_report_zh

    splits: dict[str, list[dict[str, object]]] = {"train": [], "val": [], "test": []}
    uid = 5000
    for organ in (o for o in LAYOUT_ORGANS["report_corpus_zh"] if o in ctx.organs):
        for label in ("normal", "benign", "malignant"):
            for j in range(ctx.per_class):
                uid += 1
                rng = ctx.rng("report_corpus_zh", uid)
                folder = ZH_ORGANS[organ] if organ == "liver" else "images"
                paths, findings = _corpus_study(root, ctx, rng, organ, label, f"{folder}/{uid}",
                                                2 if j % 3 == 1 else 1)
                labels = [ZH_LABELS[label]]
                if organ == "thyroid":
                    labels.insert(0, ZH_ORGANS[organ])
                if organ in _CATEGORY_TAG and findings.get(_CATEGORY_TAG[organ][0]):
                    labels.append(f"{_CATEGORY_TAG[organ][1]} {findings[_CATEGORY_TAG[organ][0]]}类")
                report = make_report_zh(organ, label, findings, rng, segmented=uid % 5 in (1, 3))
                record: dict[str, object] = {"id": str(uid), "report": report.text, "image_path": paths,
                                             "labels": labels}
                if organ == "breast":
                    record["organ"] = ZH_ORGANS[organ]
                split = ("train",) * 7 + ("val",) + ("test",) * 2
                splits[split[uid % 10]].append(record)
    if ctx.broken and splits["train"]:
        rng = ctx.rng("report_corpus_zh", "broken")
        _save_png(Image.fromarray(render("breast", "benign", {}, rng, ctx.size), "L"),
                  root / "images" / "9101" / "0.png")
        splits["train"].append({"id": "9101", "report": "未见明显异常。", "image_path": ["images/9101/0.png"],
                                "labels": [ZH_LABELS["benign"]]})
    _write_text(root / "annotation.json", "\ufeff" + json.dumps(splits, indent=2, ensure_ascii=False) + "\n")
    return root


# Every phantom layout's writer by layout name, in the order make_phantom writes them; the
# folder and organs of each are in LAYOUT_FOLDERS and LAYOUT_ORGANS.
PHANTOM_LAYOUTS: Registry[Callable[..., Path]] = Registry("phantom layout")
for _layout, _writer in (
    ("busi", _busi),
    ("ddti", _ddti),
    ("aul", _aul),
    ("pocus", _pocus),
    ("report_corpus", _report_corpus),
    ("report_corpus_zh", _report_corpus_zh),
):
    PHANTOM_LAYOUTS.register(_layout, _writer)
del _layout, _writer


def register_layout(
    layout: str, folder: str, organs: tuple[str, ...], writer: Callable[[Path, _Ctx], Path]
) -> None:
    """Add a phantom writer for one public layout (modules ``synth/layout_*.py`` call this)."""
    PHANTOM_LAYOUTS.register(layout, writer)  # a different writer under a taken name raises
    LAYOUT_FOLDERS[layout] = folder
    LAYOUT_ORGANS[layout] = organs


def _fresh(folder: Path, out: Path) -> None:
    """Clear a layout folder left by an earlier phantom; refuse to touch anything else."""
    if not folder.exists():
        return
    if (out / MARKER).is_file():
        shutil.rmtree(folder)
    elif any(folder.iterdir()):
        raise FileExistsError(
            f"{folder} exists and was not written by make_phantom (no {out / MARKER}); "
            "choose an empty output folder"
        )


def make_phantom(
    out: Path | str,
    organs: Sequence[str] | None = None,
    per_class: int = 8,
    seed: int = 0,
    size: tuple[int, int] = (256, 320),
    broken: bool = False,
    layouts: Sequence[str] | None = None,
    wrappers: bool = False,
    variants: bool = False,
    lfs_pointers: bool = False,
) -> dict[str, Path]:
    """Write phantom sources under ``out``; return ``{layout name: source root}``.

    Only layouts that cover one of ``organs`` (default: all) and are named in
    ``layouts`` (default: all registered) are written. Three options write what
    users meet in real downloads; each layout writer takes those it knows (a
    keyword of the same name) and the default output stays byte for byte the same:

    - ``wrappers``: archives unzipped into a folder of their own
      (``BUSI/archive/Dataset_BUSI_with_GT/``, ``AUL/Annotated_Ultrasound_Liver_Yiming/``);
    - ``variants``: the real files' irregular spellings (POCUS ``_`` and spaced names,
      ``.MP4``/``.mov``/``.avi``/``.mpeg`` clips, ``Convex/`` and ``label_uncertain/``
      folders; AUL Malignant images without a liver or outline polygon);
    - ``lfs_pointers``: Git LFS pointer files in place of the COVID-BLUES videos (a clone
      without ``git lfs pull``).
    """
    if layouts is not None:
        unknown_layouts = sorted(set(layouts) - set(PHANTOM_LAYOUTS.names()))
        if unknown_layouts:
            raise ValueError(
                f"unknown phantom layouts {unknown_layouts}; choose from {sorted(PHANTOM_LAYOUTS.names())}"
            )
    chosen = tuple(organs) if organs else ORGANS
    unknown = [o for o in chosen if o not in ORGANS]
    if unknown:
        raise ValueError(f"unknown organs {unknown}; choose from {ORGANS}")
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(seed=seed, size=(int(size[0]), int(size[1])), per_class=per_class, broken=broken,
               organs=chosen)
    asked = {k: v for k, v in (("wrappers", wrappers), ("variants", variants),
                                ("lfs_pointers", lfs_pointers)) if v}
    roots: dict[str, Path] = {}
    for layout, writer in PHANTOM_LAYOUTS.items():
        if not set(LAYOUT_ORGANS[layout]) & set(chosen):
            continue
        if layouts is not None and layout not in layouts:
            continue
        folder = out / LAYOUT_FOLDERS[layout]
        _fresh(folder, out)
        known = inspect.signature(writer).parameters
        roots[layout] = writer(folder, ctx, **{k: v for k, v in asked.items() if k in known})
    params: dict[str, object] = {"organs": list(chosen), "per_class": per_class, "seed": seed,
                                 "size": list(ctx.size), "broken": broken, "layouts": sorted(roots)}
    params.update(asked)
    _write_text(out / MARKER, json.dumps(params, indent=2, sort_keys=True) + "\n")
    return roots
