"""Safe loaders for PyTorch model files that a user gives us (untrusted input).

Formats, detected from the file's content rather than its name:

* TorchScript archives (``torch.jit.save``): no Python code is unpickled.
* ``torch.export`` programs (``.pt2``): unflattened so that layers can be hooked.
* ``state_dict`` files: read with ``weights_only=True``; an architecture name
  (torchvision classifier or a zoo architecture) builds the module.
* ``.safetensors`` weights (data only) plus an architecture name, like a state_dict.
* Fully pickled modules: arbitrary code on load.

TorchScript, ``.pt2`` programs and pickled modules carry code: they load inside the
confined model worker, or, where no confinement is available, only with the user's
explicit trust (``trust_pickle``, the command line's ``--trust-code``). A ``.pt2``'s
pickled members are read with ``weights_only=True`` first, confined or not: an
archive that would unpickle anything but tensors is refused.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

from xai_core.loading.spec import OpenOptions, read_sidecar, sidecar_inputs, sidecar_labels
from xai_core.types import ImageSpec, InputError, ModelLoadError
from xai_core.worker.sandbox import code_allowed

MAX_MODEL_BYTES = 2 * 1024**3


def check_model_file(path: Path, directories: bool = False) -> str:
    """Refuse a missing, empty or oversized model file; returns its display name."""
    if not path.exists() or (path.is_dir() and not directories):
        raise ModelLoadError(f"{path}: no such model file")
    if path.is_file():
        size = path.stat().st_size
        if size == 0:
            raise ModelLoadError(f"{path.name}: the file is empty")
        if size > MAX_MODEL_BYTES:
            raise ModelLoadError(f"{path.name}: larger than {MAX_MODEL_BYTES // 2**30} GB")
    return path.name


def sniff_torch_format(path: Path) -> str:
    """'torchscript', 'export', 'torch_save' (state_dict or pickle), 'safetensors',
    'corrupt_zip' (a zip whose directory is unreadable) or 'unknown'."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        with open(path, "rb") as fh:
            head = fh.read(9)
        if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100 * 2**20:
            return "safetensors"  # u64 header length, then the JSON header
        if head[:2] == b"PK":
            return "corrupt_zip"
        # legacy (pre-1.6) torch.save files start with a pickle protocol byte
        return "torch_save" if head[:1] == b"\x80" else "unknown"
    if any(n.endswith("serialized_exported_program.json") or "/models/" in n and n.endswith(".json") for n in names):
        return "export"
    if any(n.endswith("archive_format") for n in names) and any("/models/" in n for n in names):
        return "export"
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return "torchscript"
    if any(n.endswith("data.pkl") for n in names):
        return "torch_save"
    return "unknown"


def open_torch(path: Path, options: OpenOptions):
    """A PyTorch model file (and its ``model.json`` sidecar) -> a TorchAdapter."""
    from xai_core.adapters.torch import TorchAdapter

    if options.rows:
        module, kind = load_torch_rows(path, options.name or path.name, options.arch, options.trust_code)
        return TorchAdapter(module, options.inputs, options.labels, name=options.name or path.name, kind=kind,
                            device=options.device, batch_size=options.batch_size, output_kind=options.output_kind)
    sidecar = read_sidecar(path)
    labels = sidecar_labels(sidecar, options.labels)
    spec = sidecar_inputs(sidecar) or options.overrides.apply(ImageSpec.from_dict(sidecar) if sidecar else ImageSpec())
    module, kind = load_torch_file(path, arch=options.arch or sidecar.get("arch"), trust_pickle=options.trust_code,
                                   num_classes=len(labels) if labels else None)
    return TorchAdapter(module, spec, labels, name=path.name, kind=kind, device=options.device,
                        batch_size=options.batch_size, output_kind=sidecar.get("output"))


