"""Attention probabilities of PyTorch vision transformers, read with hooks.

The methods made for transformers (attention rollout, gradient-weighted attention,
LeGrad) need every block's post-softmax attention ``A`` (N x heads x T x T, each
row a probability distribution over the T tokens) and, for the gradient methods,
the explained score's gradient with respect to it. This module finds the
attention modules of three families it knows exactly, never by guessing from a
shape:

* **timm** (ViT, DeiT, BEiT, ... built from ``timm.layers.Attention`` or BEiT's
  ``Attention``): timm fuses attention into ``F.scaled_dot_product_attention``
  by default, which never materialises ``A``; while capturing, each module's
  ``fused_attn`` flag is turned off, so it runs its own explicit branch
  ``softmax(q k^T * scale)`` followed by ``attn_drop``, whose output (the tensor
  that multiplies ``v``) is read by a forward hook.
* **Hugging Face transformers** (ViT, DeiT, BEiT, DINOv2, ...): the model's own
  declaration ``_can_record_outputs["attentions"]`` names the attention module,
  whose output[1] is ``A``; only the "eager" implementation returns it (sdpa gives
  None), so the configs of those modules are switched to eager while capturing.
* **torchvision** ``VisionTransformer``: its blocks call
  ``nn.MultiheadAttention`` with ``need_weights=False``; a pre-hook asks for
  per-head weights and a forward hook recomputes the output from them
  (``out_proj(A v)``, as torchcam's LeGrad does) so that gradients reach ``A``.

Every captured ``A`` is checked (shape N x heads x T x T, rows summing to 1, one
call per block and forward pass); anything else is refused with one line. The
token layout (prefix tokens: class, distillation, registers; the patch grid) is
read from the model's patch size and the input size, and checked against T.
Torch is imported only inside the functions that run the model.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from xai_core.types import UnsupportedError

ROW_SUM_TOLERANCE = 1e-3


@dataclass
class AttentionMaps:
    """What one capture returns (it crosses the worker boundary as is).

    ``attentions``: one array per block, input side first, N x heads x T x T (row
    i: how query token i distributes its attention over the T keys).
    ``gradients``: d score / d A per block (same shapes) when asked, else None.
    ``block_gradients``: LeGrad's d s^l / d A^l per block l, where s^l is the
    target's logit read from block l's output tokens through the model's own final
    norm and head (mean over tokens), when asked, else None.
    ``prefix``: tokens before the patches (class, distillation, register tokens);
    the patch tokens are the last gh * gw, row-major over ``grid`` (gh, gw).
    ``scores``: the explained score per item; ``probabilities`` N x classes;
    ``target`` the explained class; ``family`` timm, transformers or torchvision;
    ``class_token``: the head reads token 0, a class token (False for a model
    that has none, or whose head pools the patch tokens: BEiT, DINOv2).
    """

    attentions: list[np.ndarray]
    gradients: list[np.ndarray] | None
    block_gradients: list[np.ndarray] | None
    prefix: int
    grid: tuple[int, int]
    scores: np.ndarray
    probabilities: np.ndarray
    target: int
    family: str
    class_token: bool = True


@dataclass
class _Site:
    """One attention module: its name, the block (its parent) and how to read A."""

    name: str
    module: Any
    block: Any
    family: str


def attention_sites(model: Any) -> list[_Site]:
    """The attention modules of ``model`` that this module can read, in
    registration order ([] when none, or when the model mixes families)."""
    from torch import nn

    if not isinstance(model, nn.Module):
        return []
    timm_classes = _timm_attention_classes()
    hf_classes = _hf_attention_classes(model)
    modules = dict(model.named_modules())
    sites = []
    for name, module in modules.items():
        if type(module) in timm_classes:
            family = "timm"
        elif hf_classes and isinstance(module, hf_classes):
            family = "transformers"
        elif isinstance(module, nn.MultiheadAttention) and name.endswith(".self_attention") \
                and _torchvision_vit(model) is not None:
            family = "torchvision"
        else:
            continue
        parent = modules.get(name.rpartition(".")[0]) if "." in name else None
        if parent is None:
            continue
        sites.append(_Site(name, module, parent, family))
    if len({s.family for s in sites}) > 1:
        return []
    return sites


def attention_capabilities(adapter: Any) -> frozenset[str]:
    """What the methods made for transformers can read from the adapter's module,
    established by capturing a probe image, never from names alone:
    ``Capability.ATTENTION`` when its attention modules are found and every check
    passes (probabilities, one map per block, the token layout), plus
    ``CLASS_TOKEN`` when the head reads the class token and ``BLOCK_SCORES`` when
    every block's tokens can be scored by the head (empty when none)."""
    from xai_core.types import Capability

    if getattr(adapter, "kind", "") != "module" or not attention_sites(getattr(adapter, "model", None)):
        return frozenset()
    probe = adapter.join([p[:1] for p in adapter.probe_batch()])
    try:
        maps = capture(adapter, probe, None)
    except Exception:  # noqa: BLE001 - whatever fails here, the methods are not offered
        return frozenset()
    found = {Capability.ATTENTION}
    if maps.class_token:
        found.add(Capability.CLASS_TOKEN)
    try:
        capture(adapter, probe, None, block_gradients=True)
        found.add(Capability.BLOCK_SCORES)
    except Exception:  # noqa: BLE001 - no known head for the blocks: no LeGrad
        pass
    return frozenset(found)


