"""One form per model input, for models with several inputs (``adapter.inputs``).

An image input is fed the page's image by default (the same picture feeds every
image input, each at its own size) or an image uploaded for it; a vector input
takes typed comma-separated values or an uploaded ``.npy``/``.csv`` row, checked
against its :class:`~xai_core.types.VectorSpec` by :mod:`xai_core.inputs.feature_rows`
(what the command line's ``--input NAME=FILE`` reads too).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import streamlit as st

from xai_core.inputs.feature_rows import parse_typed_row, read_feature_row
from xai_core.types import ImageSpec, VectorSpec, XaiError

from .cache import array_hash, content_hash, decode_image
from .image_form import IMAGE_TYPES, PickedImage
from .limits import IMAGE_MB, LABELS_MB
from .messages import page_text

PAGE_IMAGE = "The page's image"
OWN_IMAGE = "Upload an image for this input"
TYPED = "Type the values"
ROW_FILE = "Upload a .npy or .csv row"


@dataclass(frozen=True)
class FedInput:
    """What feeds one model input, and how the command line names it."""

    name: str
    kind: str  # "image" or "vector"
    item: np.ndarray  # RGB uint8 picture, or a float32 row of feature values
    source: str  # what the page shows: the picture's or file's name, or "typed values"
    command_file: str | None = None  # --input NAME=<this>; None: fed by --image
    uploaded: bool = False  # a file the user gave, which the command names by its bare name
    sha256: str = ""
    feature_names: tuple[str, ...] | None = None

    def csv_row(self) -> bytes:
        """A typed row as the one-line CSV the reproduce command reads (header: the feature names)."""
        header = ",".join(self.feature_names) + "\n" if self.feature_names else ""
        return (header + ",".join(f"{v:.9g}" for v in self.item) + "\n").encode()


@dataclass(frozen=True)
class FedInputs:
    inputs: tuple[FedInput, ...]

    @property
    def items(self) -> list[np.ndarray]:
        return [i.item for i in self.inputs]

    @property
    def key(self) -> str:
        """The content of every input: results are keyed (and kept) by it."""
        digest = hashlib.sha256()
        for fed in self.inputs:
            digest.update(f"{fed.name}\x1f{fed.kind}\x1f".encode())
            digest.update(array_hash(fed.item).encode())
        return digest.hexdigest()


def _image_input(spec: ImageSpec, picked: PickedImage) -> FedInput | None:
    key = f"img_input_{spec.name}"
    h, w = spec.size
    st.markdown(f"**{spec.name}**: image, {h}x{w} {'gray' if spec.grayscale else 'RGB'}")
    source = st.radio("Feed it", [PAGE_IMAGE, OWN_IMAGE], key=f"{key}_source", horizontal=True,
                      label_visibility="collapsed")
    if source == PAGE_IMAGE:
        return FedInput(spec.name, "image", picked.array, picked.name, None, False, picked.file_sha256)
    upload = st.file_uploader(f"Image for {spec.name}", type=IMAGE_TYPES, key=f"{key}_file",
                              max_upload_size=IMAGE_MB)
    if upload is None:
        st.info(f"Upload an image for input {spec.name}, or feed it the page's image.")
        return None
    try:
        pixels = decode_image(upload.getvalue(), upload.name)
    except XaiError as exc:
        st.error(f"Input {spec.name}: {page_text(exc)}. Upload another image.")
        return None
    return FedInput(spec.name, "image", pixels, upload.name, upload.name, True, content_hash(upload.getvalue()))


def _vector_input(spec: VectorSpec) -> FedInput | None:
    key = f"img_input_{spec.name}"
    names = spec.names()
    size = f"{spec.size} features" if spec.size is not None else "feature values"
    st.markdown(f"**{spec.name}**: {size}")
    if names:
        st.caption("Features, in order: " + ", ".join(names))
    source = st.radio("Values from", [TYPED, ROW_FILE], key=f"{key}_source", horizontal=True,
                      label_visibility="collapsed")
    known = tuple(names) if spec.feature_names is not None else None
    try:
        if source == TYPED:
            text = st.text_input(
                f"Values for {spec.name}", value=", ".join(["0"] * (spec.size or 0)), key=f"{key}_values",
                help="comma-separated numbers, one per feature, in the order above")
            row = parse_typed_row(text, spec)
            return FedInput(spec.name, "vector", row, "typed values", f"{spec.name}.csv", True, "", known)
        upload = st.file_uploader(f"Row for {spec.name}", type=["npy", "csv"], key=f"{key}_file",
                                  max_upload_size=LABELS_MB,
                                  help="a .npy of shape (F,) or (1, F), or a .csv with one row (a header line "
                                       "of feature names is allowed)")
        if upload is None:
            st.info(f"Upload a .npy or .csv row for input {spec.name}, or type the values.")
            return None
        row = read_feature_row(upload.getvalue(), upload.name, spec)
        return FedInput(spec.name, "vector", row, upload.name, upload.name, True, content_hash(upload.getvalue()),
                        known)
    except XaiError as exc:
        text = page_text(exc)
        st.error(f"{text[:1].upper()}{text[1:]}. Fix the values for {spec.name}.")
        return None


def model_inputs_form(adapter, picked: PickedImage) -> FedInputs | None:
    """One form per input of a model with several inputs. None (after a message)
    while an input has nothing valid to feed it."""
    st.subheader("Model inputs")
    st.caption(f"{adapter.name} takes {len(adapter.inputs)} inputs; each is explained on its own.")
    fed = []
    for spec in adapter.inputs:
        with st.container(border=True):
            one = _image_input(spec, picked) if isinstance(spec, ImageSpec) else _vector_input(spec)
        fed.append(one)
    if any(f is None for f in fed):
        return None
    return FedInputs(tuple(fed))
