"""The image x class grid: one row per image (its picture, then one overlay per
explained class), titled with the class name and its probability.

Colour scales are robust and stated: by default every map shares one scale whose
top is the 99.9th percentile of |value| over all the maps, as shap's
``image_plot`` draws its grids (``np.nanpercentile(np.abs(values), 99.9)``), so one
extreme pixel cannot wash every other cell out; ``scale="row"`` gives each row
(image) its own such scale, ``scale="cell"`` each map its own. The legend under
the grid says which, with the scale's value.

Sizes follow the class count: cells shrink so that a grid of 11 columns fits a
800-pixel column at 100 dpi, and every label is 9 pt (12.5 px at 100 dpi, shown at
its own size); titles are wrapped to their cell, so they never overlap.
"""

from __future__ import annotations

import textwrap

import numpy as np

from xai_core.render import maps as render
from xai_core.types import Explanation

SCALE_MODES = ("shared", "row", "cell")
GRID_PERCENTILE = 99.9  # shap's image_plot
DPI = 100
FONT_PT = 9.0  # 12.5 px at DPI
PAGE_PX = 800  # the width a grid is sized to fit (the main column of the dashboard in a 1280-px window: 820)


def robust_scale(maps: list[np.ndarray], signed: bool, percentile: float = GRID_PERCENTILE) -> render.Scale:
    """One scale for ``maps`` pooled: top = the ``percentile`` of |values| (signed) or of
    the values (unsigned, bottom = min(0, smallest value)); the largest value where the
    percentile is 0, and 1 for all-zero maps."""
    flat = np.concatenate([np.asarray(m, np.float64).ravel() for m in maps]) if maps else np.zeros(1)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return render.Scale(-1.0 if signed else 0.0, 1.0, signed)
    values = np.abs(flat) if signed else flat
    top = float(np.percentile(values, percentile))
    if top <= 0:
        top = float(values.max()) if values.max() > 0 else 1.0
    if signed:
        return render.Scale(-top, top, True)
    return render.Scale(min(float(flat.min()), 0.0), top, False)


def grid_scales(rows: list[list[Explanation]], mode: str = "shared",
                percentile: float = GRID_PERCENTILE) -> list[list[render.Scale]]:
    """The scale of every map of the grid, ``rows[r][c]`` -> ``scales[r][c]``, by ``mode``
    (``shared``: one for all, ``row``: one per row, ``cell``: one per map)."""
    if mode not in SCALE_MODES:
        from xai_core.types import InputError

        raise InputError(f"unknown grid scale {mode!r}; use one of {', '.join(SCALE_MODES)}")
    signed = any(e.signed for exps in rows for e in exps)
    if mode == "shared":
        one = robust_scale([e.attribution for exps in rows for e in exps], signed, percentile)
        return [[one] * len(exps) for exps in rows]
    if mode == "row":
        return [[robust_scale([e.attribution for e in exps], signed, percentile)] * len(exps) for exps in rows]
    return [[robust_scale([e.attribution], signed, percentile) for e in exps] for exps in rows]


def scale_legend(mode: str, scales: list[list[render.Scale]], percentile: float = GRID_PERCENTILE) -> str:
    """The sentence under the grid that says how its colours compare."""
    signed = scales[0][0].signed
    how = "red pushes the class up, blue down" if signed else "brighter: more important"
    p = f"{percentile:g}th percentile of |value|"
    if mode == "shared":
        top = scales[0][0].vmax
        return f"{how}; one colour scale for every map, full colour at {render.tick_labels([top])[0]} ({p})"
    if mode == "row":
        return f"{how}; one colour scale per row (its {p}, shown by the picture): compare colours within a row"
    return f"{how}; each map on its own scale (its {p}, under its title): compare colours within a map only"


def _probability(e: Explanation) -> float | None:
    probability = next((p.probability for p in e.predictions if p.index == e.target), None)
    if probability is None and e.probabilities is not None:
        probability = float(e.probabilities[e.target])
    return probability


def cell_inches(columns: int, wanted: float | None = None) -> float:
    """A cell's side: ``wanted`` (default 2.2 in), shrunk so that ``columns`` cells fit
    :data:`PAGE_PX` at :data:`DPI`, never below 0.7 inch (a title needs room)."""
    wanted = 2.2 if wanted is None else wanted
    return float(max(0.7, min(wanted, PAGE_PX / DPI / max(1, columns))))