def load_torch_rows(path: Path, name: str, arch: str | None, trust_pickle: bool) -> tuple[Any, str]:
    """A PyTorch file of a model over table rows -> (module, kind): a state_dict (or
    .safetensors) builds a zoo tabular architecture (``tabular_mlp`` is recognised
    from its weights); other formats load as :func:`load_torch_file` loads them."""
    fmt = sniff_torch_format(path)
    if fmt == "safetensors":
        state = read_safetensors(path, name)
    elif fmt != "torch_save":
        return load_torch_file(path, trust_pickle=trust_pickle)
    else:
        import torch

        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            return load_torch_file(path, trust_pickle=trust_pickle)  # a pickled module: refused unless trusted
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{name}: corrupt or truncated PyTorch file ({exc})") from None
        state = _extract_state_dict(obj, name)
    from model_zoo.architectures import TABULAR_ARCHITECTURES, build_tabular_architecture

    if arch is None:
        if "norm_mean" in state and any(k.startswith("net.") for k in state):
            arch = "tabular_mlp"
        else:
            raise ModelLoadError(
                f"{name} is a state_dict (weights only): name its architecture with --arch "
                f"({', '.join(TABULAR_ARCHITECTURES)}), or save the model as TorchScript or a .pt2 program"
            )
    module = build_tabular_architecture(arch, state)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        text = " ".join(str(exc).split())[:400]
        raise ModelLoadError(f"{name}: the weights do not fit architecture {arch!r} ({text})") from None
    return module, "module"


def declared_torch_spec(path: Path, arch: str | None = None) -> ImageSpec:
    """A PyTorch file declares its preprocessing in its sidecar only (else ImageNet's)."""
    sidecar = read_sidecar(path)
    return ImageSpec.from_dict(sidecar) if sidecar else ImageSpec()


def load_torch_file(
    path: str | Path,
    arch: str | None = None,
    trust_pickle: bool = False,
    num_classes: int | None = None,
) -> tuple[Any, str]:
    """Load a PyTorch model file -> (module, kind) where kind is module/torchscript/export."""
    import torch

    path = Path(path)
    label = check_model_file(path)
    fmt = sniff_torch_format(path)
    if fmt == "corrupt_zip":
        raise ModelLoadError(
            f"{label}: not a PyTorch model file that can be read: the zip archive is corrupt or "
            "truncated (its directory is unreadable); save or download the model again"
        )
    if fmt == "unknown":
        raise ModelLoadError(
            f"{label}: not a PyTorch model file (expected TorchScript, a torch.export "
            ".pt2 program, a state_dict or a pickled module). If it is a Keras or ONNX "
            "model, choose that framework."
        )
    if fmt in ("torchscript", "export") and not code_allowed(trust_pickle):
        what = "a TorchScript program" if fmt == "torchscript" else "a torch.export program"
        raise ModelLoadError(needs_trust(label, what))
    if fmt == "torchscript":
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # "deprecated", still the format users have
                return torch.jit.load(str(path), map_location="cpu"), "torchscript"
        except Exception as exc:  # noqa: BLE001 - any failure is the file's
            raise ModelLoadError(f"{label}: corrupt TorchScript archive ({_short(exc)})") from None
    if fmt == "export":
        check_pt2_members(path, label)
        try:
            program = torch.export.load(str(path))
            module = torch.export.unflatten(program)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{label}: cannot read the torch.export program ({_short(exc)})") from None
        return module, "export"
    if fmt == "safetensors":
        return _module_from_state(read_safetensors(path, label), label, arch, num_classes), "module"
    return _load_torch_save(path, arch, trust_pickle, num_classes)


