"""A report-ready figure: the overlay with its colour bar (in the map's units), the
method, the class and its probability, as one PNG that can go into a report as it is.

The command line writes it with ``--figure`` (``<image>__<method>__figure.png``,
beside the bare overlay), the dashboard offers it as "Download figure". The
overlay inside is the one :func:`xai_core.render.overlay` draws (same colours,
same scale), so the figure and the bare PNG agree pixel for pixel.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from xai_core.render import maps as render
from xai_core.types import Explanation

# what one unit of a map means, by the units its method declares (Drawing.units); {score} is what the
# method explains (probability, logit or score)
UNIT_WORDS = {
    "output": "contribution to the {score}",
    "gradient": "gradient of the {score} per pixel",
    "activation": "weighted activation (relative)",
    "surrogate weight": "LIME weight ({score} per superpixel)",
}


def method_title(method: str) -> str:
    """The method's own label (``Grad-CAM``), else its registry name."""
    try:
        from xai_core.explainers import get_explainer

        return str(get_explainer(method).label)
    except Exception:  # noqa: BLE001 - a method of another input kind, or unknown: its name is enough
        return method


def units_label(explanation: Explanation) -> str:
    """The colour bar's label: what the values are, in which units."""
    group = render.drawing_of(explanation).units  # as the method declares its map's units
    words = UNIT_WORDS.get(group or "", "attribution ({score})")
    return words.format(score=explanation.explains)


def class_probability(explanation: Explanation) -> float | None:
    """The explained class's probability (None when the model gives no probabilities)."""
    if explanation.probabilities is not None and 0 <= explanation.target < len(explanation.probabilities):
        return float(explanation.probabilities[explanation.target])
    for p in explanation.predictions:
        if p.index == explanation.target and getattr(p, "kind", "probability") == "probability":
            return float(p.probability)
    return None


def figure_title(explanation: Explanation) -> str:
    """``Grad-CAM · class 'tabby' (281) · p = 0.537``."""
    parts = [method_title(explanation.method), f"class '{explanation.target_label}' ({explanation.target})"]
    probability = class_probability(explanation)
    if probability is not None:
        parts.append(f"p = {probability:.3f}")
    return " · ".join(parts)


def report_figure(image: np.ndarray, explanation: Explanation, *, alpha: float = 0.5,
                  scale: render.Scale | None = None, dpi: int = 150, max_inches: float = 6.0) -> np.ndarray:
    """The overlay of ``explanation`` on ``image`` (RGB uint8, H x W x 3, drawn at its
    own resolution) with a title (method, class, probability), a vertical colour bar
    labelled with the map's units (:func:`units_label`) and one line on how to read
    it; returns RGB uint8. ``scale`` defaults to the overlay's own (99.5th percentile)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    scale = scale or render.Scale.of(explanation.attribution, explanation.signed)
    cmap = render.default_cmap(explanation)
    shown = render.overlay(image, explanation, alpha=alpha, scale=scale, cmap=cmap)
    h, w = shown.shape[:2]
    side = max_inches * min(1.0, max(h, w) / 512) if max(h, w) < 512 else max_inches
    side = max(side, 3.2)  # a 32 x 32 digit still gets a readable figure
    img_w, img_h = (side, side * h / w) if w >= h else (side * w / h, side)
    fig = Figure(figsize=(img_w + 1.6, img_h + 0.85), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    total_w, total_h = img_w + 1.6, img_h + 0.85
    ax = fig.add_axes([0.15 / total_w, 0.45 / total_h, img_w / total_w, img_h / total_h])
    ax.imshow(shown, interpolation="nearest" if max(h, w) < 128 else "antialiased")
    ax.set_axis_off()
    ax.set_title(figure_title(explanation), fontsize=9, pad=6)
    cax = fig.add_axes([(0.3 + img_w) / total_w, 0.45 / total_h, 0.15 / total_w, img_h / total_h])
    bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=Normalize(scale.vmin, scale.vmax), cmap=cmap), cax=cax)
    ticks = render.colorbar_ticks(scale)
    bar.set_ticks(ticks, labels=render.tick_labels(ticks))
    bar.ax.tick_params(labelsize=7)
    bar.set_label(units_label(explanation), fontsize=8)
    fig.text(0.15 / total_w, 0.12 / total_h, render.colorbar_label(explanation), fontsize=7.5, color="#444444")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return np.asarray(Image.open(buf).convert("RGB"))
