"""RISE, randomized input sampling for explanation (Petsiuk et al. 2018, arXiv:1806.07421).

N random masks: each an s x s grid whose cells are on with probability p,
upsampled (bilinear) to (s + 1) x the cell size and cropped to the input at a
random shift of less than one cell, as in the paper (so masks are smooth and not
aligned to the grid). The saliency of a pixel is the paper's Monte Carlo
estimator ``S(x) = 1 / (p N) sum_i f(I . M_i) M_i(x)``, with f the target's class
probability on the masked image ``I . M_i`` (hidden pixels black, or another fill).

``centre`` (on by default) subtracts the mean score: ``1 / (p N) sum_i (f_i - mean f) M_i(x)``,
which is the paper's map minus a constant (E[M_i(x)] = p at every pixel), so the
ranking is the same, but the map is signed (positive where showing the pixel
raises the score) and its Monte Carlo noise is smaller (a control variate).

The masks are independent draws, so the running estimate has a standard error per
pixel; with a ``tolerance`` the budget stops when the map is stable
(:mod:`xai_core.explainers.stable_budget`). The masked images go through the model
in batches, on the fast forward engine where one reproduces the model; masks are
drawn from the seeded generator in batch order, so a seed gives the same masks
for every class (and each masked image is evaluated once for several classes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xai_core.explainers.base import (
    Context,
    Drawing,
    Explainer,
    RawAttribution,
    fill_image,
    masked_images,
    param,
    register,
)
from xai_core.explainers.stable_budget import StableBudget

ROUND = 200  # masks between two stability checks


@dataclass(frozen=True)
class RiseParams:
    masks: int = param(2000, low=10, high=50000, help="random masks evaluated (N; the paper uses 4000-8000)")
    grid: int = param(7, low=2, high=64, help="cells per side of the random grid (s)")
    probability: float = param(0.5, low=0.05, high=0.95, step=0.05, help="chance that a cell is shown (p)")
    fill: str = param("black", choices=("black", "gray", "mean", "blur"),
                      help="what hidden pixels show (black: the paper's I . M)")
    centre: bool = param(True, help="subtract the mean score: the paper's map minus a constant, signed, less noisy")
    tolerance: float = param(
        0.0, low=0.0, high=1.0, step=0.01,
        help="stop early, in rounds of 200 masks, once the top-10 pixels keep their ranking and every pixel's "
             "standard error is at most this fraction of the largest value (0: spend all masks)",
    )


def interpolation(size: int, cells: int) -> np.ndarray:
    """size x cells weights of the paper's bilinear upsampling (skimage ``resize``,
    order 1, reflect mode, no anti-aliasing) of ``cells`` values to ``size``."""
    from skimage.transform import resize

    return resize(np.eye(cells), (size, cells), order=1, mode="reflect", anti_aliasing=False)


@dataclass(frozen=True)
class MaskMaker:
    """Draws RISE masks for an h x w input: grid s, probability p."""

    height: int
    width: int
    grid: int
    probability: float

    @property
    def cell(self) -> tuple[int, int]:
        return math.ceil(self.height / self.grid), math.ceil(self.width / self.grid)

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """n binary grids (n x s x s) and the shifts (rows, columns) of their crops."""
        grids = (rng.random((n, self.grid, self.grid)) < self.probability).astype(np.float32)
        rows = rng.integers(0, self.cell[0], n)
        cols = rng.integers(0, self.cell[1], n)
        return grids, rows, cols

    def masks(self, grids: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """n x h x w masks: each grid upsampled to (s + 1) x cell and cropped at its shift."""
        ry = interpolation((self.grid + 1) * self.cell[0], self.grid).astype(np.float32)
        rx = interpolation((self.grid + 1) * self.cell[1], self.grid).astype(np.float32)
        ys = ry[rows[:, None] + np.arange(self.height)]  # n x h x s
        xs = rx[cols[:, None] + np.arange(self.width)]  # n x w x s
        return np.einsum("nhs,nst,nwt->nhw", ys, grids, xs, optimize=True)


@register
class Rise(Explainer):
    name = "rise"
    label = "RISE"
    description = ("Show the image through many random smooth masks; a pixel's importance is the class "
                   "probability averaged over the masks that show it.")
    paper = "Petsiuk et al., 2018, RISE: Randomized Input Sampling for Explanation of Black-box Models"
    Params = RiseParams
    drawing = Drawing(signed=True)
    rank = 62
    stochastic = True
    slow = True

    def planned_evals(self, params: RiseParams, adapter) -> int:
        return params.masks  # masked images (a maximum when a tolerance may stop it early)

    def run(self, ctx: Context, params: RiseParams) -> RawAttribution:
        x = ctx.image
        h, w = x.shape[:2]
        fill = fill_image(x, params.fill)
        maker = MaskMaker(h, w, params.grid, params.probability)
        sums = {k: np.zeros((h, w), np.float64) for k in ("fm", "m", "ffmm", "fmm", "mm")}
        total_f = 0.0
        budget = params.masks
        step = max(ROUND, ctx.batch_size) if params.tolerance > 0 else budget
        check = StableBudget(params.tolerance)
        done = 0
        shown = x - fill
        held = np.empty((min(ctx.batch_size, budget), *x.shape), np.float32)  # reused: predict copies its input
        while done < budget:
            end = min(budget, done + step)
            for start, stop in ctx.chunks(end - done):
                masks = maker.masks(*maker.draw(ctx.rng, stop - start))
                f = ctx.predict(masked_images(masks, shown, fill, held[: stop - start]))[:, ctx.target]
                f = f.astype(np.float64)
                total_f += float(f.sum())
                flat = masks.reshape(len(masks), -1).astype(np.float64)
                squares = flat * flat
                sums["fm"] += (f @ flat).reshape(h, w)
                sums["m"] += flat.sum(axis=0).reshape(h, w)
                ffmm, fmm = np.stack([f * f, f]) @ squares
                sums["ffmm"] += ffmm.reshape(h, w)
                sums["fmm"] += fmm.reshape(h, w)
                sums["mm"] += squares.sum(axis=0).reshape(h, w)
                ctx.progress((done + stop) / budget, f"{done + stop}/{budget} masks")
            done = end
            saliency, error = self._estimate(sums, total_f, done, params)
            if check.settled(saliency, error):
                break
        saliency, error = self._estimate(sums, total_f, done, params)
        extras = {"masks": done, "mean_score": total_f / done, "standard_error_max": float(error.max()),
                  **check.extras(done, budget)}
        return RawAttribution(saliency.astype(np.float32), extras=extras)

    @staticmethod
    def _estimate(sums: dict[str, np.ndarray], total_f: float, n: int, params: RiseParams):
        """(saliency, its standard error) after n masks: the mean of t_i = (f_i - c) M_i / p,
        c the mean score when centred (else 0), and sd(t) / sqrt(n)."""
        c = total_f / n if params.centre else 0.0
        first = (sums["fm"] - c * sums["m"]) / n
        second = (sums["ffmm"] - 2 * c * sums["fmm"] + c * c * sums["mm"]) / n
        var = np.maximum(second - first**2, 0) / max(n - 1, 1)
        p = params.probability
        return first / p, np.sqrt(var) / p
