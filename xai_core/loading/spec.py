"""What a model file says about itself and what the user asked for: preprocessing
overrides, the JSON sidecar beside a model file, and the options every loader's
``open_*`` function takes (:class:`OpenOptions`).

Sidecar: ``model.pt`` -> ``model.json`` with ``size``, ``mean``, ``std``,
``grayscale`` (flat or under ``"spec"``) and optionally ``labels``, ``arch``,
``output`` and ``inputs`` (one entry per model input).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xai_core.types import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageSpec,
    InputError,
    InputSpec,
    VectorSpec,
    spec_from_dict,
)


@dataclass(frozen=True)
class SpecOverrides:
    """Preprocessing the user set explicitly; None means 'not given'. ``resize`` 0
    means 'resize the whole photo to the input size' (no crop)."""

    size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    grayscale: bool | None = None
    resize: int | tuple[int, int] | None = None
    interpolation: str | None = None

    @property
    def sets_resize(self) -> bool:
        """Whether the user said how the photo is resized (then a model's own rule is not needed)."""
        return self.resize is not None or self.interpolation is not None

    def apply(self, spec: ImageSpec) -> ImageSpec:
        changes: dict[str, Any] = {}
        if self.size is not None:
            changes["size"] = self.size
        if self.resize is not None:
            changes["resize"] = None if self.resize == 0 else self.resize
        if self.interpolation is not None:
            changes["interpolation"] = self.interpolation
        if self.grayscale is not None:
            changes["grayscale"] = self.grayscale
            if self.grayscale != spec.grayscale and self.mean is None:
                changes["mean"] = (0.5,) if self.grayscale else (0.485, 0.456, 0.406)
                changes["std"] = (0.5,) if self.grayscale else (0.229, 0.224, 0.225)
        if self.mean is not None:
            changes["mean"] = self.mean
        if self.std is not None:
            changes["std"] = self.std
        return replace(spec, **changes) if changes else spec


@dataclass(frozen=True)
class OpenOptions:
    """What :func:`xai_core.loading.models.open_model` passes to a framework's opener."""

    arch: str | None = None
    overrides: SpecOverrides = field(default_factory=SpecOverrides)
    labels: list[str] | None = None
    trust_code: bool = False
    device: str = "auto"
    batch_size: int = 16
    # a model over table rows: its inputs (feature vectors, from the sidecar or one
    # vector of the model's own width) replace the image preprocessing
    rows: bool = False
    inputs: Any = None  # rows: a VectorSpec or a tuple of specs, one per model input
    output_kind: str | None = None
    name: str | None = None  # the name shown for the model (the file's when None)


def read_json_sidecar(path: Path) -> dict[str, Any]:
    """The JSON object in ``model.json`` beside ``model.pt`` ({} when there is none)."""
    sidecar = path.with_suffix(".json")
    if sidecar == path or not sidecar.is_file():
        return {}
    try:
        data = json.loads(sidecar.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{sidecar.name}: invalid JSON sidecar ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{sidecar.name}: the sidecar must be a JSON object")
    for where in (data, data.get("spec") if isinstance(data.get("spec"), dict) else {}):
        for key, meant in MISTAKEN_KEYS.items():
            if key in where and meant not in where:
                raise InputError(f'{sidecar.name}: "{key}" is not a key we read (it would be ignored); '
                                 f'write "{meant}" instead')
    return data


# keys users write for the ones the sidecar has: refused with the right name rather
# than ignored (other keys, such as training notes, are left alone)
MISTAKEN_KEYS = {
    "input_size": "size", "image_size": "size", "img_size": "size", "input_shape": "size", "shape": "size",
    "resolution": "size", "class_names": "labels", "classes": "labels", "label_names": "labels",
    "normalize_mean": "mean", "normalize_std": "std", "gray": "grayscale", "greyscale": "grayscale",
    "features": "feature_names", "target_column": "label_column",
    "output_kind": "output", "activation": "output",
}


def read_sidecar(path: Path) -> dict[str, Any]:
    """Image preprocessing (flat or under "spec") plus labels/arch from the sidecar."""
    data = read_json_sidecar(path)
    if not data:
        return {}
    name = path.with_suffix(".json").name
    spec = data.get("spec", data)
    if not isinstance(spec, dict):
        raise InputError(f'{name}: "spec" must be a JSON object')
    try:
        ImageSpec.from_dict(spec)  # checked here so the message names the file
    except InputError as exc:
        raise InputError(f"{name}: {exc}") from None
    labels = data.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(v, (str, int, float)) for v in labels):
        raise InputError(f'{name}: "labels" must be a list of class names')
    if not isinstance(data.get("arch", ""), str):
        raise InputError(f'{name}: "arch" must be an architecture name (a string)')
    return spec | {k: data[k] for k in ("labels", "arch") if k in data}


def sidecar_inputs(sidecar: dict[str, Any]) -> tuple[InputSpec, ...] | None:
    """The sidecar's ``inputs`` list (one entry per model input: {"kind": "image", ...}
    or {"kind": "vector", "size": F, "feature_names": [...]}) as specs, else None."""
    entries = sidecar.get("inputs")
    if entries is None:
        return None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise InputError("the sidecar's 'inputs' must be a non-empty list of objects, one per model input")
    return tuple(spec_from_dict(e) for e in entries)


def first_image_default(sidecar: dict[str, Any], shapes: list[tuple]) -> ImageSpec:
    """Preprocessing defaults from the first 4-D (image) input of a Keras model."""
    for shape in shapes:
        if len(shape) == 4:
            _, h, w, c = shape
            return model_default_spec(sidecar, h, w, c)
    return model_default_spec(sidecar, None, None, None)


def model_default_spec(sidecar: dict[str, Any], height: int | None, width: int | None,
                       channels: int | None) -> ImageSpec:
    """Preprocessing defaults for a model that declares its input shape (Keras, ONNX):
    its fixed height/width and channel count, then whatever the sidecar sets."""
    grayscale = channels == 1
    base: dict[str, Any] = {
        "size": (height, width) if height and width else (224, 224),
        "grayscale": grayscale,
        "mean": (0.5,) if grayscale else IMAGENET_MEAN,
        "std": (0.5,) if grayscale else IMAGENET_STD,
    }
    base.update({k: sidecar[k] for k in ("size", "mean", "std", "grayscale", "resize", "interpolation", "crop_rounding")
                 if k in sidecar})
    return ImageSpec.from_dict(base)


def sidecar_labels(sidecar: dict[str, Any], given: list[str] | None) -> list[str] | None:
    """The labels the user gave, else the sidecar's, else None."""
    if given is None and "labels" in sidecar:
        return [str(v) for v in sidecar["labels"]]
    return given


def rows_options(sidecar: dict[str, Any], arch: str | None, labels: list[str] | None, output_kind: str | None,
                 trust_code: bool, name: str) -> OpenOptions:
    """How a model over table rows is opened: what the user gave, else its sidecar's
    ``labels``, ``arch``/``architecture`` and ``output`` (probability, logit, sigmoid
    or score); its inputs are the sidecar's ``inputs`` (a model with one input per
    column declares them) or one feature vector of the model's own width. Rows are
    small: they run on the CPU, thousands at a time."""
    return OpenOptions(
        arch=arch or sidecar.get("arch") or sidecar.get("architecture"),
        labels=labels if labels is not None else sidecar.get("labels"),
        trust_code=trust_code, device="cpu", batch_size=4096, rows=True,
        inputs=sidecar_inputs(sidecar) or VectorSpec(),
        output_kind=output_kind or sidecar.get("output"), name=name,
    )


def describe_rows(model: Any, sidecar: dict[str, Any], name: str) -> Any:
    """Give a model over rows what its sidecar says of the table: ``feature_names``
    (the input columns in order: tables are then matched to the model by column
    name), ``columns`` (the table's columns in the model's input order, for inputs
    without names of their own) and ``label_column``."""
    from xai_core.inputs.tables import feature_names_from_sidecar

    names = feature_names_from_sidecar(sidecar, model.n_features, name)
    if names is not None and not model.multi_input:
        model.inputs = (replace(model.inputs[0], feature_names=tuple(names)),)
    model.table_columns = feature_names_from_sidecar(sidecar, model.n_features, name, key="columns")
    model.label_column = sidecar.get("label_column") if isinstance(sidecar.get("label_column"), str) else None
    return model
