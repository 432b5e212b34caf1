"""Layer layouts (docs/layer-layouts.md): every layer carries what its axes mean, the
CAMs fold transformer tokens and channels-last maps into C x h x w, and a layer
whose axes are not a map's is refused, never drawn.

Each case is checked against pytorch-grad-cam called the way its README shows
(GradCAM / GradCAMPlusPlus with a ``reshape_transform``) on the same model, layer
and target, comparing the rectified maps at layer resolution after both are
scaled the same way (``(cam - min) / (max - min)``): pytorch-grad-cam resizes with
OpenCV's bilinear rule where we use bicubic, so the layer-resolution maps are
what both compute.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")
pytest.importorskip("pytorch_grad_cam")

from pytorch_grad_cam import GradCAM, GradCAMPlusPlus  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from xai_core.adapters.layouts import LayerLayout, layout_from_probe  # noqa: E402
from xai_core.adapters.torch import TorchAdapter  # noqa: E402
from xai_core.loading.models import SpecOverrides, open_model  # noqa: E402
from xai_core.service import explain  # noqa: E402
from xai_core.types import ImageSpec, UnsupportedError  # noqa: E402

HALF = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


def _image(size: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((size, size, 3)) * 255).astype(np.uint8)


def _tensor(image: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None]
    return (x - 0.5) / 0.5


def _scaled(cam: np.ndarray) -> np.ndarray:
    """(cam - min) / (max - min): pytorch-grad-cam scales each layer's map with an
    epsilon of 1e-7 and then again across layers, which leaves the same result for
    maps far above 1e-7 and rescales tiny ones (a ConvNeXt layer before its layer
    scale): both sides are scaled this way before comparing."""
    cam = np.asarray(cam, np.float64) - float(np.min(cam))
    return cam / float(cam.max())


def _reference(cam_class, model, layer, image, target, reshape=None) -> np.ndarray:
    """pytorch-grad-cam's map at layer resolution (its target size left out)."""
    cam = cam_class(model=model, target_layers=[layer], reshape_transform=reshape)
    cam.get_target_width_height = lambda _x: None  # no resize: the map at the layer's grid
    return _scaled(cam(input_tensor=_tensor(image), targets=[ClassifierOutputTarget(target)])[0])


def _vit(fused: bool = True):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                              num_classes=3).eval()
    if not fused:
        for block in model.blocks:
            block.attn.fused_attn = False
    return model


