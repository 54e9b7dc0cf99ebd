"""DICOM images and cines through pydicom, decoded one frame at a time.

Frames are streamed from the file with only the group 0028 elements (Image
Pixel, palette, modality and VOI LUT) and the transfer syntax read beside them;
odd files (deflated, no file meta) fall back to a full read. Either way only
pixels leave this module, never an identifying element. Every frame comes out
8-bit: ``L`` for grayscale, ``RGB`` for colour.

* MONOCHROME1/2: modality LUT (rescale), then the VOI LUT or window when the
  file has one; otherwise 8-bit data is kept as stored and deeper data is
  stretched between the frame's minimum and maximum. MONOCHROME1 is inverted.
* RGB and YBR_* (converted to RGB by pydicom): deeper than 8 bits is stretched
  jointly over the three channels, which keeps the hues.
* PALETTE COLOR: the palette is applied; 16-bit entries are scaled to 8 bits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import get_decoder, iter_pixels, pixel_array
from pydicom.pixels.processing import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
)
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from echocaptions.imaging.readers import ImageReadError, Reader, register_reader

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_TIMING_KEYWORDS = ["NumberOfFrames", "FrameTime", "CineRate", "RecommendedDisplayFrameRate"]
_DEFAULT_FPS = 25.0

_LIBJPEG = "pip install pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pip install pylibjpeg pylibjpeg-openjpeg"
_RLE = "pip install pylibjpeg pylibjpeg-rle"


def decoder_install_hint(transfer_syntax: str) -> str:
    """The pip command that installs a decoder for ``transfer_syntax`` ('' if none exists)."""
    uid = UID(transfer_syntax)
    if uid.keyword.startswith(("JPEG2000", "HTJ2K")):
        return _OPENJPEG
    if uid.keyword.startswith(("JPEGLS", "JPEGLossless", "JPEGExtended", "JPEGBaseline")):
        return _LIBJPEG
    if uid.keyword == "RLELossless":
        return _RLE
    return ""


def _has_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _header(path: Path, keywords: list[str] | None = None) -> Dataset:
    """The header up to the pixels (only ``keywords`` when given)."""
    try:
        return pydicom.dcmread(
            path, stop_before_pixels=True, specific_tags=keywords, force=not _has_preamble(path)
        )
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise ImageReadError(f"{path}: not a readable DICOM file ({exc})") from exc


def dicom_frame_count(path: Path) -> int:
    """Number of frames, from the header alone."""
    ds = _header(Path(path), ["NumberOfFrames"])
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError) as exc:
        raise ImageReadError(f"{path}: bad (0028,0008) Number of Frames ({exc})") from exc


def _frame_interval(ds: Dataset) -> float:
    """Seconds between frames from Frame Time, Cine Rate or the display rate."""
    try:
        if ds.get("FrameTime"):
            return float(ds.FrameTime) / 1000.0
        for keyword in ("CineRate", "RecommendedDisplayFrameRate"):
            if ds.get(keyword):
                return 1.0 / float(ds[keyword].value)
    except (TypeError, ValueError, ZeroDivisionError):
        pass
    return 1.0 / _DEFAULT_FPS


def _stretch(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(np.float32, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros(arr.shape, np.uint8)
    return ((arr - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def _scale(arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return _stretch(arr)
    out = (np.asarray(arr, np.float32) - lo) * (255.0 / (hi - lo)) + 0.5
    return np.clip(out, 0, 255).astype(np.uint8)


def _voi_range(ds: Dataset) -> tuple[float, float]:
    """Output range of pydicom's ``apply_windowing`` (PS3.3 C.11.2.1.2)."""
    if ds.get("ModalityLUTSequence"):
        lo, hi = 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    elif ds.get("PixelRepresentation", 0) == 0:
        lo, hi = 0.0, 2.0 ** int(ds.BitsStored) - 1
    else:
        lo, hi = -(2.0 ** (int(ds.BitsStored) - 1)), 2.0 ** (int(ds.BitsStored) - 1) - 1
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        lo, hi = sorted(
            (lo * float(slope) + float(intercept), hi * float(slope) + float(intercept))
        )
    return lo, hi


