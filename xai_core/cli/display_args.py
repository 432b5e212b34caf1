"""Command-line options about how results are drawn and how pictures are read,
shared by `explain` and `explain-set`: the grids' colour scale (``--grid-scale``)
and the picture shape of a CSV of pixel columns (``--image-shape``)."""

from __future__ import annotations

import argparse

from xai_core.types import InputError

GRID_SCALES = ("shared", "row", "cell")


def add_grid_scale_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid-scale", default="shared", choices=GRID_SCALES,
                   help="colour scale of the class grids: one for every map (shared, default), one per row, or "
                        "one per map (cell); each is the 99.9th percentile of |value|, as shap's image_plot")


def parse_image_shape(text: str | None) -> tuple[int, ...] | None:
    """``28x28`` or ``32x32x3`` (``,`` also separates) -> (28, 28); None stays None."""
    if text is None or not text.strip():
        return None
    parts = [p for p in text.lower().replace(",", "x").replace("*", "x").split("x") if p.strip()]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(f"--image-shape {text!r}: give H x W or H x W x C, e.g. 28x28") from None
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise InputError(f"--image-shape {text!r}: give H x W or H x W x C, e.g. 28x28")
    return shape
