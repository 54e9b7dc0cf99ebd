"""Normalisation: grayscale detection, bit depth, resizing, pass-through, readers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from echocaptions.imaging.normalise import normalise, normalise_file, pixel_sha256
from echocaptions.imaging.readers import ImageReadError, reader_for
from echocaptions.imaging.stage import ImageOptions, decode_item
from echocaptions.schema import SourceItem


def _speckle(h: int = 60, w: int = 80, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w), dtype=np.uint8)


def test_grey_rgb_becomes_grayscale_and_colour_stays(tmp_path: Path) -> None:
    grey = np.stack([_speckle()] * 3, axis=-1)
    out = normalise(Image.fromarray(grey), max_side=None)
    assert Image.open(io.BytesIO(out.png)).mode == "L"
    colour = grey.copy()
    colour[10:20, 10:20, 0] = 255
    assert Image.open(io.BytesIO(normalise(Image.fromarray(colour), None).png)).mode == "RGB"


def test_16_bit_is_scaled_to_8_bit() -> None:
    arr = (np.arange(100 * 100, dtype=np.uint16).reshape(100, 100) * 6)
    out = Image.open(io.BytesIO(normalise(Image.fromarray(arr), None).png))
    assert out.mode == "L"
    values = np.asarray(out)
    assert values.min() == 0 and values.max() == 255


def test_resize_keeps_aspect_and_hash_is_of_pixels(tmp_path: Path) -> None:
    img = Image.fromarray(_speckle(300, 400))
    out = normalise(img, max_side=100)
    assert (out.width, out.height) == (100, 75)
    assert out.sha256 == pixel_sha256(Image.open(io.BytesIO(out.png)))


def test_grayscale_png_passes_through_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(_speckle()).save(path)
    out = normalise_file(path, max_side=512)
    assert out.passthrough and out.png == path.read_bytes()
    rgb = tmp_path / "b.png"
    Image.fromarray(np.stack([_speckle()] * 3, axis=-1)).save(rgb)
    out_rgb = normalise_file(rgb, max_side=512)
    assert not out_rgb.passthrough
    assert out_rgb.sha256 == out.sha256


def test_png_with_text_chunks_is_reencoded(tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Patient", "Jane Doe")
    path = tmp_path / "t.png"
    Image.fromarray(_speckle()).save(path, pnginfo=info)
    out = normalise_file(path, max_side=None)
    assert not out.passthrough
    assert b"Jane Doe" not in out.png


def test_no_reader_lists_the_readers_tried(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError) as err:
        reader_for(tmp_path / "x.xyz")
    assert "pillow" in str(err.value) and "video" in str(err.value)


def test_gif_and_video_are_sampled_at_a_rate_with_a_cap(tmp_path: Path) -> None:
    frames = [Image.fromarray(_speckle(seed=i)) for i in range(10)]
    gif = tmp_path / "clip.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=250, loop=0)
    item = SourceItem(source="s", dataset="d", organ="lung", path=str(gif), source_path="clip.gif", expand=True)
    got = list(decode_item(item, ImageOptions(fps=2.0, max_frames=3)))
    assert [f for f, _ in got] == [0, 2, 4]
    got = list(decode_item(item, ImageOptions(fps=2.0, max_frames=10)))
    assert [f for f, _ in got] == [0, 2, 4, 6, 8]

    import av

    mp4 = tmp_path / "clip.mp4"
    with av.open(str(mp4), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 80, 60, "yuv420p"
        for img in [Image.fromarray(_speckle(seed=i)) for i in range(30)]:
            for packet in stream.encode(av.VideoFrame.from_image(img.convert("RGB"))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    item = SourceItem(source="s", dataset="d", organ="lung", path=str(mp4), source_path="clip.mp4", expand=True)
    got = list(decode_item(item, ImageOptions(fps=1.0, max_frames=8)))
    assert [f for f, _ in got] == [0, 10, 20]
    assert all(n.width == 80 and n.height == 60 for _, n in got)
