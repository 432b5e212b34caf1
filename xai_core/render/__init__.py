"""Attribution -> pictures: overlay PNGs at the original photo's resolution,
colorbars, heatmaps and LIME superpixel boundaries.

Signed maps use a diverging red (+) / blue (-) map, symmetric around zero, with
the photo showing through where the attribution is near zero. Unsigned maps
(Grad-CAM, saliency) use a sequential map (jet by default) blended at ``alpha``.
How a method's map is resized, which scale it may share and whether the display
options apply is what the method declares (``Explainer.drawing``, see
:func:`drawing_of`).
"""

from xai_core.render.grid import class_grid
from xai_core.render.maps import (
    DIVERGING,
    SEQUENTIAL,
    Display,
    Scale,
    colorbar,
    colorbar_label,
    colorbar_ticks,
    default_cmap,
    draw_input,
    drawing_of,
    enlarge_small,
    feature_bars,
    heatmap,
    input_view,
    layer_view,
    overlay,
    pixel_level,
    scales_for,
    tick_labels,
    to_png,
    unit_of,
    upsample_segments,
    upsample_to,
)

__all__ = [
    "DIVERGING",
    "Display",
    "SEQUENTIAL",
    "Scale",
    "class_grid",
    "colorbar",
    "colorbar_label",
    "colorbar_ticks",
    "default_cmap",
    "draw_input",
    "drawing_of",
    "enlarge_small",
    "feature_bars",
    "heatmap",
    "input_view",
    "layer_view",
    "overlay",
    "pixel_level",
    "scales_for",
    "tick_labels",
    "to_png",
    "unit_of",
    "upsample_segments",
    "upsample_to",
]
