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


def preprocess_batch(images: np.ndarray, spec: ImageSpec) -> np.ndarray:
    """N RGB uint8 images of one size (N x H x W x 3) -> N model inputs, each equal
    to :func:`preprocess` of that image, bit for bit, in a few array operations.

    Grayscale uses PIL's own integer ITU-R 601-2 formula. PIL's bilinear resize of
    an 8-bit image is separable: one pass along rows into an 8-bit image, then one
    along columns (or the other way round: which one PIL runs first depends on its
    version and the sizes), the coefficients set by the sizes alone. So N images
    stacked into one tall image take the width's pass in one PIL call, and laid
    side by side the height's pass in another: the same integer arithmetic as N
    separate resizes. The order is the one that reproduces PIL's own resize on
    random probe images of these sizes (:func:`_resized_together`); where neither does,
    each image is resized on its own.
    """
    images = np.asarray(images)
    h, w = spec.size
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or not len(images):
        return np.stack([preprocess(image, spec) for image in images]) if len(images) else \
            np.zeros((0, *spec.shape), np.float32)
    if spec.grayscale:
        v = images.astype(np.uint32)
        # Pillow's rgb2l: L = (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16
        pixels = ((v[..., 0] * 19595 + v[..., 1] * 38470 + v[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)
        pixels = pixels[..., None]
    else:
        pixels = images
    pixels = _resized_together(pixels, (h, w), Image.BILINEAR)
    if pixels is None:
        return np.stack([preprocess(image, spec) for image in images])
    return np.ascontiguousarray(pixels.astype(np.float32) / 255.0)


def _mode(pixels: np.ndarray) -> str:
    if pixels.dtype == np.float32:
        return "F"
    return "L" if pixels.shape[-1] == 1 else "RGB"


def _one_pass(pixels: np.ndarray, size: int, axis: int, resample: int) -> np.ndarray:
    """N x H x W x C (uint8, or float32 with C = 1) -> the same resized along
    ``axis`` (1: height, 2: width) to ``size``, as one PIL image (the N images
    along the other axis)."""
    n, height, width, c = pixels.shape
    if pixels.shape[axis] == size:
        return pixels
    if axis == 2:  # a tall image: rows of different images never meet in a pass along rows
        flat = pixels.reshape(n * height, width, c)
        out_size, shape = (size, n * height), (n, height, size, c)
    else:  # side by side: columns never meet in a pass along columns
        flat = np.ascontiguousarray(pixels.transpose(1, 0, 2, 3)).reshape(height, n * width, c)
        out_size, shape = (n * width, size), (size, n, width, c)
    mode = _mode(pixels)
    image = Image.fromarray(flat if mode == "RGB" else np.ascontiguousarray(flat[..., 0]), mode)
    out = np.asarray(image.resize(out_size, resample)).reshape(shape)
    return out if axis == 2 else out.transpose(1, 0, 2, 3)


def _two_passes(pixels: np.ndarray, size: tuple[int, int], order: str, resample: int) -> np.ndarray:
    if order == "width first":
        return _one_pass(_one_pass(pixels, size[1], 2, resample), size[0], 1, resample)
    return _one_pass(_one_pass(pixels, size[0], 1, resample), size[1], 2, resample)


_PASS_ORDERS: dict[tuple, str | None] = {}


def _resized_together(pixels: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray | None:
    """N images resized in two PIL calls, equal to resizing each on its own; None
    when no pass order reproduces PIL's own resize on random probe images of these
    sizes (then the caller resizes one at a time)."""
    if pixels.shape[1:3] == tuple(size):
        return pixels
    shape = pixels.shape[1:]
    key = (shape, pixels.dtype.str, tuple(size), resample)
    if key not in _PASS_ORDERS:
        rng = np.random.default_rng(0)
        probes = rng.integers(0, 256, (4, *shape), dtype=np.uint8) if pixels.dtype == np.uint8 else \
            rng.standard_normal((4, *shape)).astype(pixels.dtype)
        mode = _mode(probes)
        want = np.stack([np.asarray(Image.fromarray(p if mode == "RGB" else np.ascontiguousarray(p[..., 0]), mode)
                                    .resize((size[1], size[0]), resample)).reshape(*size, shape[-1])
                         for p in probes])
        found = [order for order in ("width first", "height first")
                 if np.array_equal(_two_passes(probes, size, order, resample), want)]
        _PASS_ORDERS[key] = found[0] if found else None
    order = _PASS_ORDERS[key]
    return None if order is None else _two_passes(pixels, size, order, resample)


def resize_maps(maps: np.ndarray, height: int, width: int, cubic: bool = True) -> np.ndarray:
    """N float maps (N x h x w) -> N x height x width, each equal to :func:`resize_map` of it."""
    maps = np.asarray(maps, np.float32)
    if maps.shape[1:] == (height, width):
        return maps
    together = _resized_together(maps[..., None], (height, width), Image.BICUBIC if cubic else Image.BILINEAR) \
        if len(maps) else None
    if together is None:
        return np.stack([resize_map(m, height, width, cubic) for m in maps]) if len(maps) else \
            np.zeros((0, height, width), np.float32)
    return together[..., 0]


def resize_map(attribution: np.ndarray, height: int, width: int, cubic: bool = True) -> np.ndarray:
    """Resize a 2-D float map to (height, width) (bicubic by default, as Grad-CAM papers do)."""
    if attribution.shape == (height, width):
        return attribution.astype(np.float32)
    pil = Image.fromarray(attribution.astype(np.float32), mode="F")
    out = pil.resize((width, height), Image.BICUBIC if cubic else Image.BILINEAR)
    return np.asarray(out, dtype=np.float32)
