"""Decode untrusted image files and turn them into model inputs.

Every decoded image is RGB uint8 (H x W x 3) in its display orientation (EXIF
applied), so that an overlay drawn on it lines up with what the user sees.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from xai_core.types import ImageSpec, InputError

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_SIDE = 4096  # larger photos are downscaled on reading (every model input is far smaller)
HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
SUPPORTED_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def load_image(source: str | os.PathLike | bytes, name: str | None = None) -> np.ndarray:
    """Read an image file (path or bytes) -> RGB uint8 array H x W x 3.

    Handles EXIF orientation, RGBA (composited on white), palette, grayscale and
    16-bit images; refuses files over 50 MB or 50 megapixels (decompression bombs);
    photos longer than 4096 pixels are downscaled while reading (JPEGs during decoding).
    """
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
        label = name or "uploaded image"
    else:
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise InputError(f"{label}: no such image file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{label}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
        data = path.read_bytes()
    if len(data) == 0:
        raise InputError(f"{label}: the file is empty")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"{label}: file is larger than {MAX_FILE_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > MAX_PIXELS:
                raise InputError(
                    f"{label}: {img.width}x{img.height} pixels is over the "
                    f"{MAX_PIXELS // 1_000_000} megapixel limit; downscale it first"
                )
            if img.format == "JPEG" and max(img.size) > MAX_SIDE:
                img.draft("RGB", (MAX_SIDE, MAX_SIDE))  # decode at 1/2..1/8 scale: less memory
            img.load()
            if max(img.size) > MAX_SIDE and img.mode not in HIGH_DEPTH_MODES:
                img.thumbnail((MAX_SIDE, MAX_SIDE), Image.BILINEAR)  # before any float copy
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{label}: refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise InputError(
            f"{label}: not a readable image; use JPG, PNG, BMP, WebP, TIFF or GIF"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{label}: the image is corrupt or truncated ({exc})") from None
    return to_rgb_array(img)


def to_rgb_array(img: Image.Image) -> np.ndarray:
    """PIL image of any mode -> RGB uint8 H x W x 3, EXIF orientation applied."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not lose the image
        pass
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    mode = img.mode
    if img.width < 2 or img.height < 2:
        raise InputError("the image is too small (under 2x2 pixels)")
    if mode in HIGH_DEPTH_MODES:
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        gray = arr.astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[0] < 2 or arr.shape[1] < 2:
        raise InputError("the image is too small (under 2x2 pixels)")
    return np.ascontiguousarray(arr)


def preprocess(image: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """RGB uint8 H x W x 3 -> model input float32 h x w x C in [0, 1] (before mean/std).

    As ``spec`` says (:class:`~xai_core.types.ImageSpec`): the whole photo resized to
    the input size, or resized (shortest edge or a fixed size) and centre-cropped,
    with PIL's filter, pixel for pixel as Hugging Face's PIL processors and timm's
    eval transforms do. :func:`crop_box` says where the crop lies in the photo.
    """
    pil = Image.fromarray(image)
    if spec.grayscale:
        pil = pil.convert("L")
    height, width = resized_size(spec, image.shape[0], image.shape[1])
    if pil.size != (width, height):
        pil = pil.resize((width, height), RESAMPLE[spec.interpolation])
    arr = np.asarray(pil, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    top, left = crop_offsets(spec, height, width)
    h, w = spec.size
    return np.ascontiguousarray(arr[top:top + h, left:left + w])


RESAMPLE = {"nearest": Image.NEAREST, "bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC,
            "lanczos": Image.LANCZOS, "box": Image.BOX, "hamming": Image.HAMMING}


def resized_size(spec: ImageSpec, height: int, width: int) -> tuple[int, int]:
    """(height, width) of a ``height`` x ``width`` photo after the resize, before the
    crop (the shortest-edge rule of torchvision's Resize and transformers' processors:
    the long side is truncated, int(edge * long / short))."""
    if spec.resize is None:
        return spec.size
    if not isinstance(spec.resize, int):
        return spec.resize
    edge = spec.resize
    if width <= height:
        return int(edge * height / width), edge
    return edge, int(edge * width / height)


def crop_offsets(spec: ImageSpec, height: int, width: int) -> tuple[int, int]:
    """(top, left) of the centre crop in the resized ``height`` x ``width`` picture."""
    h, w = spec.size
    if spec.crop_rounding == "round":  # torchvision's CenterCrop
        return int(round((height - h) / 2.0)), int(round((width - w) / 2.0))
    return (height - h) // 2, (width - w) // 2


def crop_box(spec: ImageSpec, height: int, width: int) -> dict[str, float]:
    """Where the model's input lies in a ``height`` x ``width`` photo: {left, top,
    right, bottom} in the photo's pixels (the whole photo without a crop), with the
    photo's ``width`` and ``height``."""
    rh, rw = resized_size(spec, height, width)
    top, left = crop_offsets(spec, rh, rw)
    h, w = spec.size
    sy, sx = height / rh, width / rw
    return {"left": left * sx, "top": top * sy, "right": (left + w) * sx, "bottom": (top + h) * sy,
            "width": width, "height": height}


def resize_map(attribution: np.ndarray, height: int, width: int, cubic: bool = True) -> np.ndarray:
    """Resize a 2-D float map to (height, width) (bicubic by default, as Grad-CAM papers do)."""
    if attribution.shape == (height, width):
        return attribution.astype(np.float32)
    pil = Image.fromarray(attribution.astype(np.float32), mode="F")
    out = pil.resize((width, height), Image.BICUBIC if cubic else Image.BILINEAR)
    return np.asarray(out, dtype=np.float32)
