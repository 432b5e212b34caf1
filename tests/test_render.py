"""Overlays line up with the photo and say red = for, blue = against."""

from __future__ import annotations

import numpy as np

from xai_core import render
from xai_core.types import Explanation


def make(att, method="integrated_gradients", signed=True, extras=None):
    return Explanation(method, 0, "x", att.astype(np.float32), [], {}, 0, 1, 0.1, signed=signed,
                       extras=extras or {})


def test_signed_overlay_colors_and_size():
    att = np.zeros((10, 10), np.float32)
    att[:, :5] = 1.0
    att[:, 5:] = -1.0
    image = np.full((100, 300, 3), 128, np.uint8)
    out = render.overlay(image, make(att))
    assert out.shape == (100, 300, 3)
    left, right = out[50, 20].astype(int), out[50, 280].astype(int)
    assert left[0] > left[2] + 40, "positive must be red"
    assert right[2] > right[0] + 40, "negative must be blue"


def test_near_zero_leaves_the_photo_visible():
    att = np.zeros((10, 10), np.float32)
    att[0, 0] = 1.0
    image = np.full((50, 50, 3), 90, np.uint8)
    out = render.overlay(image, make(att))
    assert np.abs(out[40, 40].astype(int) - 90).max() <= 2


def test_grad_cam_uses_sequential_map_and_alpha():
    att = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    image = np.zeros((40, 40, 3), np.uint8)
    faint = render.overlay(image, make(att, "grad_cam", signed=False), alpha=0.2)
    strong = render.overlay(image, make(att, "grad_cam", signed=False), alpha=0.8)
    assert strong.mean() > faint.mean() * 2


def test_lime_boundaries_are_drawn():
    seg = np.zeros((20, 20), np.int32)
    seg[:, 10:] = 1
    att = np.where(seg == 1, 0.5, -0.5).astype(np.float32)
    e = make(att, "lime", extras={"segments": seg, "segment_weights": np.array([-0.5, 0.5], np.float32)})
    out = render.overlay(np.zeros((60, 60, 3), np.uint8), e)
    yellow = (out[..., 0] == 255) & (out[..., 1] == 221) & (out[..., 2] == 0)
    assert yellow[:, 25:35].any() and not yellow[:, :20].any()


def test_shared_scale_and_colorbar():
    a, b = np.full((4, 4), 0.1, np.float32), np.full((4, 4), 2.0, np.float32)
    scale = render.Scale.shared([(a, True), (b, True)])
    assert scale.vmax == 2.0 and scale.vmin == -2.0
    bar = render.colorbar(scale, label="test")
    assert bar.ndim == 3 and bar.shape[2] == 3 and bar.shape[1] > bar.shape[0]
    png = render.to_png(bar)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_colorbar_ticks_are_short_and_distinct_for_tiny_and_ordinary_ranges():
    for lo, hi, signed, expected in [
        (-2.5e-5, 2.5e-5, True, ["-2.5e-5", "-1.3e-5", "0", "1.3e-5", "2.5e-5"]),
        (0.0, 0.187, False, ["0", "0.047", "0.093", "0.14", "0.187"]),
        (-3.2, 3.2, True, ["-3.2", "-1.6", "0", "1.6", "3.2"]),
        (0.0, 1500.0, False, ["0", "375", "750", "1125", "1500"]),
    ]:
        labels = render.tick_labels(render.colorbar_ticks(render.Scale(lo, hi, signed)))
        assert labels == expected
        assert len(set(labels)) == len(labels) and max(map(len, labels)) <= 7


def test_colorbar_follows_the_theme():
    scale = render.Scale(-1e-4, 1e-4, True)
    light = render.colorbar(scale, label="x")
    dark = render.colorbar(scale, label="x", text_color="#fafafa", background="#0e1117")
    assert light[2, 2].tolist() == [255, 255, 255] and dark[2, 2].tolist() == [14, 17, 23]
    assert light.shape == dark.shape and light.shape[1] == 720  # drawn at twice the shown size: sharp text


def test_display_options_change_the_picture_never_the_numbers():
    rng = np.random.default_rng(0)
    att = rng.normal(size=(32, 32)).astype(np.float32)  # speckle, like IG on a photo
    e = make(att.copy())
    shown = render.Display(smooth=2.0, absolute=True).apply(e)
    assert np.array_equal(e.attribution, att) and e.signed  # the result itself is untouched
    assert not shown.signed and shown.attribution.min() >= 0
    assert shown.attribution.std() < np.abs(att).std() / 2  # smoothed
    assert render.Display().apply(e) is e
    cam = make(np.abs(att), "grad_cam", signed=False)
    assert render.Display(smooth=3.0, absolute=True).apply(cam) is cam  # not a pixel-level map
    clipped = render.Display(clip=90.0)
    assert render.Scale.of(att, True, clipped.percentile_for(e)).vmax < render.Scale.of(att, True).vmax


def test_shared_scale_keeps_every_map_visible():
    """IG and expected gradients (both in output units) share a range; Grad-CAM in [0, 1]
    keeps its own, so the 1e-5-sized gradient maps are not washed out by it."""
    rng = np.random.default_rng(1)
    ig = make(rng.normal(scale=1e-5, size=(16, 16)))
    eg = make(rng.normal(scale=3e-5, size=(16, 16)), "shap_gradient")
    cam = make(rng.uniform(size=(16, 16)), "grad_cam", signed=False)
    s_ig, s_eg, s_cam = render.scales_for([ig, eg, cam], shared=True)
    assert s_ig == s_eg and s_ig.vmax < 1e-3
    assert s_cam == render.Scale.of(cam.attribution, False)
    for e, s in ((ig, s_ig), (eg, s_eg), (cam, s_cam)):
        assert render.heatmap(e.attribution, s).std() > 10  # visible colour variation
    assert render.scales_for([ig, eg], shared=False) == [render.Scale.of(ig.attribution, True),
                                                         render.Scale.of(eg.attribution, True)]


def test_grad_cam_without_relu_is_signed_and_diverging():
    from xai_core.loading.models import open_model
    from xai_core.service import explain

    adapter = open_model("digits_cnn")
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    with_relu = explain(adapter, image, "grad_cam", {"rectify": "relu"})
    without = explain(adapter, image, "grad_cam", {"rectify": "none"})
    assert not with_relu.signed and render.default_cmap(with_relu) == render.SEQUENTIAL
    assert without.signed and render.default_cmap(without) == render.DIVERGING


def test_small_pictures_are_enlarged_by_a_whole_factor():
    digit = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    big = render.enlarge_small(digit)
    assert big.shape == (256, 256, 3) and np.array_equal(big[::8, ::8], digit)
    photo = np.zeros((300, 451, 3), np.uint8)
    assert render.enlarge_small(photo) is photo
