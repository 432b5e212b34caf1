"""Attribution -> pictures: overlay PNGs at the original photo's resolution,
colorbars, heatmaps and LIME superpixel boundaries.

Signed maps use a diverging red (+) / blue (-) map, symmetric around zero, with
the photo showing through where the attribution is near zero. Unsigned maps
(Grad-CAM, saliency) use a sequential map (jet by default) blended at ``alpha``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .images import resize_map
from .types import Explanation

DIVERGING = "RdBu_r"
SEQUENTIAL = "jet"


@dataclass(frozen=True)
class Scale:
    """The value range a map is drawn with (shared between maps when comparing)."""

    vmin: float
    vmax: float
    signed: bool

    @classmethod
    def of(cls, attribution: np.ndarray, signed: bool, percentile: float = 99.5) -> Scale:
        values = np.abs(attribution) if signed else attribution
        top = float(np.percentile(values, percentile)) if values.size else 0.0
        if not np.isfinite(top) or top <= 0:
            top = float(np.max(values)) if values.size and np.max(values) > 0 else 1.0
        if signed:
            return cls(-top, top, True)
        low = float(np.min(attribution)) if attribution.size else 0.0
        return cls(min(low, 0.0), top, False)

    @classmethod
    def shared(cls, maps: list[tuple[np.ndarray, bool]]) -> Scale:
        scales = [cls.of(m, s) for m, s in maps]
        signed = any(s.signed for s in scales)
        top = max(max(abs(s.vmin), abs(s.vmax)) for s in scales)
        return cls(-top if signed else min(s.vmin for s in scales), top, signed)


def _cmap(name: str):
    from matplotlib import colormaps

    return colormaps[name]


def default_cmap(explanation: Explanation) -> str:
    return DIVERGING if explanation.signed else SEQUENTIAL


def heatmap(attribution: np.ndarray, scale: Scale, cmap: str | None = None) -> np.ndarray:
    """2-D map -> RGB uint8 image of the same size."""
    cmap = cmap or (DIVERGING if scale.signed else SEQUENTIAL)
    span = scale.vmax - scale.vmin or 1.0
    normed = np.clip((attribution - scale.vmin) / span, 0, 1)
    return (_cmap(cmap)(normed)[..., :3] * 255).astype(np.uint8)


def upsample_to(explanation: Explanation, height: int, width: int) -> np.ndarray:
    """The explanation's map at (height, width): nearest for LIME superpixels (crisp
    regions), bicubic for Grad-CAM (as in the paper), bilinear otherwise."""
    att = explanation.attribution
    if explanation.method == "lime" and "segments" in explanation.extras:
        seg = upsample_segments(explanation.extras["segments"], height, width)
        return explanation.extras["segment_weights"][seg].astype(np.float32)
    return resize_map(att, height, width, cubic=explanation.method == "grad_cam")


def upsample_segments(segments: np.ndarray, height: int, width: int) -> np.ndarray:
    pil = Image.fromarray(segments.astype(np.int32), mode="I")
    return np.asarray(pil.resize((width, height), Image.NEAREST), dtype=np.int32)


def overlay(
    image: np.ndarray,
    explanation: Explanation,
    *,
    alpha: float = 0.5,
    scale: Scale | None = None,
    cmap: str | None = None,
    boundaries: bool = True,
) -> np.ndarray:
    """Blend the explanation over the original RGB image, at the image's resolution."""
    h, w = image.shape[:2]
    att = upsample_to(explanation, h, w)
    scale = scale or Scale.of(explanation.attribution, explanation.signed)
    heat = heatmap(att, scale, cmap or default_cmap(explanation)).astype(np.float32)
    base = image.astype(np.float32)
    if scale.signed:
        # let the photo show where the attribution is near zero
        strength = np.clip(np.abs(att) / (scale.vmax or 1.0), 0, 1)[..., None]
        weight = alpha * np.sqrt(strength) * 1.6
        weight = np.clip(weight, 0, 0.85)
    else:
        weight = np.full((h, w, 1), alpha, np.float32)
    out = base * (1 - weight) + heat * weight
    if boundaries and explanation.method == "lime" and "segments" in explanation.extras:
        from skimage.segmentation import find_boundaries

        seg = upsample_segments(explanation.extras["segments"], h, w)
        edge = find_boundaries(seg, mode="inner")
        out[edge] = (255, 221, 0)
    return np.clip(out, 0, 255).astype(np.uint8)


