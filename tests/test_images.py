"""Untrusted image files: orientation, modes, bit depths, limits, corruption."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from xai_core.inputs.images import load_image, preprocess, resize_map
from xai_core.types import ImageSpec, InputError


def encode(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    img.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    arr = load_image(encode(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert arr.shape == (40, 20, 3)
    assert arr[2, 10, 2] > 200 and arr[-3, 10, 0] > 200  # blue now on top


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "1", "CMYK", "I;16", "I", "F"])
def test_every_mode_becomes_rgb(mode):
    base = Image.fromarray(np.linspace(0, 255, 64 * 48).reshape(48, 64).astype(np.uint8))
    if mode in ("I;16", "I", "F"):
        wide = Image.fromarray(np.asarray(base).astype(np.uint16) * 257)  # 16-bit
        img = wide if mode == "I;16" else wide.convert(mode)
        data = encode(img, "TIFF")
    else:
        img = base.convert(mode)
        data = encode(img, "TIFF" if mode == "CMYK" else "PNG")
    arr = load_image(data, name=f"{mode}.img")
    assert arr.shape == (48, 64, 3) and arr.dtype == np.uint8
    assert arr[:, -1].mean() > arr[:, 0].mean()  # the gradient survives


def test_transparent_pixels_become_white():
    img = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert load_image(encode(img))[0, 0].tolist() == [255, 255, 255]


def test_sixteen_bit_range_is_kept():
    arr16 = np.array([[0, 65535], [1000, 30000]], dtype=np.uint16).repeat(4, 0).repeat(4, 1)
    out = load_image(encode(Image.fromarray(arr16)))
    assert out.max() == 255 and out.min() == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a not really", "not a readable image|corrupt"),
        (b"plain text", "not a readable image"),
    ],
)
def test_bad_bytes(data, message):
    with pytest.raises(InputError, match=message):
        load_image(data, name="upload.png")


def test_truncated_jpeg():
    data = encode(Image.new("RGB", (200, 200), (10, 200, 30)), "JPEG")
    with pytest.raises(InputError, match="upload.jpg: the image is corrupt or truncated"):
        load_image(data[: len(data) // 3], name="upload.jpg")


def test_decompression_bomb_is_refused():
    img = Image.new("1", (10000, 10000))  # 100 megapixels, a few kB as PNG
    data = encode(img)
    assert len(data) < 200_000
    with pytest.raises(InputError, match="megapixel limit|decompression bomb"):
        load_image(data, name="bomb.png")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such image file"):
        load_image(tmp_path / "nope.jpg")


def test_preprocess_size_channels_range():
    img = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    rgb = preprocess(img, ImageSpec((32, 48)))
    gray = preprocess(img, ImageSpec((32, 48), (0.5,), (0.5,), grayscale=True))
    assert rgb.shape == (32, 48, 3) and gray.shape == (32, 48, 1)
    assert rgb.dtype == np.float32 and 0 <= rgb.min() and rgb.max() <= 1


def test_resize_map_keeps_values_in_place():
    m = np.zeros((8, 8), np.float32)
    m[:4, :4] = 1
    big = resize_map(m, 80, 120)
    assert big.shape == (80, 120)
    assert big[:30, :50].mean() > 0.9 and big[50:, 70:].mean() < 0.1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"size": (2, 2)}, "out of range"),
    ({"mean": (0.1, 0.2)}, "mean has 2 values"),
    ({"std": (0.0,)}, "positive"),
])
def test_bad_specs(kwargs, message):
    with pytest.raises(InputError, match=message):
        ImageSpec(**kwargs)
