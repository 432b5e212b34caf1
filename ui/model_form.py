"""The model pickers: the image page's sidebar form (framework, model source, labels,
preprocessing) and :func:`model_picker` for the pages that read table rows (the
tabular page) or both kinds (the labelled-set page).

:func:`model_sidebar` returns a :class:`~ui.cache.ModelRequest`, or None with an
``st.error`` saying what to fix. Preprocessing widgets take their defaults from
the chosen zoo entry and are reset whenever another model is chosen.
:func:`model_picker` returns a :class:`~xai_core.sets.model.ModelRef`. Both read
the upload types and the file options (architecture, trust) from the framework
registry and the same helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from xai_core.sets.model import ModelRef
from xai_core.types import IMAGENET_MEAN, IMAGENET_STD, INTERPOLATIONS, ImageSpec, InputError, XaiError
from xai_core.worker import sandbox

from .cache import ModelRequest, content_hash, declared_preprocessing, stored_upload, unpack_savedmodel
from .frameworks import available_frameworks, upload_types
from .limits import IMAGE_MODEL_MB, LABELS_MB
from .messages import page_text
from .protection import trust_checkbox
from .reproduce import resize_text

ZOO_SOURCE = "Model zoo"
UPLOAD_SOURCE = "Upload a model file"
ZOO_CHOICE, UPLOAD_CHOICE = "Zoo model", "Upload a model"  # model_picker's sources
READS = {"image": "images", "rows": "table rows"}
BATCH = {"image": 64, "rows": 256}
NOT_STATE_DICT = "(not a state_dict)"
CUSTOM = "Custom"


@dataclass(frozen=True)
class Normalization:
    label: str
    color: tuple[tuple[float, ...], tuple[float, ...]]
    gray: tuple[tuple[float, ...], tuple[float, ...]]


PRESETS = (
    Normalization("ImageNet", (IMAGENET_MEAN, IMAGENET_STD), ((0.449,), (0.226,))),
    Normalization("[0, 1] (mean 0, std 1)", ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), ((0.0,), (1.0,))),
    Normalization("[-1, 1] (mean 0.5, std 0.5)", ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)), ((0.5,), (0.5,))),
)


def preset_values(label: str, grayscale: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    for preset in PRESETS:
        if preset.label == label:
            return preset.gray if grayscale else preset.color
    raise KeyError(label)


def matching_preset(spec: ImageSpec) -> str:
    for preset in PRESETS:
        mean, std = preset.gray if spec.grayscale else preset.color
        if _close(spec.mean_array(), mean) and _close(spec.std_array(), std):
            return preset.label
    return CUSTOM


def _close(values, target) -> bool:
    return len(values) == len(target) and all(abs(a - b) < 1e-4 for a, b in zip(values, target, strict=True))


def parse_numbers(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(";", ",").split(",") if v.strip())
    except ValueError:
        raise InputError(
            f"{what} must be comma-separated numbers such as 0.485, 0.456, 0.406; got {text!r}"
        ) from None
    if not values:
        raise InputError(f"{what} is empty: give one value, or one per channel")
    return values


def _fmt(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:g}" for v in values)


def _reset_preprocessing(owner: str, spec: ImageSpec) -> None:
    """Put the preprocessing widgets back to ``spec`` when the model changes."""
    if st.session_state.get("img_spec_owner") == owner and "img_height" in st.session_state:
        return
    st.session_state["img_spec_owner"] = owner
    st.session_state["img_height"] = int(spec.size[0])
    st.session_state["img_width"] = int(spec.size[1])
    st.session_state["img_grayscale"] = bool(spec.grayscale)
    st.session_state["img_norm"] = matching_preset(spec)
    st.session_state["img_mean"] = _fmt(spec.mean)
    st.session_state["img_std"] = _fmt(spec.std)
    st.session_state["img_resize"] = resize_text(spec)
    st.session_state["img_interpolation"] = spec.interpolation
    st.session_state["img_crop_rounding"] = spec.crop_rounding


def parse_resize(text: str) -> int | tuple[int, int] | None:
    """The Resize box: none (the whole photo to the input size), E (shortest edge)
    or H, W; then the centre crop to the input size."""
    from xai_core.cli.common import resize

    value = resize(text.replace(" ", "") or "none")
    return None if value == 0 else value


def preprocessing_form(defaults: ImageSpec, owner: str) -> ImageSpec | None:
    """Input size, resize and its filter (the centre crop), normalization preset or
    custom mean/std, grayscale."""
    _reset_preprocessing(owner, defaults)
    with st.expander("Preprocessing", expanded=False):
        c1, c2 = st.columns(2)
        height = c1.number_input("Input height", min_value=8, max_value=4096, step=1, key="img_height")
        width = c2.number_input("Input width", min_value=8, max_value=4096, step=1, key="img_width")
        c3, c4 = st.columns(2)
        resize_box = c3.text_input(
            "Resize", key="img_resize",
            help="none: the whole photo is resized to the input size (maps cover all of it); E: its shortest edge "
                 "to E pixels, H, W: to H x W, then the centre crop of the input size (maps cover the crop)")
        interpolation = c4.selectbox("Resample", INTERPOLATIONS, key="img_interpolation",
                                     help="the resize's filter (PIL's, as Hugging Face processors and timm use)")
        grayscale = st.checkbox("Grayscale (one input channel)", key="img_grayscale")
        norm = st.selectbox(
            "Normalization", [p.label for p in PRESETS] + [CUSTOM], key="img_norm",
            help="mean/std the model was trained with; applied to pixels in [0, 1]",
        )
        try:
            if norm == CUSTOM:
                mean = parse_numbers(st.text_input("Mean", key="img_mean", help="one value or one per channel"), "Mean")
                std = parse_numbers(st.text_input("Std", key="img_std", help="one value or one per channel"), "Std")
            else:
                mean, std = preset_values(norm, grayscale)
                st.caption(f"mean {_fmt(mean)} · std {_fmt(std)}")
            spec = ImageSpec((int(height), int(width)), mean, std, bool(grayscale), resize=parse_resize(resize_box),
                             interpolation=interpolation,
                             crop_rounding=st.session_state.get("img_crop_rounding", "floor"))
            st.caption(spec.describe())
        except InputError as exc:
            st.error(f"Preprocessing: {page_text(exc)}. Fix the values above or pick a preset.")
            spec = None
        st.button("Reset to the model's defaults", key="img_reset_preprocessing", on_click=_forget_owner,
                  width="stretch")
        return spec


def _forget_owner() -> None:
    st.session_state.pop("img_spec_owner", None)


def model_sidebar() -> ModelRequest | None:
    """The sidebar's model section. Returns what to load, or None (with a message)."""
    import model_zoo

    st.sidebar.header("Model")
    frameworks = available_frameworks()
    with st.sidebar:
        labels_by_key = {f.key: f.label for f in frameworks}
        chosen = st.selectbox(
            "Framework", list(labels_by_key), format_func=labels_by_key.get, key="img_framework",
            help="frameworks appear here when their adapter and package are installed",
        )
        framework = next(f for f in frameworks if f.key == chosen)
        source = st.radio("Model source", [ZOO_SOURCE, UPLOAD_SOURCE], key="img_source", horizontal=True)
        if source == ZOO_SOURCE:
            # models that work offline first, so switching framework never lands on a download error
            names = sorted((name for name, e in model_zoo.ZOO.items() if e.framework == framework.key),
                           key=lambda n: not model_zoo.ZOO[n].offline)
            if not names:
                st.info(f"The zoo has no {framework.label} model yet; upload a file instead.")
                return None
            name = st.selectbox(
                "Zoo model", names, key="img_zoo_model",
                format_func=lambda n: n if model_zoo.ZOO[n].offline else f"{n} (needs downloaded weights)",
            )
            entry = model_zoo.ZOO[name]
            st.caption(entry.description)
            labels, labels_name = _labels_uploader(f"zoo:{name}")
            spec = preprocessing_form(entry.spec, owner=f"zoo:{name}")
            if spec is None:
                return None
            return ModelRequest(framework.key, "zoo", name, name, spec, labels=labels, labels_name=labels_name)

        upload = st.file_uploader(
            "Model file", type=framework.upload_types, key=f"img_model_file_{framework.key}",
            help=f"{framework.label}: {framework.formats}", max_upload_size=IMAGE_MODEL_MB,
        )
        if upload is None:
            st.info(f"Upload a {framework.label} model ({', '.join('.' + s for s in framework.upload_types)}): "
                    f"{framework.formats}.")
            return None
        data = upload.getvalue()
        described = _sidecar_uploader(upload.name)
        digest = content_hash(data)
        try:
            path = stored_upload(upload, described)
        except XaiError as exc:
            st.error(f"{page_text(exc)}. Upload the model file and its description separately.")
            return None
        labels, labels_name = _labels_uploader(f"file:{digest}")
        arch, trust = None, False
        if framework.key == "torch":
            arch, trust = _torch_file_options(path)
        elif framework.key == "keras":
            trust = _keras_file_options()
        elif framework.key == "timm" and path.suffix.lower() != ".zip":
            arch = _timm_name()
            if arch is None:
                return None
        try:
            if framework.key == "keras" and path.suffix.lower() == ".zip":
                path = unpack_savedmodel(str(path))
                if described is not None:
                    st.warning(f"{described.name} is not read for a SavedModel zip: the model's own signature "
                               "says its inputs.")
            declared = declared_preprocessing(str(path), framework.key, trust, arch)
        except XaiError as exc:
            hint = "" if sandbox.detect().confined else (
                " If it has Lambda layers or is a SavedModel and you trust its author, tick 'I trust this file'."
                if framework.key == "keras" else "")
            text = page_text(exc)
            if described is not None:  # the loaders name the stored copy <model stem>.json
                text = text.replace(Path(path).with_suffix(".json").name, described.name)
            st.error(f"Could not read {upload.name}: {text}.{hint}")
            return None
        if framework.key in ("huggingface", "timm"):
            st.caption("Preprocessing below comes from the model's own "
                       + ("processor config" if framework.key == "huggingface" else "timm data config")
                       + f": {declared.describe()}; maps cover what the model sees (a centre crop is drawn "
                         "on its region of the photo, the margins dimmed).")
        # a timm name decides the data config; a PyTorch architecture does not (typed values stay)
        owner = f"file:{digest}:{arch}" if framework.key == "timm" else f"file:{digest}"
        spec = preprocessing_form(declared, owner=owner)
        if spec is None:
            return None
        return ModelRequest(framework.key, "file", str(path), upload.name, spec, content_hash=digest,
                            arch=arch, trust_pickle=trust, labels=labels, labels_name=labels_name,
                            sidecar_hash=content_hash(described.getvalue()) if described else None,
                            sidecar_name=described.name if described else None)


