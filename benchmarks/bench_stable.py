"""Time to the same answer: our budgets that stop when the answer is stable against
the reference library at its default budget.

    python benchmarks/bench_stable.py [--model digits_cnn] [--image sample_images/digit_9.png]
                                      [--tolerance 0.05]

"The answer" is a run of ours at 10x the reference's default budget (LIME:
lime_image's 1000 samples -> 10000; SHAP Partition: shap's 500 evaluations ->
5000). A run has the same answer when the Spearman rank correlation of its
superpixel weights (LIME, same SLIC segments) or of its 8x8 block sums (SHAP) with
that run is >= 0.95. Ours runs with ``tolerance`` and the 10x budget as its
maximum. Reported: evaluations, seconds, rank correlation, same answer or not.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xai_core.explainers.base import channel_sum  # noqa: E402
from xai_core.explainers.shap_partition import block_sums  # noqa: E402
from xai_core.images import load_image, preprocess  # noqa: E402
from xai_core.models import open_model  # noqa: E402
from xai_core.service import explain  # noqa: E402

SAME = 0.95
SEGMENTS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits_cnn")
    parser.add_argument("--image", default=str(ROOT / "sample_images" / "digit_9.png"))
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import shap
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    model = open_model(args.model, device="cpu")
    rgb = load_image(args.image)
    x = preprocess(rgb, model.spec)
    target = int(np.argmax(model.predict(x[None])[0]))

    def f(images):  # what the references call: [0, 1] images in, probabilities out
        batch = np.asarray(images, np.float32)[..., : model.spec.channels]
        return model.predict(batch)

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    rgb01 = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
    explain(model, rgb, "lime", {"samples": 20}, seed=0)  # warm-up, the fast path's calibration
    lime_params = {"segments": SEGMENTS, "segmentation": "slic"}
    truth = explain(model, rgb, "lime", {**lime_params, "samples": 10000}, seed=1)
    truth_w = truth.extras["segment_weights"]
    seg = SegmentationAlgorithm("slic", n_segments=SEGMENTS, compactness=10, start_label=0)

    def lime_reference():
        e = lime_image.LimeImageExplainer(random_state=0).explain_instance(
            rgb01.astype(np.float64), f, labels=(target,), top_labels=None, num_samples=1000,
            hide_color=rgb01.mean(axis=(0, 1)),  # our hide="mean": the image's mean colour
            batch_size=16, segmentation_fn=seg, random_seed=0)
        w = np.zeros(len(truth_w))
        for feature, weight in e.local_exp[target]:
            w[feature] = weight
        return w

    rows = []
    ref_w, ref_s = timed(lime_reference)
    rows.append(("lime", "lime_image, default 1000 samples", 1001, ref_s, spearmanr(ref_w, truth_w)[0]))
    ours, ours_s = timed(lambda: explain(model, rgb, "lime", {**lime_params, "samples": 10000,
                                                              "tolerance": args.tolerance}, seed=0))
    rows.append(("lime", f"ours, tolerance {args.tolerance}", ours.model_evals, ours_s,
                 spearmanr(ours.extras["segment_weights"], truth_w)[0]))

    truth = explain(model, rgb, "shap_partition", {"max_evals": 5000}, seed=1)
    truth_b = block_sums(truth.attribution).ravel()
    h, w = x.shape[:2]

    def shap_reference():
        masker = shap.maskers.Image(f"blur({h // 2},{w // 2})", x.shape)
        result = shap.Explainer(lambda b: f(b)[:, target : target + 1], masker)(x[None], max_evals=500,
                                                                                 batch_size=16, silent=True)
        return block_sums(channel_sum(np.asarray(result.values[0][..., 0]))).ravel()

    ref_b, ref_s = timed(shap_reference)
    rows.append(("shap_partition", "shap Partition, default 500 evals", 501, ref_s, spearmanr(ref_b, truth_b)[0]))
    ours, ours_s = timed(lambda: explain(model, rgb, "shap_partition", {"max_evals": 5000,
                                                                        "tolerance": args.tolerance}, seed=0))
    rows.append(("shap_partition", f"ours, tolerance {args.tolerance}", ours.model_evals, ours_s,
                 spearmanr(block_sums(ours.attribution).ravel(), truth_b)[0]))

    print(f"model {args.model}, image {Path(args.image).name}; answer = ours at 10x the reference default; "
          f"same answer: Spearman >= {SAME}")
    print(f"{'method':<16}{'run':<36}{'evals':>7}{'seconds':>9}{'rho':>7}  same answer")
    for method, run, evals, seconds, rho in rows:
        print(f"{method:<16}{run:<36}{evals:>7}{seconds:>9.2f}{rho:>7.3f}  {'yes' if rho >= SAME else 'no'}")


if __name__ == "__main__":
    main()
