"""PyTorch adapter: nn.Module, TorchScript and unflattened torch.export programs.

Only imported when a PyTorch model is used, so ``import xai_core`` stays light.
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from xai_core.adapters.base import ModelAdapter, first_line, random_like
from xai_core.adapters.layers import LayerInfo, LayerRecorder
from xai_core.adapters.layouts import LayerLayout, cam_signal, layout_from_probe, not_a_map, vector_layout
from xai_core.adapters.script_layers import hookable, kind_of
from xai_core.types import (
    Capability,
    ImageSpec,
    InputError,
    InputSpec,
    UnsupportedError,
    VectorSpec,
    as_input_specs,
)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA GPU is available here")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}; use auto, cpu or cuda")
    return torch.device(device)


class TorchAdapter(ModelAdapter):
    """Wraps a PyTorch model whose ``forward`` takes one tensor per input spec:
    images as N x C x H x W normalised tensors, feature vectors as N x F rows
    (``forward(a, b)`` for a model with two inputs).

    ``kind`` is 'module' (an nn.Module), 'torchscript' (hooked through the
    wrappers of :mod:`xai_core.adapters.script_layers`) or 'export' (an
    unflattened ``torch.export`` program). ``output_kind`` forces how
    the output is read (probability, logit, sigmoid, score); None guesses it from
    a probe pass.
    """

    framework = "torch"

    def __init__(
        self,
        model: nn.Module,
        spec: InputSpec | Sequence[InputSpec],
        labels: list[str] | None = None,
        name: str = "model",
        kind: str = "module",
        device: str = "auto",
        channels_last: bool | None = None,
        batch_size: int = 16,
        output_kind: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.inputs = _with_vector_size(as_input_specs(spec), model)
        self.device = resolve_device(device)
        self.default_batch_size = batch_size
        self._lock = threading.RLock()
        if hasattr(model, "eval"):
            model.eval()
        if kind != "export":
            model.to(self.device)
        has_image = any(isinstance(s, ImageSpec) for s in self.inputs)
        if channels_last is None:
            # oneDNN runs conv nets faster on NHWC; our canonical layout is NHWC too,
            # so the permuted input tensor needs no copy.
            channels_last = has_image and kind == "module" and any(
                isinstance(m, nn.Conv2d) for m in model.modules()
            )
        self.channels_last = channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        # what runs the model and what layer hooks go on: for TorchScript, Python
        # wrappers of its submodules (the program itself refuses hooks)
        self._net = model
        self._layer_refusal: str | None = None
        if kind == "torchscript":
            self._net = hookable(model)
        self._norm = {
            i: (torch.tensor(s.mean_array(), device=self.device).view(1, -1, 1, 1),
                torch.tensor(s.std_array(), device=self.device).view(1, -1, 1, 1))
            for i, s in enumerate(self.inputs) if isinstance(s, ImageSpec)
        }
        self.max_batch = None
        self._settle_outputs(self._probe_output(), labels, output_kind)

    # -- basic facts -----------------------------------------------------------------
    targets_per_row = True

    def _row_scores(self, out, targets: np.ndarray):
        if not isinstance(out, torch.Tensor):
            return super()._row_scores(out, targets)
        if self._output_kind == "sigmoid":
            return torch.where(torch.as_tensor(targets == 1, device=out.device), out[:, 0], 1 - out[:, 0])
        return out[torch.arange(len(targets), device=out.device), torch.as_tensor(targets, device=out.device)]

    @property
    def capabilities(self) -> frozenset[str]:
        caps = {Capability.PREDICT, Capability.INPUT_GRADIENTS, Capability.LAYER_GRADIENTS}
        if self.kind == "module" and not self.multi_input and isinstance(self.spec, ImageSpec):
            caps.add(Capability.DEEP_EXPLAINER)
            caps.add(Capability.TORCH_MODULE)
            if self.__dict__.setdefault("_attention", None) is None:
                from xai_core.adapters.attention import attention_capabilities

                self._attention = attention_capabilities(self)
            caps |= self._attention
        return frozenset(caps)

    def attention_maps(self, batch, target: int | None, gradients: bool = False, block_gradients: bool = False):
        """Every transformer block's attention probabilities for ``batch`` (and their
        gradients): see :func:`xai_core.adapters.attention.capture`."""
        from xai_core.adapters.attention import capture

        return capture(self, batch, target, gradients=gradients, block_gradients=block_gradients)

    # -- shap's DeepExplainer ----------------------------------------------------------
    @property
    def gradient_registry_lock(self):
        """shap's PyTorch DeepExplainer hooks the model's modules while it runs."""
        return self._lock

    def deep_explainer_model(self, target: int) -> nn.Module:
        """An nn.Module from [0, 1] N x C x H x W images to the one explained score
        (N x 1): normalisation, this model, the target's score, for shap's DeepExplainer."""
        if Capability.DEEP_EXPLAINER not in self.capabilities:
            raise UnsupportedError(f"{self.name}: SHAP DeepExplainer needs a PyTorch module with one image input")
        if not 0 <= target < self._num_classes:
            raise InputError(f"target class {target} is out of range (0..{self._num_classes - 1})")
        return _TargetScore(self.model, self._norm[0][0], self._norm[0][1], target,
                            self._output_kind == "sigmoid").eval()

    def deep_explainer_data(self, batch: np.ndarray) -> torch.Tensor:
        """Canonical N x H x W x C images -> what the DeepExplainer model takes."""
        return torch.from_numpy(np.ascontiguousarray(batch, np.float32)).permute(0, 3, 1, 2).contiguous().to(self.device)

    def deep_explainer_values(self, values) -> np.ndarray:
        """shap's values (N x C x H x W[ x 1]) -> canonical N x H x W x C."""
        arr = np.asarray(values[0] if isinstance(values, list) else values, np.float32)
        if arr.ndim == 5:
            arr = arr[..., 0]
        return arr.transpose(0, 2, 3, 1)

    # -- tensors ---------------------------------------------------------------------
    def _tensors(self, parts: list[np.ndarray]) -> list[torch.Tensor]:
        """Canonical arrays -> tensors on the device (images permuted to N x C x H x W)."""
        out = []
        for spec, part in zip(self.inputs, parts, strict=True):
            x = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32)).to(self.device)
            if isinstance(spec, ImageSpec):
                x = x.permute(0, 3, 1, 2)
                if not self.channels_last:
                    x = x.contiguous()
            out.append(x)
        return out

    def _normalised(self, xs01: list[torch.Tensor]) -> list[torch.Tensor]:
        return [(x - self._norm[i][0]) / self._norm[i][1] if i in self._norm else x for i, x in enumerate(xs01)]

    def _forward(self, xs01: list[torch.Tensor]) -> torch.Tensor:
        """Canonical tensors -> raw outputs N x K (float32)."""
        xs = self._normalised(xs01)
        n = len(xs[0])
        try:
            out = self._net(*xs)
        except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as exc:
            shapes = ", ".join(str(tuple(x.shape)) for x in xs)
            if isinstance(self.inputs[0], ImageSpec):
                raise InputError(
                    f"{self.name} rejected an input of shape {shapes} (N, C, H, W): "
                    f"{first_line(exc)}. Check the input size and grayscale settings."
                ) from None
            raise UnsupportedError(f"{self.name}: the model failed on a batch of {shapes} rows ({first_line(exc)})") from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if isinstance(out, torch.Tensor) and out.ndim == 1 and len(out) == n:
            out = out[:, None]  # N scores
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            shape = getattr(out, "shape", type(out).__name__)
            raise UnsupportedError(f"{self.name} returned {shape}; a classifier must return N x classes")
        return out.float()

    def _probe_output(self) -> np.ndarray:
        probe = self.probe_batch()
        with self._lock, torch.inference_mode():
            if self.kind != "module":
                # programs exported (or traced) without a dynamic batch dimension take one item a call
                try:
                    self._forward(self._tensors(probe))
                except (InputError, UnsupportedError):
                    self.max_batch = 1
            outs = [self._forward(self._tensors([p[i : i + 1] for p in probe])) for i in range(2)]
        return torch.cat(outs).cpu().numpy()

    @contextmanager
    def _without_final_softmax(self):
        """A forward hook makes the last nn.Softmax (when it gives the model's output)
        pass its input through: the model then outputs logits."""
        softmax = self._final_softmax()
        handle = softmax.register_forward_hook(lambda _m, inputs, _out: inputs[0])
        try:
            yield
        finally:
            handle.remove()

    def _final_softmax(self) -> nn.Module:
        found = [m for m in self._net.modules() if isinstance(m, nn.Softmax) or kind_of(m) == "Softmax"]
        if found:
            captured: list[torch.Tensor] = []
            handle = found[-1].register_forward_hook(lambda _m, _i, out: captured.append(out))
            try:
                with torch.inference_mode():
                    out = self._forward(self._tensors([p[:1] for p in self.probe_batch()]))
            finally:
                handle.remove()
            if captured and captured[-1].shape == out.shape and torch.allclose(captured[-1].float(), out):
                return found[-1]
        raise UnsupportedError(
            f"{self.name} does not end in an nn.Softmax layer (a functional softmax cannot be stripped); "
            "explain the probability, or save the model with nn.Softmax as its last module"
        )

    # -- primitives ------------------------------------------------------------------
    def _run(self, parts: list[np.ndarray]) -> np.ndarray:
        with self._lock, torch.inference_mode():
            return self._forward(self._tensors(parts)).cpu().numpy()

    def input_gradients(
        self, batch, target: int | None, batch_size: int | None = None,
        return_probs: bool = False,
    ):
        parts = self.split(batch)
        grads: list[list[np.ndarray]] = [[] for _ in parts]
        scores, raws = [], []
        with self._lock:
            for sl in self.iter_batches(len(parts[0]), batch_size):
                xs = [x.detach().requires_grad_(True) for x in self._tensors([p[sl] for p in parts])]
                with torch.enable_grad():
                    out = self._forward(xs)
                    target = self._pick(out.detach().cpu().numpy(), target)
                    score = self._scores(out, target)
                    gs = torch.autograd.grad(score.sum(), xs, allow_unused=True)
                for i, (spec, g, x) in enumerate(zip(self.inputs, gs, xs, strict=True)):
                    g = torch.zeros_like(x) if g is None else g
                    grads[i].append((g.permute(0, 2, 3, 1) if isinstance(spec, ImageSpec) else g).cpu().numpy())
                scores.append(score.detach().cpu().numpy())
                raws.append(out.detach().cpu().numpy())
        result = self.join([np.concatenate(g).astype(np.float32) for g in grads]), np.concatenate(scores)
        return (*result, self.probabilities(np.concatenate(raws))) if return_probs else result

    def layer_activations_and_gradients(
        self, batch, target: int | None, layer: str, return_probs: bool = False
    ):
        module = self._module(layer)
        layout = self.layer_layout(layer)
        if not (layout.is_map or layout.kind == "vector"):
            raise layout.refusal(layer, "a method at a layer", "a map or a vector of units")
        captured: list[torch.Tensor] = []

        def hook(_m, _inp, out):
            captured.append(out[0] if isinstance(out, (tuple, list)) else out)

        with self._lock:
            handle = module.register_forward_hook(hook)
            try:
                xs = [x.detach().requires_grad_(True) for x in self._tensors(self.split(batch))]
                with torch.enable_grad():
                    out = self._forward(xs)
                    score = self._scores(out, self._pick(out.detach().cpu().numpy(), target))
                    if not captured:
                        raise UnsupportedError(f"layer {layer!r} was not used by the forward pass")
                    act = captured[-1]
                    (g,) = torch.autograd.grad(score.sum(), act)
            finally:
                handle.remove()
        result = (
            layout.fold(act.detach().float().cpu().numpy()),
            layout.fold(g.detach().float().cpu().numpy()),
            score.detach().cpu().numpy(),
        )
        return (*result, self.probabilities(out.detach().cpu().numpy())) if return_probs else result

    def layer_values(self, batch, layer: str, where: str = "output", return_probs: bool = False):
        module = self._module(layer)
        captured: list[torch.Tensor] = []
        if where == "input":
            handle = module.register_forward_pre_hook(lambda _m, inputs: captured.append(inputs[0]))
        else:
            handle = module.register_forward_hook(
                lambda _m, _i, out: captured.append(out[0] if isinstance(out, (tuple, list)) else out))
        parts = self.split(batch)
        outs, raws = [], []
        try:
            with self._lock, torch.inference_mode():
                for sl in self.iter_batches(len(parts[0]), None):
                    captured.clear()
                    raw = self._forward(self._tensors([p[sl] for p in parts]))
                    if not captured:
                        raise UnsupportedError(f"layer {layer!r} was not used by the forward pass")
                    outs.append(captured[-1].float().contiguous().cpu().numpy())
                    if return_probs:
                        raws.append(raw.float().cpu().numpy())
        finally:
            handle.remove()
        values = np.concatenate(outs)
        return (values, self.probabilities(np.concatenate(raws))) if return_probs else values

    def layer_gradients_at(self, batch, target: int, layer: str, values: np.ndarray,
                           where: str = "output", batch_size: int | None = None):
        return self._at_layer(batch, target, layer, values, where, batch_size, True)

    def layer_scores_at(self, batch, target: int, layer: str, values: np.ndarray,
                        where: str = "output", batch_size: int | None = None) -> np.ndarray:
        """Forward only: no graph is recorded and no backward pass is run. A one-row
        ``batch`` shared by every row of ``values`` goes through the layers below
        ``layer`` as that one row (its outputs are the same for every row), once a
        measured check on this layer has shown the model's answers equal to those of
        the repeated batch: a model whose code mixes its batch axis with others (or
        whose later layers take an earlier layer's output batch-wise) fails that check
        and is always run on the repeated batch."""
        n = len(values)
        if where != "output" or len(self.split(batch)[0]) != 1 or n == 1 or not self._shares_prefix(
                batch, target, layer, values):
            return self._at_layer(self.rows_for(batch, n), target, layer, values, where, batch_size, False)[1]
        return self._at_layer(batch, target, layer, values, where, batch_size, False, shared=True)[1]

    def _shares_prefix(self, batch, target: int, layer: str, values: np.ndarray) -> bool:
        """Whether one shared row below ``layer`` gives the repeated batch's scores
        (measured once per layer on up to four rows of ``values``, kept)."""
        checked = self.__dict__.setdefault("_shared_prefix", {})
        if layer not in checked:
            rows = values[: min(4, len(values))]
            want = self._at_layer(self.rows_for(batch, len(rows)), target, layer, rows, "output", None, False)[1]
            try:
                got = self._at_layer(batch, target, layer, rows, "output", None, False, shared=True)[1]
                scale = max(float(np.abs(want).max()), 1e-6)
                checked[layer] = got.shape == want.shape and bool(np.all(np.abs(got - want) <= 1e-4 * scale))
            except Exception:  # noqa: BLE001 - any failure of the shared row means: repeat the batch
                checked[layer] = False
        return checked[layer]

    def _at_layer(self, batch, target: int, layer: str, values: np.ndarray, where: str,
                  batch_size: int | None, with_grads: bool, shared: bool = False) -> tuple[np.ndarray | None, np.ndarray]:
        """``batch`` run with ``layer``'s output (or first input) replaced by
        ``values``: (d score / d values or None, scores). ``shared``: ``batch`` is one
        row fed as it is with every slice of ``values``."""
        module = self._module(layer)
        parts = self.split(batch)
        grads, scores = [], []
        with self._lock:
            for sl in self.iter_batches(len(values), batch_size):
                v = torch.from_numpy(np.ascontiguousarray(values[sl], np.float32)).to(self.device)
                if with_grads:
                    v.requires_grad_(True)
                if where == "input":
                    handle = module.register_forward_pre_hook(lambda _m, inputs, _v=v: (_v, *inputs[1:]))
                else:
                    handle = module.register_forward_hook(lambda _m, _i, _o, _v=v: _v)
                try:
                    with torch.enable_grad() if with_grads else torch.inference_mode():
                        out = self._forward(self._tensors(parts if shared else [p[sl] for p in parts]))
                        if shared and out.shape[0] != sl.stop - sl.start:
                            raise UnsupportedError(f"{layer!r}: the shared row gave {out.shape[0]} outputs")
                        score = self._scores(out, self._pick(out.detach().cpu().numpy(), target))
                        if with_grads:
                            (g,) = torch.autograd.grad(score.sum(), v)
                            grads.append(g.cpu().numpy())
                finally:
                    handle.remove()
                scores.append(score.detach().cpu().numpy())
        return (np.concatenate(grads).astype(np.float32) if with_grads else None), np.concatenate(scores)

    # -- randomisation check ---------------------------------------------------------
    def weight_layers(self) -> list[str]:
        """Modules owning parameters, in registration order (input side first)."""
        seen: dict[str, None] = {}
        for name, _ in self.model.named_parameters():
            seen.setdefault(name.rpartition(".")[0], None)
        return list(seen)

    def randomized_copy(self, layers_from_top: int, seed: int) -> TorchAdapter:
        import copy

        chosen = set(self.weight_layers()[::-1][: max(0, int(layers_from_top))])
        try:
            model = copy.deepcopy(self.model)
        except Exception as exc:  # noqa: BLE001 - a program exported with dynamic shapes refuses deepcopy
            if isinstance(self.model, torch.jit.ScriptModule):
                raise UnsupportedError(
                    f"{self.name}: the model cannot be copied to randomise it ({first_line(exc)})") from None
            model = with_own_weights(self.model)
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.rpartition(".")[0] in chosen:
                    p.copy_(torch.from_numpy(random_like(p.detach().cpu().numpy(), rng)))
        return TorchAdapter(model, self.inputs, self.labels, name=f"{self.name} (randomised)", kind=self.kind,
                            device=str(self.device), channels_last=self.channels_last,
                            batch_size=self.default_batch_size, output_kind=self._output_kind)

    # -- layers ----------------------------------------------------------------------
    def module(self, layer: str) -> nn.Module:
        """The submodule called ``layer`` (for captum's layer and neuron methods)."""
        return self._module(layer)

    def forward_scores(self, x01: torch.Tensor) -> torch.Tensor:
        """A one-input model's canonical batch as a tensor on :attr:`device` ([0, 1]
        images N x H x W x C, or rows N x F) -> the scores gradients are taken of,
        N x classes (a sigmoid model's 1 - p and p): the forward function captum is
        given. Call it holding :attr:`lock`."""
        x = x01.permute(0, 3, 1, 2) if isinstance(self.inputs[0], ImageSpec) else x01
        out = self._forward([x])
        if self._output_kind == "sigmoid":
            return torch.cat([1 - out[:, :1], out[:, :1]], dim=1)
        return out

    @property
    def lock(self) -> threading.RLock:
        """Held by every primitive: hold it while running the model from outside."""
        return self._lock

    def dense_weights(self, layer: str) -> np.ndarray:
        module = self._module(layer)
        weight = getattr(module, "weight", None)
        if _kind(module) != "Linear" or not isinstance(weight, torch.Tensor) or weight.ndim != 2:
            raise UnsupportedError(f"layer {layer!r} is a {_kind(module)}, not a dense (Linear) layer")
        return weight.detach().float().cpu().numpy()

    def _module(self, layer: str) -> nn.Module:
        if self.kind == "torchscript":
            self.layers()
            if self._layer_refusal:
                raise UnsupportedError(self._layer_refusal)
        modules = dict(self._net.named_modules())
        if layer not in modules or layer == "":
            names = ", ".join(info.name for info in self.layers()[-8:])
            raise InputError(f"no layer named {layer!r} in {self.name}; candidates: {names}")
        return modules[layer]

    def _layer_name(self, name: str) -> str:
        self._module(name)
        return name

    def _layer_indices(self) -> dict[str, str]:
        leaves = [name for name, module in self._net.named_modules()
                  if name and next(module.children(), None) is None]
        return {str(i): name for i, name in enumerate(leaves)}

    def _find_layers(self) -> list[LayerInfo]:
        recorder = LayerRecorder(channels_last=False)
        handles = []

        def make_hook(name: str, module: nn.Module):
            kind = _kind(module)

            def hook(_m, _inp, out):
                out = out[0] if isinstance(out, (tuple, list)) and out else out
                recorder.record(name, kind, out)

            return hook

        probe = [p[:1] for p in self.probe_batch()]
        # hooks on and off under the lock: another thread's forward pass must not be recorded
        with self._lock:
            for name, module in self._net.named_modules():
                if name:
                    handles.append(module.register_forward_hook(make_hook(name, module)))
            try:
                with torch.inference_mode():
                    out = self._forward(self._tensors(probe))
                    if self.kind == "torchscript":
                        self._check_split(out, probe)
            except (InputError, UnsupportedError) as exc:
                if self.kind != "torchscript":
                    raise
                self._layer_refusal = str(exc) if "layer by layer" in str(exc) else (
                    f"{self.name}: the TorchScript program cannot be run layer by layer ({first_line(exc)})")
                return []
            finally:
                for handle in handles:
                    handle.remove()
        layouts = self._layouts(recorder)
        return recorder.found({name: i for i, name in self._layer_indices().items()}, layouts)

    def _check_split(self, out: torch.Tensor, probe: list[np.ndarray]) -> None:
        """A TorchScript program run in pieces at its layers (every layer hooked)
        gives the program's own output on the probe, or its layers are refused."""
        try:
            whole = self.model(*self._normalised(self._tensors(probe)))
        except Exception as exc:  # noqa: BLE001 - the program failed outside the pieces
            raise UnsupportedError(f"{self.name}: the TorchScript program failed on the probe run layer by layer "
                                   f"({first_line(exc)})") from None
        whole = whole[0] if isinstance(whole, (tuple, list)) else whole
        if not isinstance(whole, torch.Tensor) or not torch.allclose(
                out, whole.reshape(out.shape).float(), rtol=1e-4, atol=1e-5):
            raise UnsupportedError(f"{self.name}: the TorchScript program run layer by layer does not give "
                                   "its own output, so its layers are not offered")

    # -- layouts -------------------------------------------------------------------------
    def _layouts(self, recorder: LayerRecorder):
        """name, raw output shape -> layout. An nn.Module is first probed at a second
        input size (which axes grow with the image's height and width); where that
        leaves a layer unsettled (the model takes one size only, tokens with extra
        tokens, attention), and for every .pt2 program, the model's ATen graph
        decides. A model over feature rows has vectors (N x units) as they are."""
        shapes = recorder.shapes()
        image = len(self.inputs) == 1 and isinstance(self.spec, ImageSpec)
        traced: dict[str, LayerLayout] = {}
        if image:
            if self.kind in ("module", "torchscript"):
                traced = self._probe_layouts()
            unsettled = not traced or any(
                len(shapes.get(name, ())) > 2 and not (layout.is_map or layout.kind == "vector")
                for name, layout in traced.items())
            if unsettled:
                try:
                    traced.update(self._graph_layouts(shapes))
                except Exception:  # noqa: BLE001 - a model torch.export cannot follow: what the probe found
                    pass

        def layout(name: str, shape: tuple[int, ...]) -> LayerLayout:
            if name not in traced and name in recorder.same_as:
                name = recorder.same_as[name]
            if name in traced:
                return traced[name]
            if len(shape) == 2 and not image:
                return vector_layout(shape[1], "feature rows")
            return not_a_map("axes that could not be traced to the image's height and width")

        return layout

    def _graph_layouts(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, LayerLayout]:
        from xai_core.adapters.torch_layouts import exported_axes, layout_of, unflattened_axes

        found: dict[str, LayerLayout] = {}
        if self.kind == "torchscript":
            found = self._batch_vectors(self.__dict__.get("_one_size", {}))
            try:
                found.update(self._converted_layouts(shapes))
            except Exception:  # noqa: BLE001 - a program torch.export's converter cannot follow: its vectors
                pass
            return found
        if self.kind == "export":
            axes, _ = unflattened_axes(self.model)
            for name, shape in shapes.items():
                if name in axes:
                    graph_shape = _graph_shape(axes[name], shape)
                    found[name] = layout_of(axes[name], graph_shape)
            return found
        if self.kind != "module":
            return found
        probe = self._tensors(self.probe_batch())[0]
        probe = (probe - self._norm[0][0]) / self._norm[0][1]
        with self._lock:
            outs, _ = exported_axes(self.model, probe.contiguous())
        for name, shape in shapes.items():
            layouts = {}
            for graph_shape, axes in outs.get(name, []):
                if graph_shape is not None and graph_shape[1:] == shape[1:]:
                    layouts[repr(layout_of(axes, graph_shape))] = layout_of(axes, graph_shape)
            if len(layouts) == 1:
                found[name] = next(iter(layouts.values()))
            elif layouts:
                found[name] = not_a_map("several outputs whose axes differ")
        return found

    def _probe_layouts(self) -> dict[str, LayerLayout]:
        """Layouts from every layer's output shapes for the probe pair at the model's
        input size and for one image of twice its height, one of twice its width
        ({} for a model that takes one size only), see :func:`layout_from_probe`."""
        h, w = self.spec.size
        c = self.spec.channels
        rng = torch.Generator().manual_seed(0)
        runs: list[dict[str, tuple[int, ...]]] = []
        for batch in (self._tensors(self.probe_batch())[0], torch.rand(1, c, 2 * h, w, generator=rng),
                      torch.rand(1, c, h, 2 * w, generator=rng)):
            recorder = LayerRecorder(channels_last=False)
            handles = []
            with self._lock:
                for name, module in self._net.named_modules():
                    if name:
                        handles.append(module.register_forward_hook(
                            lambda _m, _i, out, _n=name, _r=recorder: _r.record(
                                _n, "", out[0] if isinstance(out, (tuple, list)) and out else out)))
                try:
                    with torch.inference_mode():
                        self._net((batch.to(self.device) - self._norm[0][0]) / self._norm[0][1])
                except Exception:  # noqa: BLE001 - the model takes one size only
                    self._one_size = runs[0] if runs else {}
                    return {}
                finally:
                    for handle in handles:
                        handle.remove()
            runs.append(recorder.shapes())
        base, taller, wider = runs
        return {name: layout_from_probe(shape, taller[name], wider[name], (h, w), (2, 1))
                for name, shape in base.items() if name in taller and name in wider}

    def _converted_layouts(self, shapes: dict[str, tuple[int, ...]]) -> dict[str, LayerLayout]:
        """A TorchScript program's layouts from its ATen graph: the program is
        converted to ``torch.export`` on the probe pair (the conversion keeps no
        module names), every tensor of that graph is traced, and each layer's
        output on the same probe is found among them by its values. A layer
        matched by tensors whose axes differ is not a map."""
        from torch._export.converter import TS2EPConverter

        from xai_core.adapters.torch_layouts import converted_axes, layout_of

        probe = self._normalised(self._tensors(self.probe_batch()))[0].contiguous()
        captured: dict[str, torch.Tensor] = {}
        handles = []
        with self._lock:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the converter inlines the program's graphs in place: it gets a copy of its own
                # (saved and loaded again, so that no compiled method is shared)
                buffer = io.BytesIO()
                torch.jit.save(self.model, buffer)
                buffer.seek(0)
                program = TS2EPConverter(torch.jit.load(buffer, map_location=self.device), (probe,)).convert()
            tensors = converted_axes(program.module(), probe)
            for name, module in self._net.named_modules():
                if name in shapes:
                    handles.append(module.register_forward_hook(
                        lambda _m, _i, out, _n=name: captured.__setitem__(
                            _n, out[0] if isinstance(out, (tuple, list)) else out)))
            try:
                with torch.inference_mode():
                    self._net(probe)
            finally:
                for handle in handles:
                    handle.remove()
        found: dict[str, LayerLayout] = {}
        for name, out in captured.items():
            layouts = {}
            for value, axes in tensors:
                if value.shape == out.shape and torch.allclose(value.float(), out.float(), rtol=1e-5, atol=1e-6):
                    layout = layout_of(axes, tuple(value.shape))
                    layouts[repr(layout)] = layout
            if len(layouts) == 1:
                found[name] = next(iter(layouts.values()))
            elif layouts:
                found[name] = not_a_map("several tensors of the program's graph whose axes differ")
        return found

    @staticmethod
    def _batch_vectors(pair: dict[str, tuple[int, ...]]) -> dict[str, LayerLayout]:
        """For a TorchScript program that takes one image size (no ATen graph to
        trace): the layers giving one row of units per item of the probe pair
        (2 x units) are vectors; the others stay untraced."""
        return {name: vector_layout(shape[1], "probe") for name, shape in pair.items()
                if len(shape) == 2 and shape[0] == 2}

    def _class_signal(self, layers: list[str]) -> dict[str, float]:
        every = dict(self._net.named_modules())
        modules = {name: every[name] for name in layers}
        infos = {info.name: info for info in self.layers()}
        layouts = {name: infos[name].layout for name in layers}
        captured: dict[str, torch.Tensor] = {}
        handles = []
        with self._lock:
            for name, module in modules.items():
                handles.append(module.register_forward_hook(
                    lambda _m, _i, out, _n=name: captured.__setitem__(
                        _n, out[0] if isinstance(out, (tuple, list)) else out)))
            try:
                # the probe pair (grey, noise), or the noise alone for a program exported for one item
                xs = self._tensors([p if self.max_batch != 1 else p[1:2] for p in self.probe_batch()])
                with torch.enable_grad():
                    out = self._forward(xs)
                    score = self._scores(out, self._pick(out.detach().cpu().numpy(), None))
                    names = [n for n in layers if n in captured and captured[n].requires_grad]
                    grads = torch.autograd.grad(score.sum(), [captured[n] for n in names], allow_unused=True)
            finally:
                for handle in handles:
                    handle.remove()
        signal = {}
        for name, g in zip(names, grads, strict=True):
            if g is None:
                signal[name] = 0.0
                continue
            acts = layouts[name].fold(captured[name].detach().float().cpu().numpy())
            grads = layouts[name].fold(g.detach().float().cpu().numpy())
            signal[name] = sum(cam_signal(a, d) for a, d in zip(acts, grads, strict=True))
        return signal


