"""Image choice (sample gallery or upload) and a preview of the model's input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
from PIL import Image

from xai_core.inputs.images import SUPPORTED_SUFFIXES, preprocess
from xai_core.types import ImageSpec, XaiError

from .cache import array_hash, content_hash, decode_image
from .limits import IMAGE_MB
from .messages import page_text
from .samples import list_samples

SAMPLE_SOURCE = "Sample image"
UPLOAD_SOURCE = "Upload an image"
IMAGE_TYPES = [suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES]  # exactly what load_image reads
THUMB_HEIGHT = 96
PREVIEW_SIDE = 160
KEPT_SAMPLE = "img_sample_kept"  # not a widget key, so Streamlit keeps it while the selectbox is hidden


@dataclass(frozen=True)
class PickedImage:
    name: str  # what the page shows: a sample's path in the repository, or the uploaded file's name
    array: np.ndarray  # RGB uint8 H x W x 3
    key: str  # content hash of the decoded pixels (what results are keyed by)
    file_sha256: str = ""  # sha256 of the file itself, as `sha256sum` prints it
    command_path: str = ""  # --image of the reproduce command: a sample's absolute path, an upload's name
    uploaded: bool = False  # the user's own file, which the command names by its bare name

    @property
    def size(self) -> tuple[int, int]:
        return int(self.array.shape[0]), int(self.array.shape[1])


@st.cache_data(show_spinner=False, max_entries=32)
def _sample_pixels(name: str) -> np.ndarray:
    samples = {s.name: s for s in list_samples()}
    return samples[name].load()


@st.cache_data(show_spinner=False, max_entries=32)
def _sample_sha256(name: str) -> str:
    return content_hash({s.name: s for s in list_samples()}[name].read_bytes())


@st.cache_data(show_spinner=False, max_entries=32)
def _thumbnail(name: str) -> np.ndarray:
    image = Image.fromarray(_sample_pixels(name))
    width = max(1, round(image.width * THUMB_HEIGHT / image.height))
    return np.asarray(image.resize((width, THUMB_HEIGHT), Image.NEAREST if image.height < THUMB_HEIGHT else Image.LANCZOS))


def image_picker() -> PickedImage | None:
    """Sample gallery or upload. Returns the decoded image, or None (with a message)."""
    source = st.radio("Image source", [SAMPLE_SOURCE, UPLOAD_SOURCE], key="img_image_source", horizontal=True)
    if source == SAMPLE_SOURCE:
        samples = list_samples()
        names = [s.name for s in samples]
        try:
            st.image([_thumbnail(n) for n in names], caption=names)
        except XaiError as exc:
            st.warning(f"A sample image could not be read: {page_text(exc)}.")
        if st.session_state.get("img_sample") not in names:
            st.session_state.pop("img_sample", None)
            if st.session_state.get(KEPT_SAMPLE) in names:  # the choice survives a switch to uploading and back
                st.session_state["img_sample"] = st.session_state[KEPT_SAMPLE]
        name = st.selectbox("Sample image", names, key="img_sample")
        st.session_state[KEPT_SAMPLE] = name
        by_name = {s.name: s for s in samples}
        try:
            pixels = _sample_pixels(name)
        except XaiError as exc:
            st.error(f"{page_text(exc)}. Pick another sample or upload an image.")
            return None
        sample = by_name[name]
        return PickedImage(sample.command_path, pixels, array_hash(pixels), _sample_sha256(name),
                           str(sample.path.resolve()) if sample.path is not None else sample.name)

    upload = st.file_uploader("Image file", type=IMAGE_TYPES, key="img_image_file", max_upload_size=IMAGE_MB,
                              help="JPG, PNG, BMP, WebP, TIFF or GIF (first frame); EXIF orientation is applied")
    if upload is None:
        st.info("Upload a photo (JPG, PNG, BMP, WebP, TIFF or GIF), or switch to a sample image.")
        return None
    try:
        pixels = decode_image(upload.getvalue(), upload.name)
    except XaiError as exc:
        st.error(f"{page_text(exc)}. Upload another file, or pick a sample image.")
        return None
    return PickedImage(upload.name, pixels, array_hash(pixels), content_hash(upload.getvalue()), upload.name,
                       uploaded=True)


def model_input_preview(image: PickedImage, spec: ImageSpec) -> None:
    """Exactly what the model receives (before mean/std): xai_core.inputs.images.preprocess."""
    x = preprocess(image.array, spec)
    pixels = (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    h, w = spec.size
    scale = PREVIEW_SIDE / max(h, w)
    shown = Image.fromarray(pixels).resize(
        (max(1, round(w * scale)), max(1, round(h * scale))),
        Image.NEAREST if scale > 1 else Image.LANCZOS,
    )
    st.image(np.asarray(shown), caption=f"Model input: {h}x{w}, {'gray' if spec.grayscale else 'RGB'} "
             f"(before mean/std)")
