"""timm models: a timm model name plus a weights file, or a timm folder.

* ``--model weights.safetensors --arch timm:convnext_atto`` (or ``"arch":
  "timm:convnext_atto"`` in the sidecar): the architecture is built by
  ``timm.create_model(name, pretrained=False)``, its number of classes read from
  the classifier's weight in the file; weights from ``.safetensors`` (header
  checked, :mod:`.tensor_files`) or a state_dict read with ``weights_only=True``.
* A timm folder (what ``timm.models.save_for_hf`` and the Hub's ``timm/`` repos
  hold): ``config.json`` with ``architecture``, ``num_classes``, ``model_args`` and
  ``pretrained_cfg``, and ``model.safetensors``. ``model_args`` are constructor
  arguments: only JSON numbers, strings and lists of them, sizes bounded, and
  none of ``create_model``'s own options (no checkpoint path, no download).

The model is sized on PyTorch's ``meta`` device first and must not need more
values than the weights hold; weights load strictly (every tensor present).
Preprocessing is timm's own data config for the model
(``timm.data.resolve_model_data_config``) applied as timm's eval transform does
(``create_transform``): resize to input size / crop_pct, interpolation, centre
crop, mean/std (:func:`data_config_spec`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xai_core.loading.spec import OpenOptions, read_sidecar, sidecar_labels
from xai_core.loading.tensor_files import safetensors_elements
from xai_core.types import ImageSpec, InputError, ModelLoadError

PREFIX = "timm:"
# create_model's own keywords: never taken from a file's model_args
FACTORY_KEYWORDS = frozenset({
    "pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir", "scriptable",
    "exportable", "no_jit", "model_name", "pretrained_strict", "feature_cfg", "features_only",
})
DATA_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def is_timm_arch(arch: str | None) -> bool:
    return bool(arch) and str(arch).startswith(PREFIX)


def timm_name(arch: str) -> str:
    return str(arch)[len(PREFIX):] if is_timm_arch(arch) else str(arch)


def import_timm():
    try:
        import timm
    except ImportError:
        raise ModelLoadError("timm models need the timm package: pip install -r requirements.txt") from None
    return timm


def model_names() -> list[str]:
    """Every architecture name timm can build (for the dashboard's searchable box)."""
    return list(import_timm().list_models())


def open_timm(path: Path, options: OpenOptions):
    """A timm weights file with its name (``options.arch`` or the sidecar's ``arch``),
    or a timm folder / zip of one -> a TorchAdapter."""
    from xai_core.adapters.torch import TorchAdapter

    model, labels, note = load_timm(path, options.arch)
    spec = options.overrides.apply(data_config_spec(model, options.overrides.sets_resize))
    adapter = TorchAdapter(model, spec, sidecar_labels({}, options.labels) or labels, name=path.name, kind="module",
                           device=options.device, batch_size=options.batch_size, output_kind="logit")
    adapter.preprocessing_note = note
    adapter.timm_architecture = model.pretrained_cfg.get("architecture", "")
    return adapter


def load_timm(path: Path, arch: str | None) -> tuple[Any, list[str] | None, str]:
    """(module, labels or None, preprocessing note)."""
    path = Path(path)
    label = path.name
    if path.is_dir() or path.suffix.lower() == ".zip":
        from xai_core.loading.huggingface import model_folder

        folder = model_folder(path)
        config = _folder_config(folder, label)
        name = config["architecture"]
        weights = folder / "model.safetensors"
        if not weights.is_file():
            if (folder / "pytorch_model.bin").is_file():
                weights = folder / "pytorch_model.bin"
            else:
                raise ModelLoadError(f"{label}: no model.safetensors in the timm folder")
        model_args = config.get("model_args") or {}
        overlay = {k: config["pretrained_cfg"][k] for k in DATA_KEYS if k in (config.get("pretrained_cfg") or {})}
        labels = _label_names(config.get("label_names"))
    else:
        sidecar = read_sidecar(path)
        arch = arch or sidecar.get("arch")
        if not is_timm_arch(arch) and not (arch and sidecar.get("framework") == "timm"):
            raise InputError(f"{label}: name its timm architecture: --arch timm:NAME (e.g. timm:convnext_atto); "
                             "`timm.list_models()` lists the names")
        name, weights, model_args, overlay = timm_name(arch), path, {}, {}
        labels = sidecar_labels(sidecar, None)
    state = read_weights(weights, label)
    model = build_timm(name, state, model_args, overlay, label)
    cfg = model.pretrained_cfg
    note = (f"timm data config of {name}: input {tuple(cfg.get('input_size', ()))[1:]}, crop_pct "
            f"{cfg.get('crop_pct', 0.875)}, crop_mode {cfg.get('crop_mode') or 'center'}, interpolation "
            f"{cfg.get('interpolation', 'bilinear')}, as timm.data.create_transform resizes and crops")
    return model, labels, note


def _folder_config(folder: Path, label: str) -> dict[str, Any]:
    from xai_core.loading.huggingface import check_sizes, read_json_file

    config = read_json_file(folder / "config.json", label)
    if not isinstance(config.get("architecture"), str):
        raise ModelLoadError(f"{label}: config.json names no timm architecture")
    args = config.get("model_args") or {}
    if not isinstance(args, dict):
        raise ModelLoadError(f"{label}: config.json's model_args must be an object")
    for key, value in args.items():
        if key in FACTORY_KEYWORDS:
            raise ModelLoadError(f"{label}: refused, model_args sets {key!r}, which is not a model size")
        values = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, (int, float, str, bool)) for v in values):
            raise ModelLoadError(f"{label}: refused, model_args {key!r} must be numbers, strings or lists of them")
    check_sizes({**args, "num_classes": config.get("num_classes", 0)}, label, "config.json")
    if isinstance(config.get("pretrained_cfg"), dict):
        check_sizes(config["pretrained_cfg"], label, "config.json")
    return config


