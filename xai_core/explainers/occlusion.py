"""Occlusion (Zeiler & Fergus 2014, arXiv:1311.2901): slide a patch over the
image and record how much the class probability drops. Windows are built and
evaluated batch by batch, so memory stays flat for any number of windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Context, Explainer, RawAttribution, fill_image, param, register


@dataclass(frozen=True)
class OcclusionParams:
    window: int = param(0, low=0, high=1024, help="patch side in model-input pixels (0: 1/8 of the input)")
    stride: int = param(0, low=0, high=1024, help="step between patches (0: half the window)")
    fill: str = param("gray", choices=("gray", "black", "mean", "blur"), help="what the patch shows")


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Start offsets covering [0, size) including the last edge (as captum does)."""
    starts = list(range(0, max(size - window, 0) + 1, stride))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


@register
class Occlusion(Explainer):
    name = "occlusion"
    label = "Occlusion"
    description = "Hide one patch at a time and measure the drop in the class probability."
    paper = "Zeiler & Fergus, 2014, Visualizing and Understanding Convolutional Networks"
    Params = OcclusionParams
    slow = True

    def run(self, ctx: Context, params: OcclusionParams) -> RawAttribution:
        x = ctx.image
        h, w = x.shape[:2]
        win = params.window or max(2, min(h, w) // 8)
        win = min(win, h, w)
        stride = params.stride or max(1, win // 2)
        fill = fill_image(x, params.fill)
        boxes = [(r, c) for r in window_positions(h, win, stride) for c in window_positions(w, win, stride)]
        base = float(ctx.probs[ctx.target])
        total = np.zeros((h, w), np.float64)
        count = np.zeros((h, w), np.float64)
        for start, stop in ctx.chunks(len(boxes)):
            batch = np.repeat(x[None], stop - start, axis=0)
            for i, (r, c) in enumerate(boxes[start:stop]):
                batch[i, r : r + win, c : c + win] = fill[r : r + win, c : c + win]
            drops = base - ctx.predict(batch)[:, ctx.target]
            for (r, c), d in zip(boxes[start:stop], drops, strict=True):
                total[r : r + win, c : c + win] += d
                count[r : r + win, c : c + win] += 1
            ctx.progress(stop / len(boxes), f"{stop}/{len(boxes)} patches")
        attribution = (total / np.maximum(count, 1)).astype(np.float32)
        return RawAttribution(attribution, extras={"window": win, "stride": stride, "patches": len(boxes)})
