"""Attribution -> pictures: overlay PNGs at the original photo's resolution,
colorbars, heatmaps and LIME superpixel boundaries.

Signed maps use a diverging red (+) / blue (-) map, symmetric around zero, with
the photo showing through where the attribution is near zero. Unsigned maps
(Grad-CAM, saliency) use a sequential map (jet by default) blended at ``alpha``.
How a method's map is resized, which scale it may share and whether the display
options apply is what the method declares (``Explainer.drawing``, see
:func:`drawing_of`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from xai_core.explainers.base import Drawing
from xai_core.inputs.images import resize_map
from xai_core.types import Explanation

DIVERGING = "RdBu_r"
DIMMED = 0.35  # brightness of the photo outside the model's centre crop
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


def drawing_of(explanation: Explanation) -> Drawing:
    """How the method that made ``explanation`` declares its map is drawn (the
    default drawing for a method no longer registered)."""
    from xai_core.explainers import REGISTRY

    kind = explanation.input_kinds[0] if explanation.input_kinds else "image"
    same = [e for e in REGISTRY.values() if e.name == explanation.method]
    chosen = next((e for e in same if e.input_kind == kind), same[0] if same else None)
    return chosen.drawing if chosen is not None else Drawing()


def _segments(explanation: Explanation) -> np.ndarray | None:
    """The superpixel ids of a method drawn by segments, where the result has them."""
    if drawing_of(explanation).upsample == "segments":
        return explanation.extras.get("segments")
    return None


def upsample_to(explanation: Explanation, height: int, width: int) -> np.ndarray:
    """The explanation's map at (height, width), as its method declares: nearest on
    superpixels (crisp regions), bicubic for class activation maps (as in the
    papers), bilinear otherwise. A map of a centre crop (:attr:`Explanation.boxes`)
    fills the crop's region of the picture and is zero outside it."""
    region = crop_region(explanation, height, width)
    if region is not None:
        top, left, bottom, right = region
        out = np.zeros((height, width), np.float32)
        out[top:bottom, left:right] = _upsampled(explanation, bottom - top, right - left)
        return out
    return _upsampled(explanation, height, width)


def _upsampled(explanation: Explanation, height: int, width: int) -> np.ndarray:
    segments = _segments(explanation)
    if segments is not None:
        seg = upsample_segments(segments, height, width)
        return explanation.extras["segment_weights"][seg].astype(np.float32)
    return resize_map(explanation.attribution, height, width, cubic=drawing_of(explanation).upsample == "bicubic")


