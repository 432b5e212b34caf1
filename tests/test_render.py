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