def _window(arr: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """LINEAR / LINEAR_EXACT windowing straight to 8 bits (PS3.3 C.11.2.1.2).

    Same result as pydicom's ``apply_windowing`` scaled from its output range,
    without its float64 masks; SIGMOID windows go through pydicom.
    """
    function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
    centre, width = ds.WindowCenter, ds.WindowWidth
    centre = float(centre[0] if isinstance(centre, MultiValue) else centre)
    width = float(width[0] if isinstance(width, MultiValue) else width)
    if function == "LINEAR" and width >= 1:
        centre, width = centre - 0.5, width - 1
    elif function != "LINEAR_EXACT" or width <= 0:
        return None
    if width == 0:
        return np.where(arr > centre, 255, 0).astype(np.uint8)
    scale = np.float32(255.0 / width)
    offset = np.float32(127.5 - centre * 255.0 / width + 0.5)
    out = np.asarray(arr, np.float32) * scale + offset
    return np.clip(out, 0, 255, out=out).astype(np.uint8)


def _grey(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    bits = int(ds.get("BitsStored") or arr.dtype.itemsize * 8)
    if ds.get("ModalityLUTSequence") or ds.get("RescaleSlope") is not None:
        arr = apply_modality_lut(arr, ds)
    try:
        if ds.get("VOILUTSequence"):
            lut = ds.VOILUTSequence[0]
            return _scale(apply_voi(arr, ds), 0.0, 2.0 ** int(lut.LUTDescriptor[2]) - 1)
        if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
            out = _window(arr, ds)
            if out is None:
                out = _scale(apply_windowing(arr, ds), *_voi_range(ds))
            return out
    except (ValueError, TypeError, IndexError, AttributeError, KeyError):
        pass
    if arr.dtype.kind in "ui" and bits <= 8 and arr.min() >= 0:
        if bits == 8:
            return arr.astype(np.uint8, copy=False)
        return _scale(arr, 0.0, 2.0**bits - 1)
    return _stretch(arr)


def _colour(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    return _stretch(arr)


_PALETTE_KEYWORDS = tuple(
    f"{prefix}{colour}PaletteColorLookupTable{part}"
    for prefix, part in (("", "Descriptor"), ("", "Data"), ("Segmented", "Data"))
    for colour in ("Red", "Green", "Blue")
)


def _raw(ds: Dataset, keyword: str) -> object:
    """An element's value as hashable as it comes: raw bytes unless already converted."""
    value = ds.get_item(keyword).value
    return tuple(value) if isinstance(value, (list, MultiValue)) else value


_PALETTES: dict[tuple[object, ...], tuple[np.ndarray, int]] = {}


def _palette_lut(ds: Dataset) -> tuple[np.ndarray, int]:
    """The palette as little-endian 0x00BBGGRR words and its first mapped value.

    Scanners reuse one palette for every file, and expanding a segmented
    palette costs tens of milliseconds, so each palette is built once per process.
    """
    key = tuple(_raw(ds, k) for k in _PALETTE_KEYWORDS if k in ds) + (ds.original_encoding,)
    if key in _PALETTES:
        return _PALETTES[key]
    descriptor = ds.RedPaletteColorLookupTableDescriptor
    entries, first = int(descriptor[0]) or 2**16, int(descriptor[1])
    rgb = apply_color_lut(np.arange(first, first + entries), ds)[..., :3]
    if rgb.dtype != np.uint8 and rgb.max() > 255:
        rgb = rgb >> 8
    rgb = rgb.astype("<u4")
    if len(_PALETTES) >= 32:
        _PALETTES.clear()
    _PALETTES[key] = (rgb[:, 0] | (rgb[:, 1] << 8) | (rgb[:, 2] << 16), first)
    return _PALETTES[key]


def _palette(arr: np.ndarray, ds: Dataset) -> Image.Image:
    lut, first = _palette_lut(ds)
    if arr.dtype == np.uint8 and first == 0 and len(lut) >= 256:
        img = Image.fromarray(arr, "P")
        img.putpalette(lut[:256].view(np.uint8).reshape(256, 4)[:, :3].tobytes())
        return img.convert("RGB")
    if arr.dtype.kind == "u" and first == 0 and len(lut) >= 2 ** (8 * arr.dtype.itemsize):
        index = arr
    else:
        index = np.clip(arr.astype(np.int64, copy=False) - first, 0, len(lut) - 1)
    rgbx = np.take(lut, index).view(np.uint8).reshape(*arr.shape, 4)
    return Image.fromarray(rgbx, "RGBX").convert("RGB")


def frame_to_image(arr: np.ndarray, ds: Dataset) -> Image.Image:
    """One decoded frame as an 8-bit L or RGB image, using ``ds``'s pixel module."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric == "PALETTE COLOR" and arr.ndim == 2:
        return _palette(arr, ds)
    if arr.ndim == 3 and arr.shape[-1] == 3:
        return Image.fromarray(np.ascontiguousarray(_colour(arr)), "RGB")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"unexpected frame shape {arr.shape}")
    out = _grey(arr, ds)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return Image.fromarray(np.ascontiguousarray(out), "L")


def _syntax_of(ds: Dataset) -> UID:
    """The transfer syntax of a dataset read without file meta, from its encoding."""
    implicit, little = ds.original_encoding
    if implicit:
        return ImplicitVRLittleEndian
    return ExplicitVRLittleEndian if little else ExplicitVRBigEndian


class DicomReader(Reader):
    """DICOM files (``.dcm``, ``.dicom``, or any file with the DICM preamble)."""

    name = "dicom"
    suffixes = (".dcm", ".dicom")

    def can_read(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes or _has_preamble(path)

    def read(self, path: Path, frame: int | None = None) -> Image.Image:
        for _, img in self._frames(Path(path), [frame or 0]):
            return img
        raise ImageReadError(f"{path}: frame {frame} not found")

    def sample(self, path: Path, fps: float, max_frames: int) -> Iterator[tuple[int, Image.Image]]:
        """Frames ``1/fps`` seconds apart by the file's frame time, at most ``max_frames``."""
        path = Path(path)
        ds = _header(path, _TIMING_KEYWORDS)
        try:
            count = max(1, int(ds.get("NumberOfFrames") or 1))
        except (TypeError, ValueError) as exc:
            raise ImageReadError(f"{path}: bad (0028,0008) Number of Frames ({exc})") from exc
        interval, step = _frame_interval(ds), 1.0 / fps
        indices: list[int] = []
        next_t = 0.0
        for index in range(count):
            if index * interval + 1e-6 >= next_t:
                indices.append(index)
                next_t += step
                if len(indices) >= max_frames:
                    break
        yield from self._frames(path, indices)

    def _frames(self, path: Path, indices: list[int]) -> Iterator[tuple[int, Image.Image]]:
        """Decode only ``indices``, streaming from the file; a full read is the fallback."""
        done = 0
        try:
            for item in self._stream(path, indices):
                yield item
                done += 1
            return
        except ImageReadError:
            raise
        except Exception as exc:
            if done:
                raise self._explain(path, exc) from exc
        try:
            yield from self._from_dataset(path, indices)
        except ImageReadError:
            raise
        except Exception as exc:
            raise self._explain(path, exc) from exc

    @staticmethod
    def _stream(path: Path, indices: list[int]) -> Iterator[tuple[int, Image.Image]]:
        ds = Dataset()
        kwargs: dict[str, UID] = {}
        if not _has_preamble(path):
            header = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            kwargs["transfer_syntax_uid"] = _syntax_of(header)
        frames = iter_pixels(path, ds_out=ds, indices=indices, **kwargs)
        for index, arr in zip(indices, frames, strict=True):
            yield index, frame_to_image(arr, ds)

    @staticmethod
    def _from_dataset(path: Path, indices: list[int]) -> Iterator[tuple[int, Image.Image]]:
        """Deflated files, files with a damaged meta header or odd encapsulation."""
        ds = pydicom.dcmread(path, force=True)
        meta = ds.file_meta if hasattr(ds, "file_meta") else Dataset()
        if not meta.get("TransferSyntaxUID"):
            meta.TransferSyntaxUID = _syntax_of(ds)
            ds.file_meta = meta
        for index in indices:
            yield index, frame_to_image(pixel_array(ds, index=index), ds)

    @staticmethod
    def _explain(path: Path, exc: Exception) -> ImageReadError:
        """Turn a pydicom failure into an error naming the file, the cause and the fix."""
        try:
            ds = pydicom.dcmread(path, force=True, defer_size=256)
        except Exception as read_exc:
            return ImageReadError(f"{path}: not a readable DICOM file ({read_exc})")
        if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
            return ImageReadError(f"{path}: DICOM file has no pixel data")
        syntax = getattr(ds, "file_meta", Dataset()).get("TransferSyntaxUID")
        if syntax:
            syntax = UID(syntax)
            try:
                available = get_decoder(syntax).is_available
            except NotImplementedError:
                return ImageReadError(
                    f"{path}: pydicom has no decoder for transfer syntax "
                    f"{syntax.name} ({syntax}); convert the file first (e.g. with dcmtk or FFmpeg)"
                )
            if not available:
                hint = decoder_install_hint(syntax) or "pip install pylibjpeg"
                return ImageReadError(
                    f"{path}: no decoder installed for transfer syntax {syntax.name}; run `{hint}`"
                )
        return ImageReadError(
            f"{path}: cannot decode DICOM pixel data ({type(exc).__name__}: {exc})"
        )


register_reader(DicomReader())
