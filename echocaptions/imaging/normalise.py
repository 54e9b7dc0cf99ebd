"""Normalise decoded images to the published form and hash their pixels.

Published images are PNG, 8-bit grayscale unless the source is really colour
(ultrasound exported as RGB with equal channels becomes grayscale), at most
``max_side`` pixels on the long side. An 8-bit grayscale PNG already at its
size and without text chunks is passed through byte for byte.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy.fft import dctn

PNG_COMPRESS_LEVEL = 6
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PLAIN_PNG = {b"IHDR", b"IDAT", b"IEND"}
_FIELD_LEVEL = 12


@dataclass
class Normalised:
    png: bytes
    width: int
    height: int
    sha256: str
    phash: int
    passthrough: bool = False


def to_8bit(img: Image.Image) -> Image.Image:
    """Any Pillow mode to L or RGB, scaling high bit depths to 0..255."""
    if img.mode in ("L", "RGB"):
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(arr.min()), float(arr.max())
        if hi <= lo:
            return Image.new("L", img.size, 0)
        arr -= lo
        arr *= 255.0 / (hi - lo)
        arr += 0.5
        return Image.fromarray(np.clip(arr, 0, 255, out=arr).astype(np.uint8), "L")
    if img.mode in ("LA", "1"):
        return img.convert("L")
    return img.convert("RGB")


def to_grayscale_if_grey(img: Image.Image, policy: str) -> Image.Image:
    if img.mode == "L" or policy == "never":
        return img
    if policy == "always":
        return img.convert("L")
    arr = np.asarray(img)
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        return Image.fromarray(np.ascontiguousarray(arr[..., 0]), "L")
    return img


def fit(img: Image.Image, max_side: int | None) -> Image.Image:
    if not max_side or max(img.size) <= max_side:
        return img
    scale = max_side / max(img.size)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def pixel_sha256(img: Image.Image) -> str:
    digest = hashlib.sha256(f"{img.mode}:{img.width}x{img.height}:".encode())
    digest.update(img.tobytes())
    return digest.hexdigest()


def perceptual_hash(img: Image.Image) -> int:
    """64-bit DCT perceptual hash of the image content (signed, to fit Parquet int64).

    The hash looks inside the ultrasound field: the bounding box of non-black
    pixels, trimmed at its edges so the shared fan or rectangle outline (the
    same on every image of a device) does not dominate. Then the 8x8 lowest
    DCT frequencies of a 32x32 thumbnail are compared with their median.
    """
    arr = np.asarray(img.convert("L"))
    rows = np.flatnonzero((arr > _FIELD_LEVEL).any(axis=1))
    cols = np.flatnonzero((arr > _FIELD_LEVEL).any(axis=0))
    if rows.size > 8 and cols.size > 8:
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        h, w = y1 - y0, x1 - x0
        arr = arr[y0 + h // 6 : y1 - h // 10, x0 + w // 5 : x1 - w // 5]
    small = np.asarray(Image.fromarray(arr).resize((32, 32), Image.Resampling.BOX), dtype=np.float32)
    low = dctn(small, norm="ortho")[:8, :8].ravel()
    bits = low > np.median(low[1:])
    value = int(np.packbits(bits).view(">u8")[0])
    return value - (1 << 64) if value >= 1 << 63 else value


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def normalise(img: Image.Image, max_side: int | None, grayscale: str = "auto") -> Normalised:
    out = fit(to_grayscale_if_grey(to_8bit(img), grayscale), max_side)
    return Normalised(encode_png(out), out.width, out.height, pixel_sha256(out), perceptual_hash(out))


def png_chunks(data: bytes) -> list[bytes]:
    """Chunk types of a PNG file, in order (empty when it is not a PNG)."""
    if not data.startswith(_PNG_MAGIC):
        return []
    chunks, pos = [], len(_PNG_MAGIC)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        chunks.append(kind)
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def normalise_file(path: Path, max_side: int | None, grayscale: str = "auto") -> Normalised:
    """Decode one still image file; pass plain 8-bit grayscale PNGs through untouched.

    Only a PNG made of nothing but IHDR, IDAT and IEND chunks is copied as is:
    text, private or animation chunks could carry patient data or more frames.
    """
    data = path.read_bytes()
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ValueError("not a decodable image (corrupt, truncated or of an unknown format)") from None
    img.load()
    if (
        img.mode == "L"
        and grayscale != "never"
        and (not max_side or max(img.size) <= max_side)
        and set(png_chunks(data)) == _PLAIN_PNG
    ):
        return Normalised(
            data, img.width, img.height, pixel_sha256(img), perceptual_hash(img), passthrough=True
        )
    return normalise(img, max_side, grayscale)
