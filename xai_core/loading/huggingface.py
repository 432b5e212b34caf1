"""Hugging Face image classifiers from a folder (or a zip of one), with no code
from the folder run.

A folder holds ``config.json`` and ``model.safetensors`` and optionally
``preprocessor_config.json`` (what ``save_pretrained`` writes). Everything is
checked before anything is built:

* the config must name a known image-classification ``model_type`` of
  ``transformers`` (ViT, DeiT, BEiT, Swin, ConvNeXt, ResNet...), and must not ask
  for custom code (``auto_map``): ``trust_remote_code`` is never set;
* its sizes are bounded (layers, widths, image size, classes), so a config asking
  for a million layers or a billion hidden units is refused before anything is
  allocated; the model is then sized on PyTorch's ``meta`` device (no memory) and
  must not need more parameters than the weights file holds;
* the weights come only from ``model.safetensors`` or the shards its index names
  (data only), each header checked against its file's size (:mod:`.tensor_files`)
  and the index against the shards; a ``pytorch_model.bin``
  alone is refused with how to convert it;
* the model is built by ``AutoModelForImageClassification.from_pretrained`` from
  the local files only (``local_files_only=True``), with eager attention (the
  attention weights are computed as tensors that methods can read), and every
  weight must come from the file (no missing or mis-shaped tensor).

Preprocessing comes from ``preprocessor_config.json`` as transformers' PIL image
processor reads it (resize, resample, centre crop, rescale, mean/std), reproduced
pixel for pixel by :func:`xai_core.inputs.images.preprocess`; labels from the
config's ``id2label``. The model's forward returns an output object; a forward
hook hands its ``.logits`` (N x classes) to the adapter. TensorFlow classes are
not offered: transformers 5 removed TensorFlow support.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from xai_core.loading.archives import unpack_zip
from xai_core.loading.spec import OpenOptions, sidecar_labels
from xai_core.loading.tensor_files import element_count, safetensors_elements
from xai_core.types import IMAGENET_MEAN, IMAGENET_STD, ImageSpec, ModelLoadError

WEIGHTS = "model.safetensors"
MAX_CONFIG_BYTES = 2**20
# model types of transformers' AutoModelForImageClassification that take an image and
# nothing else and need no package beyond transformers (text-image towers, timm_wrapper
# and natten-based models are left out)
IMAGE_CLASSIFIER_TYPES = frozenset({
    "beit", "bit", "convnext", "convnextv2", "cvt", "data2vec-vision", "deit", "dinov2", "dinov2_with_registers",
    "donut-swin", "efficientnet", "focalnet", "hgnet_v2", "hiera", "ijepa", "levit", "mobilenet_v1", "mobilenet_v2",
    "mobilevit", "mobilevitv2", "poolformer", "pp_lcnet", "pvt", "pvt_v2", "regnet", "resnet", "segformer",
    "swiftformer", "swin", "swinv2", "textnet", "vit", "vit_msn",
})
# the most a config may ask for, per kind of size key (any key holding these words)
DEPTH_LIMIT = 256  # layers / blocks per stage or in all
WIDTH_LIMIT = 16_384  # hidden sizes, embedding widths, heads
MLP_LIMIT = 65_536  # intermediate (MLP) widths
IMAGE_LIMIT = 4096  # image size and patch size (pixels)
MAX_CLASSES = 100_000
PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}


def open_huggingface(path: Path, options: OpenOptions):
    """A Hugging Face image-classifier folder or zip -> a TorchAdapter over the model."""
    from xai_core.adapters.torch import TorchAdapter

    folder = model_folder(path)
    config = read_config(folder, path.name)
    model = build_model(folder, config, path.name)
    spec, note = processor_spec(folder, config, path.name, options.overrides.sets_resize)
    adapter = TorchAdapter(model, options.overrides.apply(spec), sidecar_labels({}, options.labels) or config_labels(config),
                           name=path.name, kind="module", device=options.device, batch_size=options.batch_size,
                           output_kind="logit")
    adapter.preprocessing_note = note
    adapter.model_type = config["model_type"]
    return adapter


# -- the folder --------------------------------------------------------------------------
def model_folder(path: Path) -> Path:
    """The folder holding config.json: ``path`` itself, or where its zip unpacks (once,
    safely, under the temporary folder: the worker's own scratch when confined)."""
    path = Path(path)
    if path.is_file():
        stat = path.stat()
        key = hashlib.sha256(f"{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()).hexdigest()[:16]
        root = unpack_zip(path, Path(tempfile.gettempdir()) / "xai-model-folders" / key, "the model folder")
    else:
        root = path
    found = sorted((p.parent for p in root.rglob("config.json")), key=lambda p: len(p.parts))
    if not found:
        raise ModelLoadError(f"{path.name}: no config.json inside; give the whole model folder "
                             "(config.json, model.safetensors, preprocessor_config.json)")
    return found[0]


def read_json_file(path: Path, label: str) -> dict[str, Any]:
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelLoadError(f"{label}: {path.name} is larger than {MAX_CONFIG_BYTES // 2**20} MB; refused")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{label}: {path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{label}: {path.name} must hold a JSON object")
    return data


def read_config(folder: Path, label: str) -> dict[str, Any]:
    """config.json, checked: no custom code, a known image classifier, bounded sizes."""
    config = read_json_file(folder / "config.json", label)
    if "auto_map" in config or config.get("trust_remote_code"):
        raise ModelLoadError(
            f"{label}: refused, config.json asks for custom code (auto_map: {_short(config.get('auto_map'))}); "
            "only model classes built into transformers are loaded, and code from a model folder is never run")
    model_type = config.get("model_type")
    if model_type not in IMAGE_CLASSIFIER_TYPES:
        raise ModelLoadError(
            f"{label}: model_type {model_type!r} is not an image classifier we can build from files alone; "
            f"known: {', '.join(sorted(IMAGE_CLASSIFIER_TYPES))}")
    check_sizes(config, label)
    return config


def check_sizes(config: dict[str, Any], label: str, where: str = "config.json") -> None:
    """Refuse a config whose sizes would allocate without bound (before anything is built)."""
    labels = config.get("id2label")
    if isinstance(labels, dict) and len(labels) > MAX_CLASSES:
        raise ModelLoadError(f"{label}: refused, {where} lists {len(labels)} classes (at most {MAX_CLASSES})")
    for key, value in _walk(config):
        name = key.lower()
        numbers = value if isinstance(value, list) else [value]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
            continue
        if any(not math.isfinite(v) or abs(v) > 2**31 for v in numbers):
            raise ModelLoadError(f"{label}: refused, {where} sets {key} to {_short(value)}")
        if name in ("num_labels",):
            limit = MAX_CLASSES
        elif "layers" in name or "depth" in name or "blocks" in name:
            limit = DEPTH_LIMIT
            if isinstance(value, list) and sum(numbers) > DEPTH_LIMIT:
                raise ModelLoadError(f"{label}: refused, {where} asks for {sum(numbers)} blocks in {key} "
                                     f"(at most {DEPTH_LIMIT})")
        elif "intermediate" in name or "mlp" in name and "ratio" not in name:
            limit = MLP_LIMIT
        elif "image_size" in name or "patch_size" in name or "input_size" in name:
            limit = IMAGE_LIMIT
        elif "hidden" in name or "dim" in name or "heads" in name or "embed" in name or "sizes" in name:
            limit = WIDTH_LIMIT
        elif "ratio" in name:
            limit = 64
        else:
            continue
        if any(v > limit for v in numbers):
            raise ModelLoadError(f"{label}: refused, {where} sets {key} to {_short(value)} (at most {limit}); "
                                 "a config this large is not an image classifier that fits here")


def _walk(data: Any, depth: int = 0):
    if depth > 4 or not isinstance(data, dict):
        return
    for key, value in data.items():
        if key in ("id2label", "label2id"):
            continue
        if isinstance(value, dict):
            yield from _walk(value, depth + 1)
        else:
            yield str(key), value


def config_labels(config: dict[str, Any]) -> list[str] | None:
    """id2label as a list (index -> name), when it names every class 0..n-1."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_index) != list(range(len(by_index))):
        return None
    return [by_index[i] for i in range(len(by_index))]


# -- the model -----------------------------------------------------------------------------
INDEX = "model.safetensors.index.json"
MAX_SHARDS = 1024
_SHARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.safetensors$")


def weights_files(folder: Path, label: str) -> tuple[list[Path], dict[str, str]]:
    """The folder's safetensors weights: ``model.safetensors``, or the shards that
    ``model.safetensors.index.json`` names (what ``save_pretrained`` writes for a
    model over ``max_shard_size``), with the index's weight map (tensor name -> shard;
    empty for one file). The index is checked first: plain file names in the folder
    itself (no path), every one present, a bounded count."""
    weights = folder / WEIGHTS
    if weights.is_file():
        return [weights], {}
    if (folder / INDEX).is_file():
        index = read_json_file(folder / INDEX, label)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelLoadError(f"{label}: {INDEX} has no weight_map (tensor name -> shard file)")
        shards = sorted({str(v) for v in weight_map.values()})
        bad = [s for s in shards if not _SHARD_NAME.match(s)]
        if bad or not all(isinstance(v, str) for v in weight_map.values()):
            raise ModelLoadError(f"{label}: refused, {INDEX} names shards that are not plain .safetensors file "
                                 f"names in the folder ({_short(bad)})")
        if len(shards) > MAX_SHARDS:
            raise ModelLoadError(f"{label}: refused, {INDEX} names {len(shards)} shards (at most {MAX_SHARDS})")
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise ModelLoadError(f"{label}: {INDEX} names shards the folder lacks ({_short(missing)}); give the "
                                 "whole folder")
        return [folder / s for s in shards], weight_map
    if (folder / "pytorch_model.bin").is_file() or (folder / "pytorch_model.bin.index.json").is_file():
        raise ModelLoadError(
            f"{label}: holds pytorch_model.bin only, a pickle that is not read here; convert it to safetensors "
            "where you trust it: AutoModelForImageClassification.from_pretrained(folder).save_pretrained(folder, "
            "safe_serialization=True), then give the folder with model.safetensors")
    raise ModelLoadError(f"{label}: no model.safetensors in the folder (save it with model.save_pretrained)")


def weight_shapes(folder: Path, label: str) -> tuple[dict[str, tuple[int, ...]], str]:
    """Every tensor's shape across the weights files (each header checked against its
    file), and what to call the weights in messages. A sharded index must agree with
    its shards: each tensor in the shard the index names, and no tensor twice."""
    files, weight_map = weights_files(folder, label)
    if not weight_map:
        return safetensors_elements(files[0], f"{label}: {WEIGHTS}"), WEIGHTS
    shapes: dict[str, tuple[int, ...]] = {}
    where: dict[str, str] = {}
    for shard in files:
        held = safetensors_elements(shard, f"{label}: {shard.name}")
        twice = sorted(set(held) & set(shapes))
        if twice:
            raise ModelLoadError(f"{label}: refused, tensors stored in more than one shard ({_short(twice)})")
        shapes.update(held)
        where.update(dict.fromkeys(held, shard.name))
    wrong = sorted(name for name, shard in weight_map.items() if where.get(name) != shard)
    if wrong:
        raise ModelLoadError(f"{label}: refused, {INDEX} places tensors in shards that do not hold them "
                             f"({_short(wrong)})")
    return shapes, f"{len(files)} shards"


def build_model(folder: Path, config_dict: dict[str, Any], label: str):
    """The model from the folder's files only: sized on the meta device first."""
    import torch
    from transformers import AutoConfig, AutoModelForImageClassification
    from transformers.utils import logging as hf_logging

    shapes, weights_name = weight_shapes(folder, label)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        with torch.device("meta"):
            sized = AutoModelForImageClassification.from_config(config, trust_remote_code=False,
                                                                attn_implementation="eager")
    except (ValueError, TypeError, KeyError, OSError, RuntimeError, AttributeError) as exc:
        raise ModelLoadError(f"{label}: transformers cannot build this config ({_short(exc)})") from None
    needed = sum(p.numel() for p in sized.parameters())
    held = element_count(shapes)
    if needed > held * 1.05 + 10_000:
        raise ModelLoadError(f"{label}: refused, config.json describes a model of {needed:,} parameters but "
                             f"the weights ({weights_name}) hold {held:,} values; the config and the weights do not belong "
                             "together")
    del sized
    try:
        model, info = AutoModelForImageClassification.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False, use_safetensors=True,
            attn_implementation="eager", dtype=torch.float32, output_loading_info=True)
    except (ValueError, TypeError, KeyError, OSError, RuntimeError, AttributeError) as exc:
        raise ModelLoadError(f"{label}: cannot load the weights ({_short(exc)})") from None
    missing = list(info.get("missing_keys") or []) + [str(m) for m in info.get("mismatched_keys") or []]
    if missing:
        raise ModelLoadError(f"{label}: the weights ({weights_name}) lack tensors the model needs ({_short(missing)}); a model "
                             "with made-up weights would give wrong answers")
    model.eval()
    model.register_forward_hook(logits_only)
    return model