def read_safetensors(path: Path, label: str) -> dict:
    """The tensors of a ``.safetensors`` file (data only: a JSON header and raw bytes)."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ModelLoadError(".safetensors files need the safetensors package: pip install -r requirements.txt") from None
    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - every failure here is the file's
        raise ModelLoadError(f"{label}: corrupt or truncated .safetensors file ({_short(exc)})") from None


def _load_torch_save(path: Path, arch: str | None, trust_pickle: bool, num_classes: int | None):
    import torch
    from torch import nn

    label = path.name
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = None  # the file holds Python objects beyond tensors: a pickled module
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{label}: corrupt or truncated PyTorch file ({_short(exc)})") from None
    if obj is None:
        if not code_allowed(trust_pickle):
            raise ModelLoadError(needs_trust(label, "a fully pickled PyTorch module"))
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(
                f"{label}: the pickled module could not be rebuilt ({_short(exc)}); its "
                "class must be importable here"
            ) from None
        if not isinstance(obj, nn.Module):
            raise ModelLoadError(f"{label}: the pickle holds a {type(obj).__name__}, not a torch module")
        return obj, "module"
    return _module_from_state(_extract_state_dict(obj, label), label, arch, num_classes), "module"


def _module_from_state(state: dict, label: str, arch: str | None, num_classes: int | None):
    """A zoo or torchvision architecture with ``state`` loaded strictly."""
    if arch is None:
        raise ModelLoadError(
            f"{label} holds weights only (a state_dict): name its architecture with --arch "
            "(e.g. resnet18, mobilenet_v2, digits_cnn; a timm model as --arch timm:NAME); "
            "`python -m xai_core models` lists them"
        )
    from model_zoo.architectures import build_architecture

    classes = num_classes or infer_num_classes(state)
    module = build_architecture(arch, classes)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        missing = _short(exc, 400)
        raise ModelLoadError(
            f"{label}: the weights do not fit architecture {arch!r} ({missing}); check --arch"
        ) from None
    return module


def needs_trust(label: str, what: str) -> str:
    """The one refusal for a file that carries code where no confinement is available."""
    return (
        f"{label} is {what}: loading it runs code from the file, and no kernel confinement "
        "is available on this machine. Save the weights as a state_dict or .safetensors with "
        "an architecture name, or, only if you trust its author, pass --trust-code (in the "
        "dashboard: tick 'I trust this file')."
    )


_PT2_TEXT_MEMBERS = {"archive_format", "archive_version", "byteorder", "version", "serialization_id"}


def check_pt2_members(path: Path, label: str) -> None:
    """Refuse a ``.pt2`` archive with a pickled member that is more than tensors.

    ``torch.export.load`` unpickles sample inputs, weights and constants saved with
    ``use_pickle`` and legacy records with full pickle; each such member must load
    with ``weights_only=True`` here first. Raw tensor members (listed as not pickled
    in the archive's ``*_config.json``) and the text members are skipped."""
    import io
    import json

    import torch

    with zipfile.ZipFile(path) as zf:
        raw: set[str] = set()
        for info in zf.infolist():
            if info.filename.endswith("_config.json"):
                folder = info.filename.rsplit("/", 1)[0]
                try:
                    config = json.loads(zf.read(info)).get("config", {})
                    raw |= {f"{folder}/{v['path_name']}" for v in config.values()
                            if isinstance(v, dict) and not v.get("use_pickle", False)}
                except (ValueError, AttributeError, KeyError, TypeError):
                    raise ModelLoadError(f"{label}: corrupt torch.export archive ({info.filename})") from None
        for info in zf.infolist():
            name = info.filename
            base = name.rsplit("/", 1)[-1]
            if info.is_dir() or name in raw or name.endswith(".json") or base in _PT2_TEXT_MEMBERS:
                continue
            try:
                torch.load(io.BytesIO(zf.read(info)), map_location="cpu", weights_only=True)
            except Exception as exc:  # noqa: BLE001 - anything that is not plain tensors
                raise ModelLoadError(
                    f"{label}: refused: the archive member {name} holds pickled Python objects beyond "
                    f"tensors ({_short(exc, 120)}). Export the model again with torch.export.save and "
                    "plain tensor inputs and weights."
                ) from None


def _extract_state_dict(obj: Any, label: str) -> dict:
    import torch

    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            prefix = "module."
            if all(k.startswith(prefix) for k in tensors):  # saved from DataParallel
                tensors = {k[len(prefix):]: v for k, v in tensors.items()}
            return tensors
    raise ModelLoadError(f"{label}: holds a {type(obj).__name__} with no weights in it")


def infer_num_classes(state: dict) -> int:
    """The output size of the last 2-D weight (the classifier layer) in a state_dict."""
    weights = [v for k, v in state.items() if k.endswith("weight") and v.ndim == 2]
    if not weights:
        raise ModelLoadError("cannot tell the number of classes: no linear layer in the weights")
    return int(weights[-1].shape[0])


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text[:limit] + ("..." if len(text) > limit else "") or type(exc).__name__


__all__ = ["InputError", "load_torch_file", "sniff_torch_format", "infer_num_classes"]