def _sidecar_uploader(model_name: str):
    """The model's JSON description (its inputs, preprocessing, labels), as the
    command line reads it from ``<model stem>.json`` beside the file."""
    stem = Path(model_name).stem
    return st.file_uploader(
        "Model description (.json, optional)", type=["json"], max_upload_size=LABELS_MB,
        key=f"img_sidecar_{content_hash(model_name.encode())[:12]}",
        help=f'what the command line reads from {stem}.json beside the model: "inputs" (one entry per model '
             'input, e.g. {"kind": "image", "name": "digit", "size": [28, 28]} or {"kind": "vector", "name": '
             '"extra", "size": 3, "feature_names": ["a", "b", "c"]}), preprocessing, "labels"',
    )


def _timm_name() -> str | None:
    """The timm architecture the uploaded weights belong to, from a searchable list."""
    from xai_core.loading.timm import PREFIX, model_names

    names = model_names()
    name = st.selectbox("timm model name", names, index=None, key="img_timm_name",
                        placeholder="type to search, e.g. convnext_atto",
                        help="the architecture the weights were saved from (timm.create_model name); the number "
                             "of classes is read from the weights")
    if name is None:
        st.info("Choose the timm model name of these weights.")
        return None
    return PREFIX + name


def _keras_file_options() -> bool:
    """Lambda layers and SavedModel graphs carry code: confined, or with explicit trust."""
    return trust_checkbox("img_trust_keras", "a Lambda layer or a SavedModel graph")