def wrap_title(text: str, inches: float) -> str:
    """``text`` wrapped to ``inches`` at :data:`FONT_PT` (at most 3 lines)."""
    chars = max(8, int(inches * DPI / (FONT_PT * 0.75)))  # about 0.55 em per character
    return "\n".join(textwrap.wrap(text, chars, break_long_words=True)[:3])


def class_grid(rows: list[tuple[np.ndarray, list[Explanation]]], alpha: float = 0.5, names: list[str] | None = None,
               cell: float | None = None, marks: list[tuple[int, int]] | None = None,
               scale: str = "shared") -> np.ndarray:
    """The grid as RGB uint8. ``rows`` pairs each RGB picture with its explanations
    (one per class); ``names`` titles the pictures; ``marks`` gives each row's (true
    class, predicted class) of a labelled set: the true class's title is green, a
    wrong prediction's red and bold. ``scale`` is ``shared``, ``row`` or ``cell``
    (see :func:`grid_scales`), stated in the legend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if not rows or not all(exps for _, exps in rows):
        raise ValueError("the grid needs at least one image with at least one explanation")
    scales = grid_scales([exps for _, exps in rows], scale)
    signed = scales[0][0].signed
    cmap = render.DIVERGING if signed else render.SEQUENTIAL
    cols = 1 + max(len(exps) for _, exps in rows)
    side = cell_inches(cols, cell)
    title_lines = 3 if side < 1.6 else 2
    title_h = title_lines * FONT_PT / 72 * 1.3 + 0.08  # room for the wrapped titles above each row
    row_h = side + title_h
    legend_h = 0.95 if scale == "shared" else 0.6  # the legend wraps to two lines on a narrow grid
    fig = Figure(figsize=(side * cols + 0.2, row_h * len(rows) + legend_h + 0.35), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (picture, exps) in enumerate(rows):
        name = names[r] if names else f"image {r + 1}"
        if scale == "row":
            name += f" (scale ±{render.tick_labels([scales[r][0].vmax])[0]})"
        axes[r][0].imshow(picture)
        axes[r][0].set_title(wrap_title(name, side), fontsize=FONT_PT)
        axes[r][0].axis("off")
        for c in range(1, cols):
            ax = axes[r][c]
            ax.axis("off")
            if c - 1 >= len(exps):
                continue
            e, s = exps[c - 1], scales[r][c - 1]
            probability = _probability(e)
            ax.imshow(render.overlay(picture, e, alpha=alpha, scale=s, cmap=cmap))
            title = f"{e.target_label} ({probability:.3f})" if probability is not None else f"{e.target_label}"
            title = wrap_title(title, side)
            if scale == "cell":
                title += f"\n±{render.tick_labels([s.vmax])[0]}"
            truth, predicted = marks[r] if marks else (None, None)
            color = "#1b7f3b" if e.target == truth else ("#b00020" if e.target == predicted else "black")
            ax.set_title(title, fontsize=FONT_PT, color=color,
                         fontweight="bold" if e.target == predicted and predicted != truth else "normal")
    method = rows[0][1][0].method
    total_h = row_h * len(rows) + legend_h + 0.35
    fig.suptitle(f"{method}", fontsize=FONT_PT + 1, y=1 - 0.05 / total_h, va="top")
    fig.text(0.5, 0.1 / total_h, wrap_title(scale_legend(scale, scales), side * cols), ha="center", va="bottom",
             fontsize=FONT_PT)
    # a fixed layout: every row gets its titles' room above it, so titles never reach the row above
    fig.subplots_adjust(left=0.1 / (side * cols + 0.2), right=1 - 0.1 / (side * cols + 0.2),
                        bottom=legend_h / total_h, top=1 - (0.35 + title_h) / total_h,
                        hspace=title_h / side, wspace=0.04)
    if scale == "shared":  # the shared scale's colour bar under the grid
        s = scales[0][0]
        cax = fig.add_axes([0.3, 0.6 / total_h, 0.4, 0.14 / total_h])
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=Normalize(s.vmin, s.vmax), cmap=cmap), cax=cax,
                           orientation="horizontal")
        ticks = render.colorbar_ticks(s)
        bar.set_ticks(ticks, labels=render.tick_labels(ticks))
        bar.ax.tick_params(labelsize=FONT_PT)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