def _label_names(value: Any) -> list[str] | None:
    if isinstance(value, list) and value:
        return [str(v) for v in value]
    if isinstance(value, dict) and value:
        try:
            by_index = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError):
            return None
        if sorted(by_index) == list(range(len(by_index))):
            return [by_index[i] for i in range(len(by_index))]
    return None


def read_weights(path: Path, label: str) -> dict:
    """A state_dict from .safetensors (header checked) or a torch.save file (weights_only)."""
    from xai_core.loading.torch import _extract_state_dict, read_safetensors, sniff_torch_format

    fmt = sniff_torch_format(path)
    if fmt == "safetensors":
        safetensors_elements(path, label)
        return read_safetensors(path, label)
    if fmt == "torch_save":
        import pickle

        import torch

        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise ModelLoadError(f"{label}: holds pickled Python objects, not only weights; save the state_dict "
                                 "(torch.save(model.state_dict(), ...)) or .safetensors") from None
        except Exception as exc:  # noqa: BLE001 - every failure here is the file's
            raise ModelLoadError(f"{label}: corrupt or truncated weights file ({str(exc)[:160]})") from None
        return _extract_state_dict(obj, label)
    raise ModelLoadError(f"{label}: not a weights file (expected .safetensors or a torch.save state_dict)")


def build_timm(name: str, state: dict, model_args: dict, overlay: dict, label: str):
    """``timm.create_model(name)`` sized from ``state`` (classes from the classifier),
    checked on the meta device first, weights loaded strictly."""
    import torch

    timm = import_timm()
    if name not in timm.list_models():
        raise ModelLoadError(f"{label}: {name!r} is not a timm model name; `timm.list_models()` lists them "
                             "(e.g. convnext_atto, vit_tiny_patch16_224, resnet18)")
    kwargs: dict[str, Any] = {k: v for k, v in model_args.items() if k != "num_classes"}  # from the weights
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    try:
        with torch.device("meta"):
            probe = timm.create_model(name, pretrained=False, **kwargs)
        classifier = probe.pretrained_cfg.get("classifier") or "head"
        classes = _classes(state, classifier)
        if classes is not None and classes != probe.num_classes:
            with torch.device("meta"):
                probe = timm.create_model(name, pretrained=False, num_classes=classes, **kwargs)
    except (TypeError, ValueError, RuntimeError, KeyError, AssertionError, IndexError) as exc:
        raise ModelLoadError(f"{label}: timm cannot build {name!r} with these arguments ({str(exc)[:160]})") from None
    needed = sum(p.numel() for p in probe.parameters())
    held = sum(v.numel() for v in state.values())
    if needed > held * 1.05 + 10_000:
        raise ModelLoadError(f"{label}: the weights hold {held:,} values but {name} needs {needed:,}; "
                             "check the timm model name")
    model = timm.create_model(name, pretrained=False, num_classes=probe.num_classes, **kwargs)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{label}: the weights do not fit timm model {name!r} ({str(exc)[:300]}); "
                             "check the timm model name") from None
    return model.eval()


def _classes(state: dict, classifier: str | tuple | list) -> int | None:
    names = [classifier] if isinstance(classifier, str) else list(classifier)
    for name in names:
        weight = state.get(f"{name}.weight")
        if weight is not None and weight.ndim >= 2:
            return int(weight.shape[0])
    return None


def data_config_spec(model, own_resize: bool = False) -> ImageSpec:
    """timm's data config for ``model`` -> ImageSpec, as ``timm.data.create_transform``
    builds its eval transform: input size, the resize to input size / crop_pct
    (shortest edge for crop_mode 'center' on a square input, both sides for
    'squash'), its interpolation, torchvision's centre crop, mean/std. A config
    whose resize is not reproduced (crop_mode 'border', a non-square 'center') is
    refused unless the user says how to resize (``own_resize``)."""
    import math

    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    channels, height, width = (int(v) for v in cfg["input_size"])
    mean, std = tuple(float(v) for v in cfg["mean"]), tuple(float(v) for v in cfg["std"])
    crop_pct = float(cfg.get("crop_pct") or 0.875)
    mode = cfg.get("crop_mode") or "center"
    scale = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    interpolation = str(cfg.get("interpolation") or "bilinear")
    if interpolation == "random":
        interpolation = "bilinear"  # timm's eval transform: str_to_interp_mode maps only real filters
    resize: Any = None
    if mode == "squash":
        resize = scale
    elif mode == "center" and scale[0] == scale[1]:
        resize = scale[0]
    elif not own_resize:
        raise ModelLoadError(f"timm's crop_mode {mode!r} for a {height}x{width} input is not reproduced here; "
                             "say how to resize the photo (--resize, --interpolation) to open it")
    return ImageSpec((height, width), mean[:channels], std[:channels], grayscale=channels == 1,
                     resize=resize, interpolation=interpolation, crop_rounding="round")


__all__ = ["open_timm", "load_timm", "is_timm_arch", "model_names"]