def _torch_file_options(path) -> tuple[str | None, bool]:
    """A torch.save file may be a state_dict (needs an architecture) or a pickled
    module; pickled modules, TorchScript and .pt2 programs carry code (confined, or
    with explicit trust)."""
    from xai_core.loading.torch import sniff_torch_format

    fmt = sniff_torch_format(path)
    if fmt not in ("torch_save", "safetensors"):
        return None, trust_checkbox("img_trust_pickle", "a TorchScript or torch.export program")
    from model_zoo.architectures import architecture_names

    arch = st.selectbox(
        "Architecture", [NOT_STATE_DICT] + architecture_names(), key="img_arch",
        help="a state_dict holds weights only: choose the architecture they belong to",
    )
    if arch != NOT_STATE_DICT or fmt == "safetensors":  # weights only: no code to trust
        return (None if arch == NOT_STATE_DICT else arch), False
    return None, trust_checkbox("img_trust_pickle", "a fully pickled module")


def _labels_uploader(owner: str) -> tuple[tuple[str, ...] | None, str | None]:
    """Class names for the model ``owner`` (zoo name or upload hash). The uploader is
    keyed by the model, so a labels file never stays attached to another model."""
    from xai_core.inputs.labels import read_labels

    upload = st.file_uploader(
        "Labels file (optional)", type=["txt", "json"], key=f"img_labels_file_{content_hash(owner.encode())[:12]}",
        help="class names for this model: one per line, a JSON list, or a JSON object {index: name}",
        max_upload_size=LABELS_MB,
    )
    if upload is None:
        return None, None
    try:
        return tuple(read_labels(upload.getvalue(), upload.name)), upload.name
    except XaiError as exc:
        st.error(f"{page_text(exc)}. The model's own labels are used instead; fix the file and upload it again.")
        return None, None