def _timm_attention_classes() -> tuple[type, ...]:
    """timm's attention classes, when timm is loaded (a timm model's module is; a
    CNN's check must not import timm)."""
    found = (getattr(sys.modules.get("timm.layers.attention"), "Attention", None),
             getattr(sys.modules.get("timm.models.beit"), "Attention", None))
    return tuple(cls for cls in found if isinstance(cls, type))


def _hf_attention_classes(model: Any) -> tuple[type, ...]:
    """The classes that Hugging Face models inside ``model`` declare as their
    attention outputs (``_can_record_outputs['attentions']``)."""
    found: list[type] = []
    for module in model.modules():
        declared = getattr(type(module), "_can_record_outputs", None)
        if not isinstance(declared, dict) or "attentions" not in declared:
            continue
        spec = declared["attentions"]
        cls = spec if isinstance(spec, type) else getattr(spec, "target_class", None)
        index = 1 if isinstance(spec, type) else getattr(spec, "index", None)
        if isinstance(cls, type) and index == 1 and getattr(spec, "layer_name", None) is None:
            found.append(cls)
    return tuple(dict.fromkeys(found))


def _torchvision_vit(model: Any) -> Any:
    VisionTransformer = getattr(sys.modules.get("torchvision.models.vision_transformer"),  # noqa: N806
                                "VisionTransformer", None)
    if VisionTransformer is None:
        return None
    return next((m for m in model.modules() if isinstance(m, VisionTransformer)), None)


def _timm_root(model: Any) -> Any:
    """The timm model (the module holding ``patch_embed`` and ``num_prefix_tokens``)."""
    return next((m for m in model.modules()
                 if hasattr(m, "patch_embed") and hasattr(m, "num_prefix_tokens") and hasattr(m, "blocks")), None)


def _hf_root(model: Any) -> Any:
    """The Hugging Face base model (the one holding ``embeddings`` and a config with a patch size)."""
    return next((m for m in model.modules() if isinstance(getattr(type(m), "_can_record_outputs", None), dict)
                 and hasattr(m, "embeddings") and hasattr(getattr(m, "config", None), "patch_size")), None)


def _patch_size(model: Any, family: str) -> tuple[int, int] | None:
    if family == "timm":
        root = _timm_root(model)
        size = getattr(getattr(root, "patch_embed", None), "patch_size", None)
    elif family == "transformers":
        size = getattr(getattr(_hf_root(model), "config", None), "patch_size", None)
    else:
        size = getattr(_torchvision_vit(model), "patch_size", None)
    if isinstance(size, int):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        return None
    return int(size[0]), int(size[1])


