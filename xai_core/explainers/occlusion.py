"""Occlusion (Zeiler & Fergus 2014, arXiv:1311.2901): slide a patch over the
image and record how much the class probability drops. Windows are built and
evaluated batch by batch, so memory stays flat for any number of windows.

A model with several inputs is occluded as captum's ``Occlusion`` does a tuple of
inputs: the windows slide over each input in turn (a feature vector's cover
``feature_window`` features) while the other inputs stay as given."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xai_core.explainers._hidden import hidden_values, replicate, vector_background
from xai_core.explainers.base import Context, Drawing, Explainer, RawAttribution, fill_image, param, register


@dataclass(frozen=True)
class OcclusionParams:
    window: int = param(0, low=0, high=1024, help="patch side in model-input pixels (0: 1/8 of the input)")
    stride: int = param(0, low=0, high=1024, help="step between patches (0: half the window)")
    fill: str = param("gray", choices=("gray", "black", "mean", "blur"), help="what the patch shows")
    feature_window: int = param(1, low=1, high=100000, for_kinds=("vector",),
                                help="feature-vector inputs: features hidden together (window and stride)")
    background_file: str = vector_background()


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Start offsets covering [0, size) including the last edge (as captum does)."""
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


def windows(x: np.ndarray, kind: str, params: OcclusionParams) -> tuple[list[tuple[slice, ...]], int, int]:
    """One input's occluded windows (index tuples into it: rows x columns of an
    image, all channels; a run of features of a vector), the window and the stride."""
    if kind != "image":
        win = min(params.feature_window, x.shape[0])
        return [(slice(s, s + win),) for s in window_positions(x.shape[0], win, win)], win, win
    h, w = x.shape[:2]
    win = params.window or max(2, min(h, w) // 8)
    win = min(win, h, w)
    stride = params.stride or max(1, win // 2)
    return [(slice(r, r + win), slice(c, c + win))
            for r in window_positions(h, win, stride) for c in window_positions(w, win, stride)], win, stride


@register
class Occlusion(Explainer):
    name = "occlusion"
    label = "Occlusion"
    description = "Hide one patch at a time and measure the drop in the class probability."
    paper = "Zeiler & Fergus, 2014, Visualizing and Understanding Convolutional Networks"
    Params = OcclusionParams
    drawing = Drawing(units="output")
    slow = True
    several_inputs = True

    def run(self, ctx: Context, params: OcclusionParams) -> RawAttribution:
        """Windows slide over each input in turn while the other inputs stay as given
        (captum's Occlusion on a tuple of inputs); a pixel's or feature's value is the
        mean probability drop over the windows that hide it."""
        fills = hidden_values(ctx, lambda x: fill_image(x, params.fill), params.background_file)
        plan = [windows(x, k, params) for x, k in zip(ctx.inputs, ctx.kinds, strict=True)]
        jobs = [(i, box) for i, (boxes, _, _) in enumerate(plan) for box in boxes]
        base = float(ctx.probs[ctx.target])
        totals = [np.zeros(x.shape[:2] if k == "image" else x.shape, np.float64)
                  for x, k in zip(ctx.inputs, ctx.kinds, strict=True)]
        counts = [np.zeros_like(t) for t in totals]
        for start, stop in ctx.chunks(len(jobs)):
            parts = replicate(ctx, stop - start)
            for j, (i, box) in enumerate(jobs[start:stop]):
                parts[i][(j, *box)] = fills[i][box]
            drops = base - ctx.predict(ctx.adapter.join(parts))[:, ctx.target]
            for (i, box), d in zip(jobs[start:stop], drops, strict=True):
                totals[i][box] += d
                counts[i][box] += 1
            ctx.progress(stop / len(jobs), f"{stop}/{len(jobs)} patches")
        maps = [(t / np.maximum(c, 1)).astype(np.float32) for t, c in zip(totals, counts, strict=True)]
        _, win, stride = next((p for p, k in zip(plan, ctx.kinds, strict=True) if k == "image"), plan[0])
        extras = {"window": win, "stride": stride, "patches": len(jobs)}
        return RawAttribution(maps[0], extras=extras, attributions=maps if len(maps) > 1 else None)