def _vit_tokens(t: torch.Tensor, h: int = 4, w: int = 4) -> torch.Tensor:
    """pytorch-grad-cam's documented reshape_transform for a ViT with a class token."""
    result = t[:, 1:, :].reshape(t.size(0), h, w, t.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def vit():
    model = _vit()
    return model, TorchAdapter(model, ImageSpec(size=(32, 32), **HALF), name="vit", device="cpu")


def test_probe_layouts_read_which_axes_grow_with_the_image():
    def probe(base, taller, wider):
        return layout_from_probe(base, taller, wider, (32, 32), (2, 1))

    assert probe((2, 64, 8, 8), (1, 64, 16, 8), (1, 64, 8, 16)).kind == "channels_first"
    assert probe((2, 64, 10, 10), (1, 64, 18, 10), (1, 64, 10, 18)).kind == "channels_first"  # "same" padding
    assert probe((2, 8, 8, 64), (1, 16, 8, 64), (1, 8, 16, 64)).kind == "channels_last"
    tokens = probe((2, 16, 192), (1, 32, 192), (1, 32, 192))
    assert (tokens.kind, tokens.grid, tokens.prefix) == ("tokens", (4, 4), 0)
    assert "place" in probe((2, 17, 192), (1, 33, 192), (1, 33, 192)).reason  # 1 extra token: where?
    assert "attention" in probe((2, 3, 17, 17), (1, 3, 33, 33), (1, 3, 33, 33)).reason
    assert "windows" in probe((8, 16, 24), (4, 16, 24), (4, 16, 24)).reason
    # folding: tokens lose their class token and take their grid, row by row
    layout = LayerLayout("tokens", (2, 3), 4, prefix=1)
    raw = np.arange(1 * 7 * 4, dtype=np.float32).reshape(1, 7, 4)
    folded = layout.fold(raw)
    assert folded.shape == (1, 4, 2, 3)
    assert folded[0, 1, 1, 2] == raw[0, 1 + 1 * 3 + 2, 1]
    assert layout.raw_index(1 * 6 + 1 * 3 + 2) == (1 + 5, 1)


def test_vit_layers_are_tokens_and_grad_cam_equals_pytorch_grad_cam(vit):
    model, adapter = vit
    infos = {info.name: info for info in adapter.layers()}
    norm1 = infos["blocks.1.norm1"].layout
    assert (norm1.kind, norm1.grid, norm1.prefix, norm1.channels) == ("tokens", (4, 4), 1, 192)
    assert infos["blocks.1.norm1"].output_shape == (192, 4, 4)
    assert infos["patch_embed.proj"].layout.kind == "channels_first"
    default, why = adapter.default_cam_choice()
    assert default == "blocks.1.norm1" and "pytorch-grad-cam" in why
    image = _image(32)
    for method, ref_class in (("grad_cam", GradCAM), ("grad_cam_plus_plus", GradCAMPlusPlus)):
        got = explain(adapter, image, method, {}, target=1, seed=0)
        assert got.layer == "blocks.1.norm1"
        want = _reference(ref_class, model, model.blocks[-1].norm1, image, 1, _vit_tokens)
        assert np.abs(_scaled(got.extras["cam"]) - want).max() < 1e-4, method


def test_attention_weights_are_refused_not_drawn():
    model = _vit(fused=False)
    adapter = TorchAdapter(model, ImageSpec(size=(32, 32), **HALF), name="vit", device="cpu")
    info = next(i for i in adapter.layers() if i.name == "blocks.0.attn.attn_drop")
    assert not info.spatial and "attention weights" in info.layout.reason
    with pytest.raises(UnsupportedError, match=r"layer 'blocks.0.attn.attn_drop' gives attention weights"):
        explain(adapter, _image(32), "grad_cam", {}, layer="blocks.0.attn.attn_drop", seed=0)
    with pytest.raises(UnsupportedError, match="attention weights"):
        explain(adapter, _image(32), "integrated_gradients", {"steps": 4}, layer="blocks.0.attn.attn_drop", seed=0)


def test_vit_pt2_in_the_worker_gets_token_maps_not_the_patch_embedding(tmp_path):
    model = _vit()
    example = torch.rand(2, 3, 32, 32)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", max=64)},))
    path = tmp_path / "vit.pt2"
    torch.export.save(program, str(path))
    remote = open_model(path, overrides=SpecOverrides(size=(32, 32), **HALF))
    assert type(remote).__name__ == "RemoteModel"
    layouts = {info.name: info.layout for info in remote.layers()}
    assert layouts["blocks.1.norm1"].kind == "tokens" and layouts["blocks.1.norm1"].prefix == 1
    assert remote.default_cam_layer() == "blocks.1.norm1"  # old main: patch_embed.proj, the only N x C x H x W
    image = _image(32, seed=1)
    got = explain(remote, image, "grad_cam", {}, target=2, seed=0)
    want = _reference(GradCAM, model, model.blocks[-1].norm1, image, 2, _vit_tokens)
    assert got.layer == "blocks.1.norm1"
    assert np.abs(_scaled(got.extras["cam"]) - want).max() < 1e-4


def _convnext():
    torch.manual_seed(0)
    return timm.create_model("convnext_atto", pretrained=False, depths=(1, 1, 1, 1), dims=(8, 16, 24, 32), conv_mlp=False,
                             num_classes=3).eval()


def test_convnext_channels_last_layer_and_default_after_layer_scale():
    model = _convnext()
    adapter = TorchAdapter(model, ImageSpec(size=(64, 64), **HALF), name="convnext", device="cpu")
    infos = {info.name: info for info in adapter.layers()}
    norm = infos["stages.1.blocks.0.norm"]
    assert (norm.layout.kind, norm.output_shape) == ("channels_last", (16, 8, 8))
    image = _image(64, seed=2)
    got = explain(adapter, image, "grad_cam", {}, layer="stages.1.blocks.0.norm", target=0, seed=0)
    want = _reference(GradCAM, model, model.stages[1].blocks[0].norm, image, 0, _channels_last)
    assert np.abs(_scaled(got.extras["cam"]) - want).max() < 1e-4
    # the default layer's map is taken after the layer scale (gamma = 1e-6 at init): the stage output
    default = adapter.default_cam_layer()
    assert default in ("stages", "stages.3", "stages.3.blocks", "stages.3.blocks.0"), default
    at_default = explain(adapter, image, "grad_cam", {}, target=0, seed=0)
    want = _reference(GradCAM, model, model.stages[-1], image, 0)
    assert np.abs(_scaled(at_default.extras["cam"]) - want).max() < 1e-4


def test_swin_stages_are_channels_last_maps_and_windows_are_refused():
    torch.manual_seed(0)
    model = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=64, window_size=4,
                              embed_dim=24, depths=(1, 1), num_heads=(1, 2), num_classes=3).eval()
    adapter = TorchAdapter(model, ImageSpec(size=(64, 64), **HALF), name="swin", device="cpu")
    infos = {info.name: info for info in adapter.layers()}
    assert infos["layers.1.blocks.0.norm1"].layout.kind == "channels_last"
    assert "windows" in infos["layers.1.blocks.0.attn"].layout.reason
    image = _image(64, seed=3)
    got = explain(adapter, image, "grad_cam", {}, layer="layers.1.blocks.0.norm1", target=1, seed=0)
    want = _reference(GradCAM, model, model.layers[-1].blocks[-1].norm1, image, 1, _channels_last)
    assert np.abs(_scaled(got.extras["cam"]) - want).max() < 1e-4
    with pytest.raises(UnsupportedError, match="windows"):
        explain(adapter, image, "grad_cam", {}, layer="layers.1.blocks.0.attn", target=1, seed=0)


