"""The methods made for transformers, checked against direct computations and the
reference library: attention rollout (Abnar & Zuidema 2020) = the product of the
attention matrices read independently (timm's q, k; Hugging Face's
``output_attentions``); gradient-weighted attention (Chefer et al. 2021) = the rule
applied to Hugging Face's own attentions and their autograd gradients; LeGrad =
``torchcam.methods.LeGrad``. Tiny untrained models, seeds fixed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xai_core.adapters.torch import TorchAdapter
from xai_core.explainers import available_for
from xai_core.service import explain, explain_classes
from xai_core.types import Capability, ImageSpec, InputError, UnsupportedError

SPEC = ImageSpec(size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
METHODS = ("attention_rollout", "transformer_attribution", "legrad")


def _image(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((32, 32, 3)) * 255).astype(np.uint8)


def _tensor(image: np.ndarray) -> torch.Tensor:
    """What the adapter feeds the model: (x / 255 - 0.5) / 0.5, N x C x H x W."""
    x = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5


@pytest.fixture(scope="module")
def timm_vit():
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                             num_classes=3, depth=3).eval()


@pytest.fixture(scope="module")
def hf_vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                       intermediate_size=64, num_labels=3)
    return ViTForImageClassification(config).eval()


@pytest.fixture(scope="module")
def tv_vit():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=3, num_heads=4, hidden_dim=32, mlp_dim=64,
                              num_classes=3).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.5)  # torchvision starts the head at zero: no gradient
    return model


def direct_rollout(attentions: list[np.ndarray], discard_ratio: float = 0.0) -> np.ndarray:
    """The paper's rollout of heads x T x T matrices, written out: mean over heads,
    (optionally) the lowest values zeroed but the class token's self-attention,
    0.5 A + 0.5 I, rows normalised, multiplied from the first block up."""
    t = attentions[0].shape[-1]
    out = np.eye(t)
    for a in attentions:
        a = a.astype(np.float64).mean(axis=0)
        if discard_ratio:
            cut = np.sort(a.ravel())[int(a.size * discard_ratio) - 1]
            keep = a > cut
            keep[0, 0] = True
            a = np.where(keep, a, 0.0)
        a = 0.5 * a + 0.5 * np.eye(t)
        out = (a / a.sum(axis=1, keepdims=True)) @ out
    return out


def timm_attentions_from_qkv(model, x: torch.Tensor) -> list[np.ndarray]:
    """softmax(q k^T * scale) recomputed from each block's qkv projection (the model
    runs its fused attention as it is)."""
    found = []
    hooks = [blk.attn.qkv.register_forward_hook(lambda m, i, o, blk=blk: found.append((blk.attn, o)))
             for blk in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    out = []
    for attn, qkv in found:
        b, n, _ = qkv.shape
        q, k, _v = qkv.reshape(b, n, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        out.append(((q * attn.scale) @ k.transpose(-2, -1)).softmax(-1)[0].numpy())
    return out


def test_timm_rollout_is_the_product_of_the_attention_matrices(timm_vit):
    adapter = TorchAdapter(timm_vit, SPEC, device="cpu")
    image = _image()
    assert Capability.ATTENTION in adapter.capabilities
    fused = [blk.attn.fused_attn for blk in timm_vit.blocks]
    assert all(fused)  # timm's default: attention probabilities never materialise
    attentions = timm_attentions_from_qkv(timm_vit, _tensor(image))
    for ratio in (0.0, 0.5):
        e = explain(adapter, image, "attention_rollout", {"discard_ratio": ratio})
        want = direct_rollout(attentions, ratio)[0, 1:].reshape(4, 4)
        np.testing.assert_allclose(e.extras["grid"], want, rtol=1e-4, atol=1e-6)
    assert e.attribution.shape == (32, 32) and e.attribution.min() >= 0 and not e.signed
    # the capture leaves timm's fused attention as it was
    assert [blk.attn.fused_attn for blk in timm_vit.blocks] == fused


def _hf_eager_attentions(model, x: torch.Tensor):
    """Hugging Face's own attentions (eager implementation, output_attentions)."""
    saved = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        out = model(pixel_values=x, output_attentions=True)
    finally:
        model.set_attn_implementation(saved)
    return out


