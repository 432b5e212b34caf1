"""Time to the same answer: our budgets that stop when the answer is stable against
the reference library at its default budget.

    python benchmarks/bench_stable.py [--model digits_cnn] [--image sample_images/digit_9.png]
                                      [--table-model breast_cancer_mlp] [--row 5]
                                      [--tolerance 0.05 0.02] [--repeats 3] [--short]
                                      [--methods lime shap_partition kernel_shap]

"The answer" is a run of ours at 10x the reference's default budget with a fixed
budget (LIME: lime_image's 1000 samples -> 10000; SHAP Partition: shap's 500
evaluations -> 5000; Kernel SHAP: shap KernelExplainer's default 2M + 2048
coalitions -> 10x that, which is shap's own KernelExplainer at that budget). A run
has the same answer when the Spearman rank correlation of its superpixel weights
(LIME, same SLIC segments), of its 8x8 block sums (SHAP Partition) or of its
feature values (Kernel SHAP, the breast-cancer table's row) with that run is >=
0.95. Ours runs with each ``tolerance`` and the 10x budget as its maximum. Reported:
evaluations, seconds (median of ``repeats`` runs, ours and the reference
alternating), rank correlation, same answer or not, as a Markdown table.
``--short`` is one repeat of each (a check that it runs; the numbers are noisy).
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
from xai_core.inputs.images import load_image, preprocess  # noqa: E402
from xai_core.loading.models import open_model  # noqa: E402
from xai_core.service import explain  # noqa: E402

SAME = 0.95
SEGMENTS = 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="digits_cnn")
    parser.add_argument("--image", default=str(ROOT / "sample_images" / "digit_9.png"))
    parser.add_argument("--table-model", default="breast_cancer_mlp")
    parser.add_argument("--row", type=int, default=5, help="the table row Kernel SHAP explains")
    parser.add_argument("--tolerance", type=float, nargs="+", default=[0.05, 0.02])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="one repeat of each")
    parser.add_argument("--methods", nargs="+", default=["lime", "shap_partition", "kernel_shap"],
                        choices=["lime", "shap_partition", "kernel_shap"])
    args = parser.parse_args()
    repeats = 1 if args.short else max(1, args.repeats)
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

    def alternating(reference, ours):
        """(reference output, median s), (ours output, median s): run in turns."""
        runs = [(timed(reference), timed(ours)) for _ in range(repeats)]
        return ((runs[0][0][0], float(np.median([r[0][1] for r in runs]))),
                (runs[0][1][0], float(np.median([r[1][1] for r in runs]))))

    rgb01 = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x
    explain(model, rgb, "lime", {"samples": 20}, seed=0)  # warm-up, the fast path's calibration
    lime_params = {"segments": SEGMENTS, "segmentation": "slic"}
    if "lime" in args.methods:
        truth_w = explain(model, rgb, "lime", {**lime_params, "samples": 10000}, seed=1).extras["segment_weights"]
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
    if "lime" in args.methods:
        for i, tol in enumerate(args.tolerance):
            (ref_w, ref_s), (ours, ours_s) = alternating(
                lime_reference, lambda tol=tol: explain(model, rgb, "lime", {**lime_params, "samples": 10000,
                                                                             "tolerance": tol}, seed=0))
            if i == 0:
                rows.append(("lime", "lime_image, default 1000 samples", 1001, ref_s,
                             spearmanr(ref_w, truth_w)[0]))
            rows.append(("lime", f"ours, tolerance {tol}, max 10000", ours.model_evals, ours_s,
                         spearmanr(ours.extras["segment_weights"], truth_w)[0]))

    h, w = x.shape[:2]

    def shap_reference():
        masker = shap.maskers.Image(f"blur({h // 2},{w // 2})", x.shape)
        result = shap.Explainer(lambda b: f(b)[:, target : target + 1], masker)(x[None], max_evals=500,
                                                                                 batch_size=16, silent=True)
        return block_sums(channel_sum(np.asarray(result.values[0][..., 0]))).ravel()

    if "shap_partition" in args.methods:
        truth = explain(model, rgb, "shap_partition", {"max_evals": 5000}, seed=1)
        truth_b = block_sums(truth.attribution).ravel()
        for i, tol in enumerate(args.tolerance):
            (ref_b, ref_s), (ours, ours_s) = alternating(
                shap_reference, lambda tol=tol: explain(model, rgb, "shap_partition",
                                                        {"max_evals": 5000, "tolerance": tol}, seed=0))
            if i == 0:
                rows.append(("shap_partition", "shap Partition, default 500 evals", 501, ref_s,
                             spearmanr(ref_b, truth_b)[0]))
            rows.append(("shap_partition", f"ours, tolerance {tol}, max 5000", ours.model_evals, ours_s,
                         spearmanr(block_sums(ours.attribution).ravel(), truth_b)[0]))

    if "kernel_shap" in args.methods:
        rows += kernel_shap_rows(args, alternating)
    print(f"image model {args.model} on {Path(args.image).name}, table model {args.table_model} row {args.row}; "
          f"the answer = a fixed-budget run at 10x the reference's default; same answer: Spearman >= {SAME}; "
          f"seconds: median of {repeats}, ours and the reference alternating")
    print()
    print("| method | run | evals | seconds | rank correlation | same answer |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for method, run, evals, seconds, rho in rows:
        print(f"| {method} | {run} | {evals} | {seconds:.2f} | {rho:.3f} | {'yes' if rho >= SAME else 'no'} |")


def kernel_shap_rows(args, alternating) -> list[tuple]:
    """shap's KernelExplainer at its default budget, as a notebook calls it, against
    ours with a tolerance, on one row of the breast-cancer table."""
    import shap

    from xai_core.loading.tables import open_tabular_model
    from xai_core.tabular import explain_row, load_table

    model = open_tabular_model(args.table_model)
    data = load_table(ROOT / "sample_data" / "breast_cancer.csv", label_column="target",
                      n_features=model.n_features)
    x = data.x[args.row].astype(np.float64)
    target = int(np.argmax(model.outputs(x[None].astype(np.float32))[0]))
    default = 2 * data.n_features + 2048  # KernelExplainer's nsamples="auto"
    params = {"background_size": 50, "background": "kmeans"}

    def values(e):
        return np.array(list(e.by_feature().values()))

    explain_row(model, data, args.row, "kernel_shap", {**params, "nsamples": 100}, target=target, seed=0)  # warm-up
    truth = values(explain_row(model, data, args.row, "kernel_shap", {**params, "nsamples": 10 * default},
                               target=target, seed=1))

    def reference():
        background = shap.kmeans(data.x.astype(np.float64), 50)
        explainer = shap.KernelExplainer(lambda rows: model.target_scores(rows.astype(np.float32), target),
                                         background)
        return np.ravel(explainer.shap_values(x[None], silent=True))

    rows = []
    for i, tol in enumerate(args.tolerance):
        (ref, ref_s), (ours, ours_s) = alternating(
            reference, lambda tol=tol: explain_row(model, data, args.row, "kernel_shap",
                                                   {**params, "nsamples": 10 * default, "tolerance": tol},
                                                   target=target, seed=0))
        if i == 0:
            rows.append(("kernel_shap", f"shap KernelExplainer, default {default} coalitions", default * 50 + 51,
                         ref_s, spearmanr(ref, truth)[0]))
        rows.append(("kernel_shap", f"ours, tolerance {tol}, max {10 * default} coalitions", ours.model_evals,
                     ours_s, spearmanr(values(ours), truth)[0]))
    return rows


if __name__ == "__main__":
    main()