def test_path_methods_at_a_token_layer_give_the_folded_map(vit):
    from captum.attr import LayerIntegratedGradients

    model, adapter = vit
    image = _image(32, seed=4)
    got = explain(adapter, image, "integrated_gradients", {"steps": 8, "baseline": "black",
                                                            "method": "riemann_middle"},
                  layer="blocks.0.norm1", target=0, seed=0)
    assert got.layer_attribution.shape == (192, 4, 4)
    x = _tensor(image)
    base = _tensor(np.zeros_like(image))
    lig = LayerIntegratedGradients(model, model.blocks[0].norm1)
    want = lig.attribute(x, baselines=base, target=0, n_steps=8, method="riemann_middle")[0].detach().numpy()
    want = want[1:].reshape(4, 4, 192).transpose(2, 0, 1)  # the class token dropped, the grid folded
    np.testing.assert_allclose(got.layer_attribution, want, rtol=1e-3, atol=1e-5)


def _keras_vit():
    """A Keras ViT from MultiHeadAttention: patches from a strided Conv2D, a Reshape to
    tokens, a class token (the patches' mean) concatenated first, one block, a pooled head."""
    from xai_core.adapters.keras import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(16, 8, strides=8, name="patch_embed")(inp)
    x = keras.layers.Reshape((16, 16), name="tokens")(x)
    cls = keras.layers.Reshape((1, 16), name="cls")(keras.layers.GlobalAveragePooling1D(name="mean")(x))
    x = keras.layers.Concatenate(axis=1, name="with_cls")([cls, x])
    y = keras.layers.LayerNormalization(name="norm1")(x)
    y = keras.layers.MultiHeadAttention(num_heads=2, key_dim=8, name="attn")(y, y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.LayerNormalization(name="norm")(x)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling1D(name="pool")(x))
    return keras.Model(inp, out, name="keras_vit")


def test_keras_vit_token_layers_are_maps_and_grad_cam_equals_a_gradient_tape():
    """A Keras ViT: its token outputs are folded to their grid as the graph lays them
    (a Reshape of the 4 x 4 patch map, the class token concatenated first), never
    drawn on its patch embedding (old main: Grad-CAM quietly ran there); Grad-CAM at
    a block's norm = the map computed directly with tf.GradientTape (rtol 1e-4)."""
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    from xai_core.adapters.keras import KerasAdapter, keras

    model = _keras_vit()
    adapter = KerasAdapter(model, ImageSpec(size=(32, 32), **HALF))
    layouts = {info.name: info.layout for info in adapter.layers()}
    assert layouts["patch_embed"].kind == "channels_last"
    assert (layouts["tokens"].grid, layouts["tokens"].prefix) == ((4, 4), 0)
    for name in ("with_cls", "norm1", "attn", "residual", "norm"):
        assert (layouts[name].kind, layouts[name].grid, layouts[name].prefix) == ("tokens", (4, 4), 1), name
    assert layouts["cls"].kind == "not_a_map"  # one token from a vector: no grid
    layer, why = adapter.default_cam_choice()
    assert layer == "norm" and "norm" in why
    image = _image(32)
    sub = keras.Model(model.input, [model.get_layer("norm1").output, model.output])
    x = tf.constant(((image.astype(np.float32) / 255 - 0.5) / 0.5)[None])
    for target in (0, 2):
        got = explain(adapter, image, "grad_cam", {}, layer="norm1", target=target, seed=0)
        with tf.GradientTape() as tape:
            acts, out = sub(x)
            score = out[:, target]
        grads = tape.gradient(score, acts).numpy()[0, 1:].reshape(4, 4, 16).transpose(2, 0, 1)
        maps = acts.numpy()[0, 1:].reshape(4, 4, 16).transpose(2, 0, 1)
        want = np.maximum(np.tensordot(grads.mean(axis=(1, 2)), maps, axes=(0, 0)), 0)
        np.testing.assert_allclose(got.extras["cam"], want, rtol=1e-4, atol=1e-6 * float(want.max()))
    with pytest.raises(UnsupportedError, match=r"^layer 'cls' gives tokens .* not a spatial map"):
        explain(adapter, image, "grad_cam", {}, layer="cls", seed=0)


def test_ablation_cam_at_a_token_layer_ablates_patch_tokens_in_place(vit):
    """Ablation-CAM writes ablated maps back into the layer: tokens go back with their class token."""
    model, adapter = vit
    got = explain(adapter, _image(32, seed=5), "ablation_cam", {}, layer="blocks.0.norm1", target=0, seed=0)
    assert got.extras["cam"].shape == (4, 4) and np.isfinite(got.extras["cam"]).all()
    layout = adapter.layer_layout("blocks.0.norm1")
    raw = np.random.default_rng(0).random((17, 192)).astype(np.float32)
    np.testing.assert_array_equal(layout.unfold(layout.fold(raw[None]), raw), raw[None])