def test_hf_rollout_and_gradient_weighted_attention_match_direct_computations(hf_vit):
    adapter = TorchAdapter(hf_vit, SPEC, device="cpu")
    image = _image(1)
    x = _tensor(image)
    assert hf_vit.config._attn_implementation == "sdpa"  # the capture must switch it to eager and back
    with torch.no_grad():
        attentions = [a[0].numpy() for a in _hf_eager_attentions(hf_vit, x).attentions]
    rollout = explain(adapter, image, "attention_rollout", {"head_fusion": "mean"})
    np.testing.assert_allclose(rollout.extras["grid"], direct_rollout(attentions)[0, 1:].reshape(4, 4),
                               rtol=1e-4, atol=1e-6)
    assert hf_vit.config._attn_implementation == "sdpa"

    for target in (0, 2):
        out = _hf_eager_attentions(hf_vit, x)
        grads = torch.autograd.grad(out.logits[0, target], out.attentions)
        r = torch.eye(17, dtype=torch.float64)
        for a, g in zip(out.attentions, grads, strict=True):
            cam = (g[0].double() * a[0].detach().double()).clamp(min=0).mean(dim=0)
            r = r + cam @ r
        e = explain(adapter, image, "transformer_attribution", target=target)
        assert e.target == target and e.output_kind == "logit"
        np.testing.assert_allclose(e.extras["grid"], r[0, 1:].reshape(4, 4).numpy(), rtol=1e-4, atol=1e-7)
    assert np.ptp(e.extras["grid"]) > 0


def test_legrad_equals_torchcam(tv_vit):
    from torchcam.methods import LeGrad

    adapter = TorchAdapter(tv_vit, SPEC, device="cpu")
    image = _image(2)
    for blocks in (0, 2):
        layers = list(tv_vit.encoder.layers)[-blocks:] if blocks else list(tv_vit.encoder.layers)
        for target in (0, 1):
            with LeGrad(tv_vit, layers) as extractor:
                scores = tv_vit(_tensor(image))
                want = extractor(target, scores)[0][0].detach().numpy()
            e = explain(adapter, image, "legrad", {"blocks": blocks}, target=target)
            np.testing.assert_allclose(e.extras["grid"], want, rtol=1e-4, atol=1e-6)
            assert np.ptp(want) > 0.5  # min-max normalised, not a constant map
    with pytest.raises(InputError, match="blocks"):
        explain(adapter, image, "legrad", {"blocks": 4})
    # after torchcam and our hooks are gone, the model predicts as before
    with torch.no_grad():
        np.testing.assert_allclose(adapter.predict(image[None].astype(np.float32) / 255),
                                   torch.softmax(tv_vit(_tensor(image)), 1).numpy(), rtol=1e-5)


def test_every_transformer_method_runs_on_timm_hf_and_torchvision(timm_vit, hf_vit, tv_vit):
    for model in (timm_vit, hf_vit, tv_vit):
        adapter = TorchAdapter(model, SPEC, device="cpu")
        offered = {e.name for e in available_for(adapter)}
        assert set(METHODS) <= offered
        for method in METHODS:
            e = explain(adapter, _image(), method)
            assert e.attribution.shape == (32, 32) and np.isfinite(e.attribution).all()
            assert e.attribution.min() >= 0 and e.attribution.max() > 0
            assert e.target == int(np.argmax(e.probabilities))


def test_class_specific_methods_differ_by_class_and_rollout_does_not(hf_vit):
    adapter = TorchAdapter(hf_vit, SPEC, device="cpu")
    for method in METHODS:
        grids = [e.extras["grid"] for e in explain_classes(adapter, _image(3), method, classes="all")]
        same = all(np.allclose(grids[0], g) for g in grids[1:])
        assert same == (method == "attention_rollout"), method


def test_not_offered_to_a_cnn(digits_adapter, digit_image):
    offered = {e.name for e in available_for(digits_adapter)}
    assert not set(METHODS) & offered and "grad_cam" in offered
    for method in METHODS:
        with pytest.raises(UnsupportedError, match="attention"):
            explain(digits_adapter, digit_image, method)


def test_a_transformer_whose_head_pools_its_tokens_gets_legrad_only():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=3,
                              depth=2, class_token=False, global_pool="avg").eval()
    adapter = TorchAdapter(model, SPEC, device="cpu")
    offered = {e.name for e in available_for(adapter)}
    assert "legrad" in offered and not {"attention_rollout", "transformer_attribution"} & offered
    for method in ("attention_rollout", "transformer_attribution"):
        with pytest.raises(UnsupportedError, match="class token"):
            explain(adapter, _image(), method)
    assert explain(adapter, _image(), "legrad").attribution.max() > 0