def logits_only(_module, _inputs, output):
    """Forward hook: the model's output object -> its ``logits`` (N x classes)."""
    return getattr(output, "logits", output)


# -- preprocessing ------------------------------------------------------------------------
# image processors whose resize, crop, rescale and normalisation are transformers'
# generic ones (ConvNext's shortest-edge / crop_pct rule, LeViT's 256/224,
# PoolFormer's crop_pct and EfficientNet's rescale offset and second division by the
# std are reproduced here); the others resize their own way (MobileViT also feeds BGR)
GENERIC_PROCESSORS = frozenset({"ViTImageProcessor", "DeiTImageProcessor", "BeitImageProcessor", "BitImageProcessor",
                                "MobileNetV1ImageProcessor", "PvtImageProcessor", "ConvNextImageProcessor",
                                "LevitImageProcessor", "PoolFormerImageProcessor", "EfficientNetImageProcessor"})


def processor_spec(folder: Path, config: dict[str, Any], label: str,
                   own_resize: bool = False) -> tuple[ImageSpec, str]:
    """(ImageSpec, note) from preprocessor_config.json as transformers' own (PIL)
    image processor reads it, class defaults filled in: resize (a fixed size or the
    shortest edge), resample, centre crop (ConvNeXt's crop_pct), rescale and
    mean/std; else config.json's image_size with ImageNet mean/std. The spec's
    mean/std take the rescale into account: the service feeds pixels in [0, 1].
    A processor that resizes its own way is refused unless the user says how to
    resize (``own_resize``: --resize / --interpolation)."""
    path = folder / "preprocessor_config.json"
    channels = int(config.get("num_channels", 3) or 3)
    default = _pair(config.get("image_size", 224)) or (224, 224)
    if not path.is_file():
        spec = ImageSpec(default, IMAGENET_MEAN, IMAGENET_STD, grayscale=channels == 1)
        return spec, (f"no preprocessor_config.json: {default[0]}x{default[1]} from config.json, ImageNet mean/std")
    declared = read_json_file(path, label)
    if "auto_map" in declared:
        raise ModelLoadError(f"{label}: refused, preprocessor_config.json asks for custom code (auto_map: "
                             f"{_short(declared['auto_map'])}); code from a model folder is never run")
    check_sizes(declared, label, "preprocessor_config.json")
    proc = _processor(folder, label)
    kind = type(proc).__name__.removesuffix("Pil")
    if getattr(proc, "do_flip_channel_order", False):
        raise ModelLoadError(f"{label}: its {kind} feeds the model BGR (do_flip_channel_order), which is not "
                             "reproduced here; fed RGB, the model would give other probabilities")
    try:
        size, resize, interpolation = _geometry(proc, kind, default)
    except ValueError as exc:
        if not own_resize:
            raise ModelLoadError(f"{label}: {exc}; say how to resize the photo (--resize, --interpolation) "
                                 "to open it") from None
        size, resize, interpolation = default, None, "bilinear"
    mean, std = _normalisation(proc, label)
    try:
        spec = ImageSpec(size, mean if len(mean) in (1, channels) else mean[:1],
                         std if len(std) in (1, channels) else std[:1], grayscale=channels == 1,
                         resize=resize, interpolation=interpolation, crop_rounding="floor")
    except Exception as exc:  # noqa: BLE001 - an InputError naming the bad value
        raise ModelLoadError(f"{label}: preprocessor_config.json: {exc}") from None
    note = f"{kind} (preprocessor_config.json): {spec.describe()}, mean {_fmt(mean)}, std {_fmt(std)}"
    return spec, note


