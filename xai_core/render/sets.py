"""Pictures of a labelled set's explanations.

Images go through the core's item x class grid (:func:`xai_core.render.class_grid`):
each item's row starts with the model's input, then one map per explained class,
titled with its probability, the true class green and a wrong prediction red.
Rows get the per-feature bar grid (one row per item, one column per class, one
x scale). :func:`class_mean_maps` draws a :class:`~xai_core.sets.explain.SetSummary`.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from xai_core.render import maps as render
from xai_core.render.grid import class_grid
from xai_core.types import Explanation, Prediction

POSITIVE, NEGATIVE = "#d62728", "#1f77b4"


def set_grid(items, class_names: list[str], *, feature_names: list[str] | None = None, method: str = "",
             top_features: int = 8, scale: str = "shared") -> np.ndarray:
    """The grid of explained items (:class:`~xai_core.sets.model.ItemExplanation`), RGB uint8.
    Images: ``scale`` is the colour scale of the maps, ``shared`` (the 99.9th percentile
    of |value| over every map, as shap's image_plot), ``row`` or ``cell``
    (:func:`xai_core.render.grid.grid_scales`), stated in the grid's legend."""
    items = list(items)
    if not items:
        raise ValueError("the grid needs at least one item")
    if items[0].attributions.ndim == 3:
        rows = [(_picture(it.input), _explanations(it, class_names, method)) for it in items]
        names = [f"{it.name}: true {_name(class_names, it.label)}, pred {class_names[it.prediction]}"[:60]
                 for it in items]
        marks = [(it.label, it.prediction) for it in items]
        return class_grid(rows, names=names, marks=marks, scale=scale)
    return _bar_grid(items, class_names, feature_names, method, top_features)


def _name(class_names: list[str], index: int) -> str:
    return class_names[index] if index >= 0 else "?"


def _picture(x) -> np.ndarray:
    """The model input (H x W x C in [0, 1]) as RGB uint8, at least 96 pixels a side."""
    a = np.clip(np.asarray(x, np.float32), 0, 1)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    pic = (a[..., :3] * 255).round().astype(np.uint8)
    h, w = pic.shape[:2]
    if max(h, w) < 96:
        k = -(-96 // max(h, w))
        pic = np.asarray(Image.fromarray(pic).resize((w * k, h * k), Image.NEAREST))
    return pic


def _explanations(item, class_names: list[str], method: str) -> list[Explanation]:
    probs = np.asarray(item.probabilities, np.float32)
    return [
        Explanation(method=method, target=int(c), target_label=class_names[c], attribution=np.asarray(att, np.float32),
                    predictions=[Prediction(int(c), class_names[c], float(probs[c]))], params={}, seed=0,
                    model_evals=0, elapsed_s=0.0, signed=bool(item.signed), probabilities=probs)
        for c, att in zip(item.classes, item.attributions, strict=True)
    ]


def _bar_grid(items, class_names, feature_names, method: str, top_features: int) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    top = max(float(np.max(np.abs(it.attributions))) for it in items) or 1.0
    ncols = max(len(it.classes) for it in items)
    fig = Figure(figsize=(2.6 * ncols + 0.6, 1.9 * len(items) + 0.7), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(items), ncols, squeeze=False)
    for r, it in enumerate(items):
        wrong = it.label >= 0 and it.prediction != it.label
        axes[r][0].set_ylabel(f"{it.name}\ntrue {_name(class_names, it.label)}, pred {class_names[it.prediction]}",
                              fontsize=8, color="#b00020" if wrong else "black")
        for j, (c, att) in enumerate(zip(it.classes, it.attributions, strict=True)):
            ax = axes[r][j]
            order = np.argsort(-np.abs(att), kind="stable")[:top_features][::-1]
            names = feature_names or [f"x{k}" for k in range(len(att))]
            ax.barh(range(len(order)), att[order], color=[POSITIVE if att[k] >= 0 else NEGATIVE for k in order])
            ax.set_yticks(range(len(order)), [names[k][:18] for k in order], fontsize=8)
            ax.set_xlim(-top * 1.05, top * 1.05)
            ax.axvline(0, color="0.3", lw=0.5)
            ax.tick_params(axis="x", labelsize=8)
            color = "#1b7f3b" if c == it.label else ("#b00020" if c == it.prediction and wrong else "black")
            ax.set_title(f"{class_names[c]}: {float(it.probabilities[c]):.3f}", fontsize=8, color=color)
        for ax in axes[r][len(it.classes):]:
            ax.axis("off")
    fig.suptitle(f"{method}: red pushes towards the column's class, blue away from it (one scale)", fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def class_mean_maps(summary, class_names: list[str], cell_inches: float | None = None) -> np.ndarray:
    """The class-mean maps of a :class:`~xai_core.sets.explain.SetSummary` (images):
    one panel per explained class, the mean signed map over the items explained
    for it, on one colour scale (red raises the class's score, blue lowers it)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    from xai_core.render.grid import DPI, FONT_PT, PAGE_PX, wrap_title

    cs = summary.classes
    if cell_inches is None:  # as the grid: a row of panels fits the page's column, labels 9 pt
        cell_inches = max(0.7, min(1.35, PAGE_PX / DPI / max(1, len(cs))))
    maps = [summary.mean_signed(c) for c in cs]
    top = max(float(np.percentile(np.abs(m), 99.5)) for m in maps) if maps else 1.0
    norm = Normalize(-(top or 1.0), top or 1.0)
    fig, axes = plt.subplots(1, max(1, len(cs)), figsize=(cell_inches * max(1, len(cs)), cell_inches * 1.2 + 0.7),
                             squeeze=False)
    for ax, c, m in zip(axes[0], cs, maps, strict=False):
        ax.imshow(m, cmap=render.DIVERGING, norm=norm)
        ax.set_title(f"{class_names[c]} (n={int(summary.counts[c])})", fontsize=FONT_PT)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(wrap_title("class-mean maps: mean attribution for each class over the explained items",
                            cell_inches * max(1, len(cs))), fontsize=FONT_PT)
    fig.tight_layout(rect=(0, 0.12, 1, 0.92))
    cax = fig.add_axes([0.3, 0.06, 0.4, 0.03])
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=render.DIVERGING), cax=cax, orientation="horizontal")
    cax.tick_params(labelsize=FONT_PT)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB"))
