"""PyTorch adapter: nn.Module, TorchScript and unflattened torch.export programs.

Only imported when a PyTorch model is used, so ``import xai_core`` stays light.
"""

from __future__ import annotations

import threading

import numpy as np
import torch
from torch import nn

from ..types import Capability, ImageSpec, InputError, UnsupportedError
from .base import LayerInfo, LayerRecorder, ModelAdapter, first_line, fit_labels, is_probability


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
    """Wraps a PyTorch classifier taking N x C x H x W normalised tensors.

    ``kind`` is 'module' (an nn.Module), 'torchscript' (no hooks possible) or
    'export' (an unflattened ``torch.export`` program).
    """

    framework = "torch"

    def __init__(
        self,
        model: nn.Module,
        spec: ImageSpec,
        labels: list[str] | None = None,
        name: str = "model",
        kind: str = "module",
        device: str = "auto",
        channels_last: bool | None = None,
        batch_size: int = 16,
    ) -> None:
        self.kind = kind
        self.name = name
        self.spec = spec
        self.device = resolve_device(device)
        self.default_batch_size = batch_size
        self._lock = threading.RLock()
        model.eval()
        if kind != "export":
            model.to(self.device)
        if channels_last is None:
            # oneDNN runs conv nets faster on NHWC; our canonical layout is NHWC too,
            # so the permuted input tensor needs no copy.
            channels_last = kind == "module" and any(
                isinstance(m, nn.Conv2d) for m in model.modules()
            )
        self.channels_last = channels_last
        if channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self._mean = torch.tensor(spec.mean_array(), device=self.device).view(1, -1, 1, 1)
        self._std = torch.tensor(spec.std_array(), device=self.device).view(1, -1, 1, 1)
        self.max_batch: int | None = None
        probe = self._probe_output()
        self._num_classes = int(probe.shape[1])
        self._output_kind = "probability" if is_probability(probe.numpy()) else "logit"
        self.labels = fit_labels(labels, self._num_classes)

    # -- basic facts -----------------------------------------------------------------
    @property
    def capabilities(self) -> frozenset[str]:
        caps = {Capability.PREDICT, Capability.INPUT_GRADIENTS}
        if self.kind != "torchscript":
            caps.add(Capability.LAYER_GRADIENTS)
        return frozenset(caps)

    # -- tensors ---------------------------------------------------------------------
    def _to_input(self, batch: np.ndarray) -> torch.Tensor:
        if batch.ndim != 4 or batch.shape[-1] != self.spec.channels:
            raise InputError(
                f"expected images N x H x W x {self.spec.channels}, got shape {batch.shape}"
            )
        x = torch.from_numpy(np.asarray(batch, dtype=np.float32)).to(self.device)
        x = x.permute(0, 3, 1, 2)
        if not self.channels_last:
            x = x.contiguous()
        return x

    def _forward(self, x01: torch.Tensor) -> torch.Tensor:
        x = (x01 - self._mean) / self._std
        try:
            out = self.model(x)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise InputError(
                f"{self.name} rejected an input of shape {tuple(x.shape)} (N, C, H, W): "
                f"{first_line(exc)}. Check the input size and grayscale settings."
            ) from None
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            out = next(iter(out.values()))
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            shape = getattr(out, "shape", type(out).__name__)
            raise UnsupportedError(
                f"{self.name} returned {shape}; an image classifier must return N x classes"
            )
        return out.float()

    def _pick(self, out: torch.Tensor, target: int | None) -> int:
        """None -> the first image's predicted class (one pass gives target and gradients)."""
        if target is None:
            return int(out[0].argmax())
        if not 0 <= target < out.shape[1]:
            raise InputError(f"target class {target} is out of range (0..{out.shape[1] - 1})")
        return int(target)

    def _scores(self, out: torch.Tensor, target: int) -> torch.Tensor:
        """The explained score: the target's logit, or its probability for softmax models."""
        return out[:, target]

    def _probs(self, out: torch.Tensor) -> torch.Tensor:
        return out if self._output_kind == "probability" else torch.softmax(out, 1)

    def _probe_output(self) -> torch.Tensor:
        h, w = self.spec.size
        x = torch.full((1, self.spec.channels, h, w), 0.5, device=self.device)
        rng = np.random.default_rng(0)
        noise = rng.random((1, h, w, self.spec.channels), dtype=np.float32)
        with self._lock, torch.inference_mode():
            a = self._forward(x)
            b = self._forward(self._to_input(noise))
            if self.kind in ("export", "torchscript"):
                # programs exported without a dynamic batch dimension take one image a call
                try:
                    self._forward(torch.cat([x, x]))
                except InputError:
                    self.max_batch = 1
        return torch.cat([a, b]).cpu()

    def iter_batches(self, n: int, batch_size: int | None):
        size = batch_size or self.default_batch_size
        return super().iter_batches(n, min(size, self.max_batch or size))

    # -- primitives ------------------------------------------------------------------
    def predict(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        outs = []
        with self._lock, torch.inference_mode():
            for sl in self.iter_batches(len(batch), batch_size):
                outs.append(self._probs(self._forward(self._to_input(batch[sl]))).cpu().numpy())
        if not outs:
            return np.zeros((0, self._num_classes), np.float32)
        return np.concatenate(outs).astype(np.float32, copy=False)

    def logits_or_probs(self, batch: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Raw model outputs (the scores gradients are taken of)."""
        outs = []
        with self._lock, torch.inference_mode():
            for sl in self.iter_batches(len(batch), batch_size):
                outs.append(self._forward(self._to_input(batch[sl])).cpu().numpy())
        return np.concatenate(outs).astype(np.float32, copy=False)

    def input_gradients(
        self, batch: np.ndarray, target: int | None, batch_size: int | None = None,
        return_probs: bool = False,
    ):
        grads, scores, probs = [], [], []
        with self._lock:
            for sl in self.iter_batches(len(batch), batch_size):
                x = self._to_input(batch[sl]).detach().requires_grad_(True)
                with torch.enable_grad():
                    out = self._forward(x)
                    score = self._scores(out, self._pick(out, target))
                    (g,) = torch.autograd.grad(score.sum(), x)
                grads.append(g.permute(0, 2, 3, 1).cpu().numpy())
                scores.append(score.detach().cpu().numpy())
                if return_probs:
                    probs.append(self._probs(out.detach()).cpu().numpy())
        result = np.concatenate(grads).astype(np.float32), np.concatenate(scores)
        return (*result, np.concatenate(probs)) if return_probs else result

    def layer_activations_and_gradients(
        self, batch: np.ndarray, target: int | None, layer: str, return_probs: bool = False
    ):
        module = self._module(layer)
        captured: list[torch.Tensor] = []

        def hook(_m, _inp, out):
            captured.append(out[0] if isinstance(out, (tuple, list)) else out)

        with self._lock:
            handle = module.register_forward_hook(hook)
            try:
                x = self._to_input(batch).detach().requires_grad_(True)
                with torch.enable_grad():
                    out = self._forward(x)
                    score = self._scores(out, self._pick(out, target))
                    if not captured:
                        raise UnsupportedError(f"layer {layer!r} was not used by the forward pass")
                    act = captured[-1]
                    (g,) = torch.autograd.grad(score.sum(), act)
            finally:
                handle.remove()
        result = (
            act.detach().float().cpu().numpy(),
            g.detach().float().cpu().numpy(),
            score.detach().cpu().numpy(),
        )
        return (*result, self._probs(out.detach()).cpu().numpy()) if return_probs else result

    # -- layers ----------------------------------------------------------------------
    def _module(self, layer: str) -> nn.Module:
        if self.kind == "torchscript":
            raise UnsupportedError(
                f"{self.name} is a TorchScript file, where layer hooks are impossible; "
                "save it as a torch.export program (.pt2) or as a state_dict with an "
                "architecture name to use Grad-CAM"
            )
        modules = dict(self.model.named_modules())
        if layer not in modules or layer == "":
            names = ", ".join(info.name for info in self.layers()[-8:])
            raise InputError(f"no layer named {layer!r} in {self.name}; candidates: {names}")
        return modules[layer]

    def _find_feature_layers(self) -> list[LayerInfo]:
        recorder = LayerRecorder(channels_last=False)
        handles = []

        def make_hook(name: str, module: nn.Module):
            def hook(_m, _inp, out):
                out = out[0] if isinstance(out, (tuple, list)) and out else out
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else None
                recorder.record(name, type(module).__name__, shape)

            return hook

        for name, module in self.model.named_modules():
            if name:
                handles.append(module.register_forward_hook(make_hook(name, module)))
        h, w = self.spec.size
        x = torch.full((1, self.spec.channels, h, w), 0.5, device=self.device)
        try:
            with self._lock, torch.inference_mode():
                self._forward(x)
        finally:
            for handle in handles:
                handle.remove()
        return recorder.feature_maps()