def _normalisation(proc: Any, label: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The processor's rescale and normalisation as the spec's mean and std on pixels
    in [0, 1]. A pixel p (0..255) becomes r = p * rescale_factor (minus 1 with
    EfficientNet's ``rescale_offset``), then (r - mean) / std, then (EfficientNet's
    ``include_top``) divided by image_std once more: (p/255 - M) / S with
    M = (offset + mean) / (255 * factor) and S = std * top / (255 * factor)."""
    image_std = _numbers(list(proc.image_std) if proc.image_std is not None else None, IMAGENET_STD)
    scale = 255.0 * (float(proc.rescale_factor) if proc.do_rescale else 1.0)
    offset = 1.0 if proc.do_rescale and getattr(proc, "rescale_offset", False) else 0.0
    if proc.do_normalize:
        mean = _numbers(list(proc.image_mean) if proc.image_mean is not None else None, IMAGENET_MEAN)
        std = image_std
    else:
        mean, std = (0.0,), (1.0,)
    top = image_std if getattr(proc, "include_top", False) else (1.0,)
    try:
        m, s, t = np.broadcast_arrays(np.asarray(mean, float), np.asarray(std, float), np.asarray(top, float))
    except ValueError:
        raise ModelLoadError(f"{label}: preprocessor_config.json: image_mean {_fmt(mean)} and image_std {_fmt(std)} "
                             "have different lengths") from None
    return tuple(float(v) for v in (offset + m) / scale), tuple(float(v) for v in s * t / scale)


def _processor(folder: Path, label: str):
    """transformers' PIL image processor for the folder (never code from the folder)."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False,
                                                  backend="pil")
    except (ValueError, TypeError, KeyError, OSError, AttributeError) as exc:
        raise ModelLoadError(f"{label}: transformers cannot read preprocessor_config.json ({_short(exc)})") from None