def _graph_shape(axes, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The hooked shape, checked against the traced axes' count (the batch may differ)."""
    return shape if axes is not None and len(axes) == len(shape) else shape


def with_own_weights(root: nn.Module) -> nn.Module:
    """A copy of ``root`` whose parameters and buffers are its own (cloned, ties
    kept) and whose structure is shared: every submodule is copied shallowly, so
    a program that ``copy.deepcopy`` refuses (an unflattened ``torch.export``
    program with dynamic shapes: its graphs hold symbolic sizes) is copied too.
    Its graphs run on the copy's own attributes, so changing the copy's weights
    leaves ``root`` as it was."""
    import copy

    memo: dict[int, object] = {}

    def tensor(t, parameter: bool):
        if t is None:
            return None
        if id(t) not in memo:
            clone = t.detach().clone()
            memo[id(t)] = nn.Parameter(clone, requires_grad=t.requires_grad) if parameter else clone
        return memo[id(t)]

    def walk(module: nn.Module) -> nn.Module:
        if id(module) in memo:
            return memo[id(module)]
        new = copy.copy(module)
        memo[id(module)] = new
        state = vars(new)
        for key, value in vars(module).items():
            if "hooks" in key and isinstance(value, dict):  # hooks added to the copy stay the copy's
                state[key] = copy.copy(value)
        state["_parameters"] = {k: tensor(p, True) for k, p in module._parameters.items()}
        state["_buffers"] = {k: tensor(b, False) for k, b in module._buffers.items()}
        state["_modules"] = {k: None if c is None else walk(c) for k, c in module._modules.items()}
        return new

    return walk(root)


def _kind(module: nn.Module) -> str:
    """The module's class name; for a module of an unflattened torch.export program
    (all called InterpreterModule), the first operator it runs: Conv2d for
    ``aten.conv2d``, Linear for ``aten.linear``, else the operator's name
    (``max_pool2d``, ``relu``...)."""
    name = kind_of(module) or type(module).__name__
    graph = getattr(module, "graph", None)
    if name != "InterpreterModule" or graph is None:
        return name
    ops = [str(node.target).split(".")[1] for node in graph.nodes
           if node.op == "call_function" and str(node.target).startswith("aten.")]
    if not ops:
        return name
    return {"conv2d": "Conv2d", "linear": "Linear"}.get(ops[0], ops[0])


def _with_vector_size(specs: tuple[InputSpec, ...], model) -> tuple[InputSpec, ...]:
    """A one-vector model whose spec leaves the width open: the first weight matrix's
    input width (a Linear layer's in_features)."""
    if len(specs) == 1 and isinstance(specs[0], VectorSpec) and specs[0].size is None:
        for p in getattr(model, "parameters", lambda: [])():
            if p.ndim == 2:
                return (VectorSpec(int(p.shape[1]), specs[0].feature_names, specs[0].name),)
    return specs


class _TargetScore(nn.Module):
    """[0, 1] images -> (x - mean) / std -> model -> the target's score (N x 1)."""

    def __init__(self, model: nn.Module, mean: torch.Tensor, std: torch.Tensor, target: int, sigmoid: bool) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())
        self.target = target
        self.sigmoid = sigmoid

    def forward(self, x):
        out = self.model((x - self.mean) / self.std)
        if self.sigmoid:
            return out[:, :1] if self.target == 1 else 1 - out[:, :1]
        return out[:, self.target : self.target + 1]