def colorbar(scale: Scale, cmap: str | None = None, label: str = "", width: int = 360, height: int = 60) -> np.ndarray:
    """A horizontal colorbar with its value range, as an RGB image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    cmap = cmap or (DIVERGING if scale.signed else SEQUENTIAL)
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_axes([0.05, 0.55, 0.9, 0.3])
    fig.colorbar(
        plt.cm.ScalarMappable(norm=Normalize(scale.vmin, scale.vmax), cmap=cmap),
        cax=ax, orientation="horizontal",
    )
    ax.tick_params(labelsize=7)
    if label:
        ax.set_title(label, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB"))


def colorbar_label(explanation: Explanation) -> str:
    if explanation.signed:
        return f"red: for '{explanation.target_label}', blue: against"
    return f"importance for '{explanation.target_label}'"


def to_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def class_grid(
    items,
    class_names: list[str],
    *,
    feature_names: list[str] | None = None,
    title: str = "",
    top_features: int = 8,
    cell: int = 112,
) -> np.ndarray:
    """The item x class grid of a labelled set, as an RGB image.

    ``items`` are :class:`~xai_core.set_model.ItemExplanation`-like (``name``,
    ``label``, ``prediction``, ``probabilities``, ``classes``, ``attributions`` C x
    H x W or C x F, ``input``). One row per item, one column per explained class,
    titled with the class name and its probability (the true class in green, a
    wrong prediction in red). Every cell shares one colour scale: red raises the
    class's score, blue lowers it. Image rows start with the model's input and draw
    each map over it (``cell`` pixels a side); table rows get horizontal bars of the
    ``top_features`` largest |attributions|.
    """
    items = list(items)
    if not items:
        raise ValueError("class_grid needs at least one item")
    top = max(float(np.percentile(np.abs(it.attributions), 99.5)) for it in items)
    top = top if np.isfinite(top) and top > 0 else 1.0
    if items[0].attributions.ndim == 3:
        return _image_grid(items, class_names, Scale(-top, top, True), title, cell)
    return _bar_grid(items, class_names, top, feature_names, title, top_features)


GREEN, RED, BLACK = (27, 127, 59), (176, 0, 32), (20, 20, 20)


def _font(size: int):
    from PIL import ImageFont

    try:
        import matplotlib

        path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        return ImageFont.truetype(str(path), size)
    except (ImportError, OSError):
        return ImageFont.load_default()


def _image_grid(items, class_names, scale: Scale, title: str, cell: int) -> np.ndarray:
    from PIL import ImageDraw

    ncols = 1 + max(len(it.classes) for it in items)
    head, pad, left = 30, 6, 4
    width = left + ncols * (cell + pad)
    height = 26 + len(items) * (cell + head + pad) + 44
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    small, tiny = _font(11), _font(10)
    draw.text((left, 6), title or "red: raises the class's score, blue: lowers it (one colour scale)",
              fill=BLACK, font=small)
    for r, it in enumerate(items):
        y = 26 + r * (cell + head + pad) + head
        wrong = it.label >= 0 and it.prediction != it.label
        truth = class_names[it.label] if it.label >= 0 else "?"
        base = _cell_image(it.input, cell)
        gray = base.mean(axis=-1, keepdims=True)
        canvas.paste(Image.fromarray(base), (left, y))
        draw.text((left, y - head + 2), str(it.name)[:18], fill=BLACK, font=tiny)
        draw.text((left, y - head + 15), f"true {truth}, pred {class_names[it.prediction]}"[:22],
                  fill=RED if wrong else BLACK, font=tiny)
        for j, (c, att) in enumerate(zip(it.classes, it.attributions, strict=True)):
            x = left + (j + 1) * (cell + pad)
            heat = heatmap(resize_map(np.asarray(att, np.float32), cell, cell, cubic=False), scale).astype(np.float32)
            mixed = np.clip(0.2 * gray + 0.8 * heat, 0, 255).astype(np.uint8)
            canvas.paste(Image.fromarray(mixed), (x, y))
            color = GREEN if c == it.label else (RED if c == it.prediction and wrong else BLACK)
            label = f"{class_names[c]}"[:12] + f": {float(it.probabilities[c]):.3f}"
            draw.text((x, y - 15), ("> " if c == it.prediction else "") + label, fill=color, font=small)
    bar_w = min(360, width - 2 * left)
    ramp = heatmap(np.tile(np.linspace(scale.vmin, scale.vmax, bar_w, dtype=np.float32), (10, 1)), scale)
    bx, by = (width - bar_w) // 2, height - 38
    canvas.paste(Image.fromarray(ramp), (bx, by))
    for frac, value in ((0.0, scale.vmin), (0.5, 0.0), (1.0, scale.vmax)):
        text = f"{value:.3g}"
        draw.text((bx + frac * bar_w - 3 * len(text), by + 13), text, fill=BLACK, font=tiny)
    return np.asarray(canvas)


def _cell_image(x, size: int) -> np.ndarray:
    """The model input (H x W x C in [0, 1]) as a size x size RGB uint8 picture."""
    if x is None:
        return np.full((size, size, 3), 128, np.uint8)
    a = np.clip(np.asarray(x, np.float32), 0, 1)
    a = np.repeat(a, 3, axis=-1) if a.ndim == 3 and a.shape[-1] == 1 else (a if a.ndim == 3 else
                                                                             np.repeat(a[..., None], 3, axis=-1))
    pil = Image.fromarray((a[..., :3] * 255).round().astype(np.uint8))
    small = max(pil.size) < size
    return np.asarray(pil.resize((size, size), Image.NEAREST if small else Image.BILINEAR))


def _bar_grid(items, class_names, top: float, feature_names, title: str, top_features: int) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = max(len(it.classes) for it in items)
    fig, axes = plt.subplots(len(items), ncols, figsize=(2.2 * ncols, 1.6 * len(items) + 0.6), squeeze=False)
    for r, it in enumerate(items):
        row = axes[r]
        wrong = it.label >= 0 and it.prediction != it.label
        truth = class_names[it.label] if it.label >= 0 else "?"
        row[0].set_ylabel(f"{it.name}\ntrue {truth}, pred {class_names[it.prediction]}", fontsize=6.5,
                          color="#b00020" if wrong else "black")
        for j, (c, att) in enumerate(zip(it.classes, it.attributions, strict=True)):
            ax = row[j]
            order = np.argsort(-np.abs(att))[:top_features][::-1]
            names = feature_names or [f"x{k}" for k in range(len(att))]
            ax.barh(range(len(order)), att[order], color=[_bar_color(v) for v in att[order]])
            ax.set_yticks(range(len(order)), [names[k][:18] for k in order], fontsize=5)
            ax.set_xlim(-top * 1.05, top * 1.05)
            ax.axvline(0, color="0.3", lw=0.5)
            ax.tick_params(axis="x", labelsize=5)
            color = "#1b7f3b" if c == it.label else ("#b00020" if c == it.prediction and wrong else "black")
            ax.set_title(f"{class_names[c]}: {float(it.probabilities[c]):.3f}", fontsize=7, color=color,
                         fontweight="bold" if c == it.prediction else "normal")
        for ax in row[len(it.classes):]:
            ax.axis("off")
    fig.suptitle(title or "red: raises the class's score, blue: lowers it (one scale)", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB"))


def _gray(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x.mean(axis=-1) if x.ndim == 3 else x


def _bar_color(value: float) -> str:
    return "#d62728" if value >= 0 else "#1f77b4"


def class_mean_maps(summary, class_names: list[str], cell_inches: float = 1.35) -> np.ndarray:
    """The class-mean maps of a :class:`~xai_core.set_explain.SetSummary` (images):
    one panel per explained class, the mean signed map over the items explained
    for it, on one colour scale (red raises the class's score, blue lowers it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    cs = summary.classes
    maps = [summary.mean_signed(c) for c in cs]
    top = max(float(np.percentile(np.abs(m), 99.5)) for m in maps) if maps else 1.0
    norm = Normalize(-(top or 1.0), top or 1.0)
    fig, axes = plt.subplots(1, max(1, len(cs)), figsize=(cell_inches * max(1, len(cs)), cell_inches * 1.2 + 0.7),
                             squeeze=False)
    for ax, c, m in zip(axes[0], cs, maps, strict=False):
        ax.imshow(m, cmap=DIVERGING, norm=norm)
        ax.set_title(f"{class_names[c]} (n={int(summary.counts[c])})", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("class-mean maps: mean attribution for each class over the explained items", fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 0.92))
    cax = fig.add_axes([0.3, 0.06, 0.4, 0.03])
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=DIVERGING), cax=cax, orientation="horizontal")
    cax.tick_params(labelsize=6)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB"))