def _geometry(proc: Any, kind: str, default: tuple[int, int]) -> tuple[tuple[int, int], Any, str]:
    """(input size, ImageSpec.resize, interpolation) of a processor, or ValueError
    saying why its resize cannot be reproduced."""
    if kind not in GENERIC_PROCESSORS:
        raise ValueError(f"its {kind} resizes its own way, which is not reproduced here")
    resample = proc.resample if proc.resample is not None else 2
    interpolation = PIL_RESAMPLE.get(int(resample))
    if interpolation is None:
        raise ValueError(f"resample {resample!r} is not a PIL filter")
    size = proc.size
    if not proc.do_resize or size is None:
        raise ValueError("it does not resize (the input would take each photo's own size)")
    crop = (int(proc.crop_size.height), int(proc.crop_size.width)) if proc.do_center_crop else None
    edge = size.shortest_edge
    if size.height and size.width:
        resized: Any = (int(size.height), int(size.width))
    elif edge and not size.longest_edge:
        resized = int(edge)
    else:
        raise ValueError(f"its size {dict((k, v) for k, v in dict(size).items() if v)} is not reproduced here")
    if kind == "LevitImageProcessor" and isinstance(resized, int):  # shortest edge x 256/224, then the crop
        resized = int((256 / 224) * resized)
    if kind == "PoolFormerImageProcessor" and getattr(proc, "crop_pct", None) is not None:
        pct = float(proc.crop_pct)  # the size / crop_pct, a shortest edge unless height and width differ
        if isinstance(resized, int) or resized[0] == resized[1]:
            resized = int((resized if isinstance(resized, int) else resized[0]) / pct)
        else:
            resized = (int(resized[0] / pct), int(resized[1] / pct))
    if kind == "ConvNextImageProcessor":  # shortest edge / crop_pct, then a square crop (or a square resize)
        if not isinstance(resized, int) or crop is not None:
            raise ValueError("its ConvNeXt size is not a shortest edge alone")
        if edge < 384:
            return (edge, edge), int(edge / float(proc.crop_pct)), interpolation
        return (edge, edge), None, interpolation
    if crop is not None:
        return crop, resized, interpolation
    if isinstance(resized, int):
        raise ValueError("it resizes the shortest edge without a crop (the input would take each photo's shape)")
    return resized, None, interpolation


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value), int(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    if isinstance(value, dict) and "height" in value and "width" in value:
        return int(value["height"]), int(value["width"])
    return None


def _numbers(value: Any, default: tuple[float, ...]) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)
    if isinstance(value, list) and value and all(isinstance(v, (int, float)) for v in value):
        return tuple(float(v) for v in value)
    return default


def _fmt(values: tuple[float, ...]) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


def _short(value: Any, limit: int = 160) -> str:
    text = " ".join(str(value).split())
    return text[:limit] + ("..." if len(text) > limit else "")
