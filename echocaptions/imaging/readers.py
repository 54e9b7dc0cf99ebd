"""Image readers: a registry of decoders (:data:`IMAGE_READERS`), each saying which files it can read.

When no reader accepts a file, the error lists the readers tried. Videos (and
animated GIFs) are sampled at a fixed rate with a cap per file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageSequence

from echocaptions.imaging.normalise import Normalised, normalise, normalise_file
from echocaptions.registry import Registry

Image.MAX_IMAGE_PIXELS = 64_000_000


class ImageReadError(RuntimeError):
    """A file that could not be decoded; the message names the file and the cause."""


class Reader(ABC):
    name: str
    suffixes: tuple[str, ...]

    def can_read(self, path: Path) -> bool:
        return path.suffix.lower() in self.suffixes

    @abstractmethod
    def read(self, path: Path, frame: int | None = None) -> Image.Image:
        """One decoded frame (the first when ``frame`` is None)."""

    def sample(self, path: Path, fps: float, max_frames: int) -> Iterator[tuple[int, Image.Image]]:
        """Frames of a multi-frame file at ``fps`` (at most ``max_frames``)."""
        yield 0, self.read(path)

    def load(
        self, path: Path, frame: int | None, max_side: int | None, grayscale: str, hints: dict | None = None
    ) -> Normalised:
        """One frame, normalised to the published form. ``hints``: the item's ``extra``."""
        return normalise(self.read(path, frame), max_side, grayscale)


class PillowReader(Reader):
    name = "pillow"
    suffixes = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

    def read(self, path: Path, frame: int | None = None) -> Image.Image:
        img = Image.open(path)
        if frame:
            img.seek(frame)
        img.load()
        return img

    def load(
        self, path: Path, frame: int | None, max_side: int | None, grayscale: str, hints: dict | None = None
    ) -> Normalised:
        if frame:
            return super().load(path, frame, max_side, grayscale)
        return normalise_file(path, max_side, grayscale)


class GifReader(Reader):
    """Animated GIFs; frame timing from each frame's duration."""

    name = "gif"
    suffixes = (".gif",)

    def read(self, path: Path, frame: int | None = None) -> Image.Image:
        with Image.open(path) as img:
            img.seek(frame or 0)
            return img.convert("RGB")

    def sample(self, path: Path, fps: float, max_frames: int) -> Iterator[tuple[int, Image.Image]]:
        with Image.open(path) as img:
            t, next_t, taken = 0.0, 0.0, 0
            for index, frame in enumerate(ImageSequence.Iterator(img)):
                if t + 1e-9 >= next_t:
                    yield index, frame.convert("RGB")
                    taken += 1
                    next_t += 1.0 / fps
                    if taken >= max_frames:
                        return
                t += (frame.info.get("duration") or 100) / 1000.0


class VideoReader(Reader):
    """Videos through PyAV (FFmpeg), sampled by presentation time."""

    name = "video"
    suffixes = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")

    def read(self, path: Path, frame: int | None = None) -> Image.Image:
        for index, img in self._decode(path):
            if index == (frame or 0):
                return img
        raise ImageReadError(f"{path}: frame {frame} not found")

    def sample(self, path: Path, fps: float, max_frames: int) -> Iterator[tuple[int, Image.Image]]:
        """Frames ``1/fps`` apart, timed from the first frame: MPEG program streams
        (``.mpeg``/``.mpg``) start at about 0.5 s, not at 0."""
        next_t, taken, start = 0.0, 0, None
        for index, img, t in self._decode(path, with_time=True):
            start = t if start is None else start
            t -= start
            if t + 1e-6 >= next_t:
                yield index, img
                taken += 1
                next_t += 1.0 / fps
                if taken >= max_frames:
                    return

    @staticmethod
    def _decode(path: Path, with_time: bool = False) -> Iterator:
        import av

        try:
            container = av.open(str(path))
        except av.error.FFmpegError as exc:
            raise ImageReadError(f"{path}: cannot open video ({exc})") from exc
        with container:
            stream = container.streams.video[0]
            base = float(stream.time_base or 0) or None
            rate = float(stream.average_rate or 25)
            for index, frame in enumerate(container.decode(stream)):
                img = frame.to_image()
                if with_time:
                    t = frame.pts * base if (frame.pts is not None and base) else index / rate
                    yield index, img, t
                else:
                    yield index, img


# Every reader by name, in the order they are tried (the first that can read a file wins).
IMAGE_READERS: Registry[Reader] = Registry("image reader")
for _reader in (PillowReader(), GifReader(), VideoReader()):
    IMAGE_READERS.register(_reader.name, _reader)
del _reader


def register_reader(reader: Reader, first: bool = True) -> None:
    """Add a reader (e.g. DICOM or NIfTI) under its ``name``; ``first`` gives it priority."""
    IMAGE_READERS.register(reader.name, reader, first=first)


def reader_for(path: Path) -> Reader:
    readers = IMAGE_READERS.values()
    for reader in readers:
        if reader.can_read(path):
            return reader
    tried = ", ".join(f"{r.name} ({' '.join(r.suffixes)})" for r in readers)
    raise ImageReadError(f"{path}: no reader for {path.suffix or 'files without a suffix'}; tried {tried}")
