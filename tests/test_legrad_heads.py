"""LeGrad on the heads beyond ViT's: a distilled DeiT (two heads, class and
distillation tokens), BEiT (mean pooling) and DINOv2 with and without registers
(class token beside the patches' mean), Hugging Face models built locally and timm's distilled DeiT. The
reference is computed from the model's own outputs (transformers'
``output_attentions`` / ``output_hidden_states``; for timm, the blocks and
attention probabilities recomputed with timm's own modules): each block's score
through the model's head, its gradient with respect to that block's attention
probabilities, positive part averaged over heads and queries, the patch keys
averaged over blocks and min-max normalised (torchcam's LeGrad, which reads
torchvision models only)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from xai_core.adapters.torch import TorchAdapter  # noqa: E402
from xai_core.inputs.images import preprocess  # noqa: E402
from xai_core.service import explain  # noqa: E402
from xai_core.types import ImageSpec  # noqa: E402

SPEC = ImageSpec((32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
IMAGE = (np.random.default_rng(3).random((32, 32, 3)) * 255).astype(np.uint8)
SMALL = dict(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=32, num_labels=3)


def _pixels() -> torch.Tensor:
    return (torch.from_numpy(preprocess(IMAGE, SPEC)).permute(2, 0, 1)[None] - 0.5) / 0.5


def _legrad(attentions, blocks, project, prefix: int) -> np.ndarray:
    cells = []
    for attention, tokens in zip(attentions, blocks, strict=True):
        score = project(tokens)
        (g,) = torch.autograd.grad(score[0, TARGET], attention, retain_graph=True)
        cells.append(g[0].clamp(min=0).mean(dim=(0, 1))[prefix:].reshape(4, 4).double().numpy())
    cells = np.mean(cells, axis=0)
    cells = cells - cells.min()
    return cells / (cells.max() + 1e-8)


TARGET = 1


def _hf(name: str):
    import transformers as tf

    torch.manual_seed(0)
    if name == "deit_teacher":
        return tf.DeiTForImageClassificationWithTeacher(tf.DeiTConfig(**SMALL)), 2
    if name == "beit":
        return tf.BeitForImageClassification(tf.BeitConfig(**SMALL, use_mean_pooling=True)), 1
    if name == "dinov2_registers":
        return tf.Dinov2WithRegistersForImageClassification(
            tf.Dinov2WithRegistersConfig(**SMALL, num_register_tokens=4)), 5
    return tf.Dinov2ForImageClassification(tf.Dinov2Config(**SMALL)), 1


def _hf_head(model, name: str):
    if name == "deit_teacher":
        def project(z):
            pooled = model.deit.layernorm(z.mean(dim=1))
            return (model.cls_classifier(pooled) + model.distillation_classifier(pooled)) / 2
    elif name == "beit":
        def project(z):
            return model.classifier(model.beit.pooler.layernorm(z.mean(dim=1)))
    elif name == "dinov2_registers":  # the registers (tokens 1-4) are not in the patches' mean
        def project(z):
            seq = model.dinov2_with_registers.layernorm(z)
            return model.classifier(torch.cat([seq[:, 0], seq[:, 5:].mean(dim=1)], dim=1))
    else:
        def project(z):
            seq = model.dinov2.layernorm(z)
            return model.classifier(torch.cat([seq[:, 0], seq[:, 1:].mean(dim=1)], dim=1))
    return project


@pytest.mark.parametrize("name", ["deit_teacher", "beit", "dinov2", "dinov2_registers"])
def test_legrad_on_hugging_face_heads_equals_the_models_own_outputs(name):
    model, prefix = _hf(name)
    model.set_attn_implementation("eager")
    model.eval()
    adapter = TorchAdapter(model, SPEC, None, name=name, kind="module", output_kind="logit")
    logits = model.register_forward_hook(lambda _m, _i, out: getattr(out, "logits", out))  # as the loader does
    got = explain(adapter, IMAGE, "legrad", {}, target=TARGET, seed=0)
    logits.remove()
    out = model(pixel_values=_pixels(), output_attentions=True, output_hidden_states=True)
    want = _legrad(out.attentions, out.hidden_states[1:], _hf_head(model, name), prefix)
    np.testing.assert_allclose(got.extras["grid"], want, atol=1e-5)
    assert np.ptp(got.extras["grid"]) > 0.5  # a map, not a constant


def test_legrad_on_timm_distilled_deit_averages_its_two_heads():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False, img_size=32, patch_size=8,
                              depth=2, num_classes=3).eval()
    for block in model.blocks:
        block.attn.fused_attn = False
    adapter = TorchAdapter(model, SPEC, None, name="deit_distilled", kind="module", output_kind="logit")
    got = explain(adapter, IMAGE, "legrad", {}, target=TARGET, seed=0)
    attentions, blocks = [], []

    def keep(module, _inputs, output):
        attentions.append(output)

    handles = [b.attn.attn_drop.register_forward_hook(keep) for b in model.blocks]  # softmax probabilities
    handles += [b.register_forward_hook(lambda _m, _i, out: blocks.append(out)) for b in model.blocks]
    model(_pixels())
    for h in handles:
        h.remove()

    def project(z):
        pooled = model.fc_norm(model.norm(z.mean(dim=1)))
        return (model.head(pooled) + model.head_dist(pooled)) / 2

    np.testing.assert_allclose(got.extras["grid"], _legrad(attentions, blocks, project, 2), atol=1e-5)
    assert np.ptp(got.extras["grid"]) > 0.5