def crop_region(explanation: Explanation, height: int, width: int) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the model's crop in a ``height`` x ``width``
    picture of the photo explained; None when the model saw the whole photo."""
    box = explanation.boxes[0] if explanation.boxes else None
    if not box:
        return None
    sy, sx = height / box["height"], width / box["width"]
    top, left = int(round(box["top"] * sy)), int(round(box["left"] * sx))
    bottom, right = int(round(box["bottom"] * sy)), int(round(box["right"] * sx))
    top, left, bottom, right = max(top, 0), max(left, 0), min(bottom, height), min(right, width)
    if (top, left, bottom, right) == (0, 0, height, width) or bottom - top < 1 or right - left < 1:
        return None
    return top, left, bottom, right


def layer_view(explanation: Explanation) -> Explanation | None:
    """A convolutional layer's attribution (C, h, w) as an explanation of its own:
    the channel sum, upsampled (bilinear) to the model input, to overlay like any
    map. None when the result has no layer map (no layer attribution, or a dense
    layer's (units,), which is drawn as bars)."""
    layer = explanation.layer_attribution
    if layer is None or layer.ndim != 3:
        return None
    h, w = explanation.attribution.shape[:2]
    summed = layer.sum(axis=0).astype(np.float32)
    return replace(explanation, attribution=resize_map(summed, h, w, cubic=False), raw=None, signed=True, extras={},
                   layer_attribution=None)


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
    """Blend the explanation over the original RGB image, at the image's resolution
    (a map of a centre crop over the crop's region, the margins dimmed)."""
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
    region = crop_region(explanation, h, w)
    segments = _segments(explanation) if boundaries else None
    if segments is not None:
        from skimage.segmentation import find_boundaries

        top, left, bottom, right = region or (0, 0, h, w)
        seg = upsample_segments(segments, bottom - top, right - left)
        edge = np.zeros((h, w), bool)
        edge[top:bottom, left:right] = find_boundaries(seg, mode="inner")
        out[edge] = (255, 221, 0)
    if region is not None:  # the model never saw the margins: the photo dimmed there, no map
        top, left, bottom, right = region
        inside = np.zeros((h, w), bool)
        inside[top:bottom, left:right] = True
        out[~inside] = base[~inside] * DIMMED
    return np.clip(out, 0, 255).astype(np.uint8)


def colorbar(
    scale: Scale,
    cmap: str | None = None,
    label: str = "",
    width: int = 360,
    height: int = 60,
    *,
    text_color: str = "#222222",
    background: str = "#ffffff",
    font_size: float = 9.0,
    dpi: int = 200,
) -> np.ndarray:
    """A horizontal colorbar with its value range, as an RGB image.

    ``width`` x ``height`` is the size it is shown at (in CSS pixels); the image is
    rendered at ``dpi / 100`` times that, so text stays sharp when a page scales it.
    Ticks are at most five, formatted by :func:`tick_labels` so that tiny or huge
    ranges read as ``-2.5e-05 ... 2.5e-05`` and never overlap. ``text_color`` and
    ``background`` follow the page's theme (light or dark).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize
    from matplotlib.ticker import FixedFormatter, FixedLocator

    cmap = cmap or (DIVERGING if scale.signed else SEQUENTIAL)
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=dpi, facecolor=background)
    bottom = 0.42 if label else 0.5  # room for the tick labels below and the title above
    ax = fig.add_axes([0.09, bottom, 0.82, 0.25])
    fig.colorbar(
        plt.cm.ScalarMappable(norm=Normalize(scale.vmin, scale.vmax), cmap=cmap),
        cax=ax, orientation="horizontal",
    )
    ticks = colorbar_ticks(scale)
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FixedFormatter(tick_labels(ticks)))
    ax.xaxis.set_minor_locator(FixedLocator([]))
    ax.tick_params(labelsize=font_size, colors=text_color, length=3)
    ax.xaxis.get_offset_text().set_visible(False)
    for spine in ax.spines.values():
        spine.set_edgecolor(text_color)
    if label:
        ax.set_title(label, fontsize=font_size, color=text_color, pad=3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor=background)
    plt.close(fig)
    return np.asarray(Image.open(buf).convert("RGB"))


def colorbar_ticks(scale: Scale, count: int = 5) -> list[float]:
    """At most ``count`` evenly spaced ticks from vmin to vmax (0 among them for a signed scale)."""
    lo, hi = float(scale.vmin), float(scale.vmax)
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return [lo]
    ticks = np.linspace(lo, hi, count if scale.signed else count)
    if scale.signed:
        ticks[count // 2] = 0.0
    return [float(t) for t in ticks]


def tick_labels(ticks: list[float]) -> list[str]:
    """Short labels: plain numbers for ordinary ranges (0.25, 12, 1500), one shared
    power of ten otherwise (-2.5e-05, 0, 2.5e-05), never more than 7 characters."""
    finite = [abs(t) for t in ticks if t != 0 and np.isfinite(t)]
    if not finite:
        return ["0" for _ in ticks]
    big = max(finite)
    if 1e-2 <= big < 1e4:
        digits = max(0, 2 - int(np.floor(np.log10(big))))
        labels = [f"{t:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{t:.0f}" for t in ticks]
        return ["0" if lab in ("-0", "") else lab for lab in labels]
    return ["0" if t == 0 else f"{t:.2g}".replace("e-0", "e-").replace("e+0", "e") for t in ticks]


def colorbar_label(explanation: Explanation) -> str:
    if explanation.signed:
        return f"red: for '{explanation.target_label}', blue: against"
    return f"importance for '{explanation.target_label}'"


def to_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


# -- display options: change the picture, never the numbers --------------------------------

def pixel_level(explanation: Explanation) -> bool:
    """Whether the map has one value per input pixel (speckled on photos), where
    smoothing, percentile clipping and absolute value help the eye."""
    return drawing_of(explanation).pixel_level


@dataclass(frozen=True)
class Display:
    """How pixel-level maps are drawn: Gaussian ``smooth`` (sigma, in model-input
    pixels), colours saturating at the ``clip`` percentile of |value|, ``absolute``
    value (magnitude only). Applied to a copy for drawing; the explanation's numbers,
    its .npy and results.json are never changed."""

    smooth: float = 0.0
    clip: float = 99.5
    absolute: bool = False

    def applies_to(self, explanation: Explanation) -> bool:
        return pixel_level(explanation)

    def apply(self, explanation: Explanation) -> Explanation:
        """The explanation as drawn (a new object; ``explanation`` is not modified)."""
        from dataclasses import replace

        if not self.applies_to(explanation):
            return explanation
        att = np.asarray(explanation.attribution, np.float32)
        signed = explanation.signed
        if self.absolute:
            att, signed = np.abs(att), False
        if self.smooth > 0:
            from scipy.ndimage import gaussian_filter

            att = gaussian_filter(att, sigma=float(self.smooth), mode="nearest").astype(np.float32)
        if att is explanation.attribution and signed == explanation.signed:
            return explanation
        return replace(explanation, attribution=att, signed=signed)

    def percentile_for(self, explanation: Explanation) -> float:
        return self.clip if self.applies_to(explanation) else 99.5


def unit_of(explanation: Explanation) -> tuple[str, str, bool]:
    """The group a map may share a colour scale with: same units (as its method
    declares; a method without declared units shares with no other), output kind and sign."""
    units = drawing_of(explanation).units or explanation.method
    return (units, explanation.output_kind, explanation.signed)


def scales_for(explanations: list[Explanation], shared: bool, percentiles: list[float] | None = None) -> list[Scale]:
    """One drawing scale per map. ``shared``: maps in the same units (see :func:`unit_of`)
    share one range, so their colours compare; maps in other units keep their own,
    so that no map is washed out by another's larger numbers."""
    percentiles = percentiles or [99.5] * len(explanations)
    own = [Scale.of(e.attribution, e.signed, p) for e, p in zip(explanations, percentiles, strict=True)]
    if not shared:
        return own
    groups: dict[tuple, list[int]] = {}
    for i, e in enumerate(explanations):
        groups.setdefault(unit_of(e), []).append(i)
    out = list(own)
    for members in groups.values():
        if len(members) > 1:
            top = max(max(abs(own[i].vmin), abs(own[i].vmax)) for i in members)
            signed = own[members[0]].signed
            low = -top if signed else min(own[i].vmin for i in members)
            for i in members:
                out[i] = Scale(low, top, signed)
    return out


def enlarge_small(image: np.ndarray, min_side: int = 256) -> np.ndarray:
    """A small picture (a 32x32 digit) scaled up by a whole factor with nearest
    neighbours, so that it is shown at a readable size with crisp pixels; pictures
    at least ``min_side`` on their short side are returned as they are."""
    h, w = image.shape[:2]
    factor = int(np.ceil(min_side / max(1, min(h, w))))
    if factor <= 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


# -- one view per model input, chosen by the input's kind ---------------------------
def input_view(explanation: Explanation, index: int) -> Explanation:
    """The explanation seen through one model input: ``attribution`` is that input's."""
    from dataclasses import replace

    extras = dict(explanation.extras)
    if "input_segments" in extras:  # LIME on several inputs: this input's superpixels, if it has any
        extras.pop("segments", None)
        extras.pop("segment_weights", None)
        if extras["input_segments"][index] is not None:
            extras.update(segments=extras["input_segments"][index], segment_weights=extras["input_weights"][index])
    boxes = explanation.boxes
    if boxes and index < len(boxes):  # the view is drawn in its input's box
        boxes = [boxes[index], *boxes[:index], *boxes[index + 1:]]
    return replace(explanation, attribution=explanation.attributions[index], attributions=list(explanation.attributions),
                   extras=extras, boxes=boxes)


def feature_bars(values: np.ndarray, names: list[str], title: str = "", top_k: int = 20) -> np.ndarray:
    """Signed horizontal bars of per-feature attributions (largest |value| on top,
    red raises the score, blue lowers it) as an RGB uint8 image."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.asarray(values, np.float64).reshape(-1)
    order = np.argsort(-np.abs(values), kind="stable")[:top_k][::-1]
    fig = Figure(figsize=(6, max(2.0, 0.3 * len(order) + 1.0)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.barh(range(len(order)), values[order], color=["#d62728" if values[i] >= 0 else "#1f77b4" for i in order])
    ax.set_yticks(range(len(order)), [names[i] if i < len(names) else f"feature {i}" for i in order], fontsize=8)
    ax.axvline(0, color="#777777", linewidth=0.8)
    ax.set_xlabel("attribution (red raises the score, blue lowers it)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def draw_input(explanation: Explanation, index: int, item: np.ndarray | None, names: list[str] | None = None,
               alpha: float = 0.5) -> np.ndarray:
    """What one input's attribution looks like, by the input's kind: an overlay on
    ``item`` (the RGB uint8 picture) for an image, a bar chart for a feature vector."""
    kind = explanation.input_kinds[index] if index < len(explanation.input_kinds) else "image"
    view = input_view(explanation, index)
    if kind == "image":
        if item is None:
            raise ValueError("an image input needs its picture to draw the overlay on")
        return overlay(item, view, alpha=alpha)
    values = view.attribution
    return feature_bars(values, names or [f"feature {i}" for i in range(len(values))],
                        title=f"{explanation.method}: {explanation.inputs[index]} -> {explanation.target_label}")