def _zoo_models(reads: tuple[str, ...]) -> dict[str, tuple[str, str, str]]:
    """Zoo models a page reading ``reads`` offers: name -> (kind, framework,
    description); offline image models only (digits_cnn first)."""
    import model_zoo
    from model_zoo.tabular import DEFAULT_TABULAR_MODEL, TABULAR_ZOO, available_tabular_models

    models: dict[str, tuple[str, str, str]] = {}
    if "image" in reads:
        names = sorted((n for n, e in model_zoo.ZOO.items() if e.offline), key=lambda n: (n != "digits_cnn", n))
        models |= {n: ("image", model_zoo.ZOO[n].framework, model_zoo.ZOO[n].description) for n in names}
    if "rows" in reads:
        names = sorted(available_tabular_models(), key=lambda n: n != DEFAULT_TABULAR_MODEL)
        models |= {n: ("rows", TABULAR_ZOO[n].framework, TABULAR_ZOO[n].description) for n in names}
    return models


def model_picker(prefix: str, reads: tuple[str, ...] = ("rows",), zoo_key: str | None = None) -> ModelRef | None:
    """A zoo model the page can read, or an uploaded model file (its framework
    inferred from the file by the registry; a bare state_dict names its
    architecture; code-carrying files need trust where nothing confines the
    worker). Widget keys start with ``prefix``. None, with a line saying what to
    do, until a model is chosen."""
    source = st.radio("Model", [ZOO_CHOICE, UPLOAD_CHOICE], horizontal=True, key=f"{prefix}_model_source")
    if source == ZOO_CHOICE:
        models = _zoo_models(reads)
        name = st.selectbox("Zoo model", list(models), key=zoo_key or f"{prefix}_zoo_model",
                            format_func=lambda n: f"{n} ({models[n][1]}"
                            + (f", {READS[models[n][0]]})" if len(reads) > 1 else ")"))
        kind, _, description = models[name]
        st.caption(description)
        return ModelRef(name, kind, batch_size=BATCH[kind])
    rows_only = tuple(reads) == ("rows",)
    upload = st.file_uploader(
        "Model file", type=upload_types(rows=rows_only), key=f"{prefix}_model_upload",
        max_upload_size=IMAGE_MODEL_MB,
        help="; ".join(f"{f.label}: {f.formats}" for f in available_frameworks(rows=rows_only))
        + ". Labels, inputs and preprocessing come from a sidecar JSON or the file",
    )
    kind = "rows" if rows_only else st.radio("The model reads", list(reads), horizontal=True,
                                             key=f"{prefix}_model_kind", format_func=READS.get)
    arch = st.text_input("Architecture of a bare state_dict", value="", key=f"{prefix}_arch",
                         placeholder="tabular_mlp" if rows_only else "digits_cnn, resnet18, tabular_mlp, timm:NAME")
    trust = trust_checkbox(f"{prefix}_trust", "a TorchScript or .pt2 program, a fully pickled PyTorch module "
                                              "or a Keras Lambda layer")
    if upload is None:
        st.info("Upload a model file, or pick a zoo model.")
        return None
    return ModelRef(str(stored_upload(upload)), kind, arch=arch.strip() or None, trust_pickle=trust,
                    batch_size=BATCH[kind])