def test_runs_in_the_model_worker_on_a_saved_vit(tmp_path, timm_vit):
    """A pickled timm ViT loads only in the confined worker; the whole explanation
    (capture included) runs there and matches the in-process result."""
    from xai_core.loading.models import open_model
    from xai_core.worker.client import RemoteModel

    path = tmp_path / "vit_tiny.pt"
    torch.save(timm_vit, path)
    path.with_suffix(".json").write_text(json.dumps({"size": [32, 32], "mean": [0.5] * 3, "std": [0.5] * 3,
                                                     "labels": ["a", "b", "c"]}))
    remote = open_model(path)
    local = TorchAdapter(timm_vit, SPEC, device="cpu", labels=["a", "b", "c"])
    assert isinstance(remote, RemoteModel)
    assert set(METHODS) <= {e.name for e in available_for(remote)}
    image = _image(4)
    for method in METHODS:
        far, near = explain(remote, image, method, target=1), explain(local, image, method, target=1)
        assert far.target_label == "b"
        np.testing.assert_allclose(far.extras["grid"], near.extras["grid"], rtol=1e-4, atol=1e-6)
    grids = explain_classes(remote, image, "transformer_attribution", classes="all")
    assert [e.target for e in grids] == [0, 1, 2]

    # a labelled set explained with every class, through the same worker
    from PIL import Image

    from xai_core.sets.data import open_set
    from xai_core.sets.explain import ExplainRequest, explain_selection
    from xai_core.sets.model import ModelRef

    for i, label in enumerate("abc"):
        (tmp_path / "set" / label).mkdir(parents=True)
        Image.fromarray(_image(10 + i)).save(tmp_path / "set" / label / f"{i}.png")
    model = ModelRef(str(path), device="cpu").open()
    data = open_set(tmp_path / "set", model.class_names)
    results = list(explain_selection(model, data, [0, 2], ExplainRequest("legrad", {}, 0, "all")))
    assert [r.index for r in results] == [0, 2]
    for r in results:
        assert r.attributions.shape == (3, 32, 32)
        want = explain(local, data.read(r.index), "legrad", target=2).attribution
        np.testing.assert_allclose(r.attributions[2], want, rtol=1e-4, atol=1e-5)


def test_metrics_run_on_transformer_maps(hf_vit):
    """Deletion, sensitivity and the randomisation check re-run the method through
    the generic paths (a randomised copy of the model has attention too)."""
    from xai_core.inputs.images import preprocess
    from xai_core.metrics.service import evaluate_image

    adapter = TorchAdapter(hf_vit, SPEC, device="cpu")
    image = _image(5)
    x = preprocess(image, adapter.spec)
    exp = explain(adapter, image, "transformer_attribution", target=1)
    results = evaluate_image(adapter, x, exp, ["deletion", "sensitivity", "randomization"],
                             {"sensitivity": {"samples": 2}, "randomization": {"steps": 2}})
    assert set(results) == {"deletion", "sensitivity", "randomization"}
    assert all(np.isfinite(r.value) for r in results.values())
    assert results["randomization"].value < 0.99  # randomised weights change the map


def test_weights_that_are_not_probabilities_are_not_read():
    """An attention whose captured weights are not a softmax (here rescaled after
    it) is not guessed at: the methods are not offered, and asked for, refuse."""
    import timm

    class Doubled(torch.nn.Module):
        def forward(self, a):
            return 2 * a

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, num_classes=3,
                              depth=2).eval()
    model.blocks[1].attn.attn_drop = Doubled()
    adapter = TorchAdapter(model, SPEC, device="cpu")
    assert Capability.ATTENTION not in adapter.capabilities
    with pytest.raises(UnsupportedError, match="not softmax probabilities"):
        adapter.attention_maps(_image()[None].astype(np.float32) / 255, None)
    with pytest.raises(UnsupportedError, match="attention"):
        explain(adapter, _image(), "attention_rollout")


def test_a_hugging_face_folder_through_the_worker_and_the_shipped_vit(tmp_path, hf_vit, digit_image):
    """A folder written by save_pretrained opens in the worker (no code run) and
    gives the in-process maps; the shipped digits ViT offers the three methods."""
    from xai_core.loading.models import open_model

    hf_vit.save_pretrained(tmp_path / "vit")
    remote = open_model(tmp_path / "vit")
    local = TorchAdapter(hf_vit, remote.spec, device="cpu")
    image = _image(6)
    for method in METHODS:
        np.testing.assert_allclose(explain(remote, image, method, target=2).extras["grid"],
                                   explain(local, image, method, target=2).extras["grid"], rtol=1e-4, atol=1e-6)
    shipped = open_model("digits_vit", device="cpu")
    assert set(METHODS) <= {e.name for e in available_for(shipped)}
    assert explain(shipped, digit_image, "transformer_attribution").target_label == "7"