def token_layout(model: Any, family: str, image_size: tuple[int, int],
                 tokens: int) -> tuple[int, tuple[int, int], bool]:
    """(prefix tokens, (gh, gw), whether token 0 is a class token) of a model that sees ``tokens`` tokens for an input of
    ``image_size`` (H, W): the grid from the patch size, the prefix what is left,
    checked against what the model declares."""
    patch = _patch_size(model, family)
    if patch is None:
        raise UnsupportedError("the model's patch size is unknown, so its tokens cannot be placed on the image")
    grid = (image_size[0] // patch[0], image_size[1] // patch[1])
    prefix = tokens - grid[0] * grid[1]
    if family == "timm":
        root = _timm_root(model)
        declared = getattr(root, "num_prefix_tokens", None)
        class_token = getattr(root, "cls_token", None) is not None and getattr(root, "global_pool", "") == "token"
    elif family == "torchvision":
        declared, class_token = 1, True
    else:
        embeddings = getattr(_hf_root(model), "embeddings", None)
        registers = getattr(embeddings, "register_tokens", None)
        declared = sum(1 for key in ("cls_token", "distillation_token") if getattr(embeddings, key, None) is not None)
        declared += 0 if registers is None else int(registers.shape[1])
        class_token = getattr(embeddings, "cls_token", None) is not None and _hf_reads_class_token(model)
    if prefix != declared:
        raise UnsupportedError(
            f"the attention covers {tokens} tokens, but a {image_size[0]}x{image_size[1]} input in "
            f"{patch[0]}x{patch[1]} patches gives {grid[0]}x{grid[1]} patches and {declared} class/extra "
            "token(s); the token layout is not known, so no map is drawn"
        )
    return prefix, grid, class_token


# Hugging Face classifiers whose head reads the class token (DeiT with teacher: and the distillation token)
_HF_CLASS_TOKEN_HEADS = ("ViTForImageClassification", "DeiTForImageClassification",
                         "DeiTForImageClassificationWithTeacher")


def _hf_reads_class_token(model: Any) -> bool:
    for module in model.modules():
        name = type(module).__name__
        if name in _HF_CLASS_TOKEN_HEADS:
            return True
        if name == "BeitForImageClassification":
            return not getattr(module.config, "use_mean_pooling", True)
    return False


@contextmanager
def _capturing(sites: list[_Site], store: list, blocks: list | None):
    """Hooks on (and explicit attention in) every site while the block runs."""
    with ExitStack() as stack:
        for site in sites:
            if site.family == "timm":
                stack.enter_context(_timm_explicit(site, store))
            elif site.family == "transformers":
                stack.enter_context(_hf_eager(site, store))
            else:
                stack.enter_context(_torchvision_weights(site, store))
            if blocks is not None:
                handle = site.block.register_forward_hook(
                    lambda _m, _i, out: blocks.append(out[0] if isinstance(out, (tuple, list)) else out))
                stack.callback(handle.remove)
        yield


@contextmanager
def _timm_explicit(site: _Site, store: list):
    module = site.module
    saved = module.fused_attn
    module.fused_attn = False
    handle = module.attn_drop.register_forward_hook(lambda _m, _i, out: store.append((site.name, out)))
    try:
        yield
    finally:
        handle.remove()
        module.fused_attn = saved


@contextmanager
def _hf_eager(site: _Site, store: list):
    config = site.module.config
    saved = config._attn_implementation_internal
    config._attn_implementation_internal = "eager"

    def hook(_m, _i, out):
        store.append((site.name, out[1] if isinstance(out, (tuple, list)) and len(out) > 1 else None))

    handle = site.module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
        config._attn_implementation_internal = saved


@contextmanager
def _torchvision_weights(site: _Site, store: list):
    import torch.nn.functional as F  # noqa: N812

    module = site.module

    def before(_m, args, kwargs):
        if len(args) != 3:
            raise UnsupportedError(f"{site.name}: attention called with masks or options by position; not read")
        kwargs = dict(kwargs)
        kwargs["need_weights"] = True
        kwargs["average_attn_weights"] = False
        return args, kwargs

    def after(_m, args, _kwargs, out):
        attention = out[1]
        value = args[2]
        n, t, dim = value.shape
        v = F.linear(value, module.in_proj_weight[2 * dim:],
                     None if module.in_proj_bias is None else module.in_proj_bias[2 * dim:])
        v = v.reshape(n, t, module.num_heads, dim // module.num_heads).transpose(1, 2)
        replay = (attention @ v).transpose(1, 2).reshape(n, attention.shape[-2], dim)
        store.append((site.name, attention))
        return module.out_proj(replay), attention

    if not module.batch_first or module.bias_k is not None or module.add_zero_attn \
            or module.in_proj_weight is None:
        raise UnsupportedError(f"{site.name}: only batch-first self-attention with one input projection is read")
    handles = [module.register_forward_pre_hook(before, with_kwargs=True),
               module.register_forward_hook(after, with_kwargs=True)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _project(model: Any, family: str):
    """LeGrad's per-block score: block tokens z (N x T x D) -> class logits, through
    the model's own final norm and head(s), from the mean over tokens (as torchcam
    and the LeGrad authors' code pool them). A distilled DeiT averages its two heads
    on that mean, as it averages them on its class and distillation tokens; DINOv2
    (with or without registers), whose head reads the class token beside the
    patches' mean (registers left out), gets its own head on the block's normed
    tokens."""
    if family == "torchvision":
        vit = _torchvision_vit(model)
        return lambda z: vit.heads(vit.encoder.ln(z.mean(dim=1)))
    if family == "timm":
        root = _timm_root(model)
        if not all(hasattr(root, a) for a in ("norm", "fc_norm", "head")):
            raise UnsupportedError("LeGrad needs a timm transformer with a head after norm/fc_norm")
        if getattr(root, "head_dist", None) is not None:  # distilled DeiT: (head + head_dist) / 2, as in eval
            def distilled(z):
                pooled = root.fc_norm(root.norm(z.mean(dim=1)))
                return (root.head(pooled) + root.head_dist(pooled)) / 2
            return distilled
        return lambda z: root.head(root.fc_norm(root.norm(z.mean(dim=1))))
    root = next((m for m in model.modules() if type(m).__name__ in _HF_LEGRAD), None)
    if root is None:
        raise UnsupportedError("LeGrad reads the heads of Hugging Face ViT, DeiT (with or without teacher), "
                               "BEiT and DINOv2 (with or without registers) image classifiers; this model's "
                               "head is not known")
    base = getattr(root, root.base_model_prefix)
    kind = type(root).__name__
    if kind == "DeiTForImageClassificationWithTeacher":
        def teacher(z):
            pooled = base.layernorm(z.mean(dim=1))
            return (root.cls_classifier(pooled) + root.distillation_classifier(pooled)) / 2
        return teacher
    if kind == "BeitForImageClassification":
        pooler = getattr(base, "pooler", None)
        norm = pooler.layernorm if getattr(pooler, "layernorm", None) is not None else base.layernorm
        return lambda z: root.classifier(norm(z.mean(dim=1)))
    if kind in ("Dinov2ForImageClassification", "Dinov2WithRegistersForImageClassification"):
        first = 1 + int(getattr(root.config, "num_register_tokens", 0) or 0)  # the patches, after any registers

        def dinov2(z):
            seq = base.layernorm(z)
            return root.classifier(torch_cat([seq[:, 0], seq[:, first:].mean(dim=1)]))
        return dinov2
    return lambda z: root.classifier(base.layernorm(z.mean(dim=1)))


def torch_cat(parts: list) -> Any:
    import torch

    return torch.cat(parts, dim=1)


# Hugging Face classifiers whose head LeGrad applies to a block's tokens (ViT and DeiT:
# logits = classifier(layernorm(z)[:, 0]); the others in _project)
_HF_LEGRAD = ("ViTForImageClassification", "DeiTForImageClassification", "DeiTForImageClassificationWithTeacher",
              "BeitForImageClassification", "Dinov2ForImageClassification",
              "Dinov2WithRegistersForImageClassification")


def capture(adapter: Any, batch: Any, target: int | None, *, gradients: bool = False,
            block_gradients: bool = False) -> AttentionMaps:
    """Run ``batch`` (canonical images N x H x W x C in [0, 1]) through a
    :class:`~xai_core.adapters.torch.TorchAdapter`'s module and read every block's
    attention probabilities, with d score / d A when ``gradients`` and LeGrad's
    per-block gradients when ``block_gradients``. ``target=None`` explains the
    first item's predicted class."""
    import torch

    model = adapter.model
    sites = attention_sites(model) if getattr(adapter, "kind", "") == "module" else []
    if not sites:
        raise UnsupportedError(f"{adapter.name} has no attention this tool can read (a timm, Hugging Face "
                               "or torchvision vision transformer loaded as a module)")
    family = sites[0].family
    project = _project(model, family) if block_gradients else None
    parts = adapter.split(batch)
    store: list[tuple[str, Any]] = []
    blocks: list | None = [] if block_gradients else None
    need_grad = gradients or block_gradients
    with adapter.model_lock(), _capturing(sites, store, blocks):
        xs = adapter._tensors(parts)
        with torch.enable_grad() if need_grad else torch.inference_mode():
            out = adapter._forward(xs)
            chosen = adapter._pick(out.detach().cpu().numpy(), target)
            score = adapter._scores(out, chosen)
            attentions = _checked(store, sites, len(parts[0]))
            grads = block_grads = None
            if gradients:
                grads = [g.detach().float().cpu().numpy()
                         for g in torch.autograd.grad(score.sum(), attentions, retain_graph=block_gradients)]
            if block_gradients:
                if len(blocks) != len(sites):
                    raise UnsupportedError("the transformer's blocks did not each run once; LeGrad cannot read them")
                block_grads = []
                for i, (tokens, attention) in enumerate(zip(blocks, attentions, strict=True)):
                    logits = project(tokens)
                    (g,) = torch.autograd.grad(logits[:, chosen].sum(), attention, retain_graph=i < len(sites) - 1)
                    block_grads.append(g.detach().float().cpu().numpy())
    tokens = int(attentions[0].shape[-1])
    prefix, grid, class_token = token_layout(model, family, tuple(adapter.spec.size), tokens)
    return AttentionMaps(
        attentions=[a.detach().float().cpu().numpy() for a in attentions],
        gradients=grads, block_gradients=block_grads, prefix=prefix, grid=grid,
        scores=score.detach().cpu().numpy().astype(np.float64),
        probabilities=adapter.probabilities(out.detach().cpu().numpy()),
        target=chosen, family=family, class_token=class_token,
    )


def _checked(store: list, sites: list[_Site], n: int) -> list:
    """The captured tensors, one per site in execution order, each a probability
    tensor N x heads x T x T; UnsupportedError otherwise."""
    names = [name for name, _ in store]
    if sorted(names) != sorted(s.name for s in sites) or len(set(names)) != len(names):
        raise UnsupportedError("the attention modules did not each run once in the forward pass; "
                               "their weights cannot be read as one map per block")
    tensors = [a for _, a in store]
    shape = None
    for name, a in store:
        if a is None or a.ndim != 4 or a.shape[0] != n or a.shape[-1] != a.shape[-2] \
                or (shape is not None and tuple(a.shape) != shape):
            got = None if a is None else tuple(a.shape)
            raise UnsupportedError(f"{name}: attention weights {got} are not N x heads x tokens x tokens "
                                   "(windowed or pooled attention is not read)")
        shape = tuple(a.shape)
        rows = a.detach().float().sum(dim=-1)
        if float((rows - 1).abs().max()) > ROW_SUM_TOLERANCE or float(a.detach().min()) < 0:
            raise UnsupportedError(f"{name}: the captured weights are not softmax probabilities; refusing to read them")
    return tensors


__all__ = ["AttentionMaps", "attention_capabilities", "attention_sites", "capture", "token_layout"]
