"""Side-by-side timings: our explainers vs the reference libraries, in one run.

    python benchmarks/bench_image.py [--repeats 3] [--image sample_images/chelsea_cat.jpg]
                                     [--methods lime shap_partition ...] [--json out.json]

Model: EfficientNet-Lite0 (real ImageNet weights). For each method, ours and the
reference run alternately on the same photo at the same budget (samples, steps,
evaluations) and the same batch size (LIME and SHAP also at their library's
default batch size of 10); each time is the median of --repeats runs
after one warm-up. Both sides produce the same thing: the predicted class and
its attribution map (a reference that needs the class first pays a forward
pass for it, as a notebook does).

Columns: ours/reference, and ours/floor where floor = the method's model
evaluations x the model's best per-image time (forward, or forward+backward for
gradient evaluations), measured here on the same machine. Gradient-free methods
run on the fast forward path (xai_core/adapters/fast_forward.py): the engine it
chose and its calibration timings are printed per model, and their floor is that
engine's forward pass.

The second table does the same for the Keras zoo model (keras_digits_cnn, 32x32
grayscale digits) against lime_image and shap's Partition explainer, which are
framework-neutral; captum, the other references, is PyTorch-only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_zoo.pretrained import efficientnet_lite0  # noqa: E402
from xai_core.adapters.fast_forward import prepare as prepare_fast_forward  # noqa: E402
from xai_core.explainers.shap_gradient import background_set  # noqa: E402
from xai_core.inputs.images import load_image, preprocess  # noqa: E402
from xai_core.loading.models import open_model  # noqa: E402
from xai_core.service import explain  # noqa: E402

BATCH = 16
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

# ours: method -> params; the reference gets the same budget
BUDGETS = {
    "saliency": {},
    "grad_cam": {},
    "smoothgrad": {"samples": 25, "noise_level": 0.15},
    "integrated_gradients": {"steps": 50, "baseline": "black"},
    "occlusion": {"window": 28, "stride": 14, "fill": "gray"},
    "shap_gradient": {"samples": 64, "background": "blur_black", "background_size": 8},
    "lime": {"samples": 1000, "segmentation": "slic", "segments": 50, "hide": "mean"},
    "shap_partition": {"max_evals": 500, "masker": "blur", "blur_fraction": 0.5},
}


LIBRARY_BATCH = False  # --library-batch: also time LIME and SHAP at their own default batch of 10


def library_batch(name: str, fn) -> list:
    return [(name, fn)] if LIBRARY_BATCH else []


KERAS_MODEL = "keras_digits_cnn"
KERAS_BUDGETS = {
    "lime": {"samples": 1000, "segmentation": "slic", "segments": 50, "hide": "mean"},
    "shap_partition": {"max_evals": 500, "masker": "blur", "blur_fraction": 0.5},
}


def keras_references(model, spec, image01: np.ndarray):
    """lime_image and shap Partition on a plain Keras model, as a notebook calls them
    (``model.predict`` on normalised images)."""
    mean, std = spec.mean_array(), spec.std_array()
    h, w, _ = image01.shape

    def classifier_fn(images):
        gray = np.asarray(images, np.float32)[..., :1]  # lime_image hands RGB copies of a gray image
        return model.predict((gray - mean) / std, batch_size=BATCH, verbose=0)

    def lime(batch_size=BATCH):
        from lime import lime_image
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        seg = SegmentationAlgorithm("slic", n_segments=50, compactness=10, start_label=0)
        return lime_image.LimeImageExplainer(random_state=0).explain_instance(
            np.repeat(image01, 3, axis=-1).astype(np.float64), classifier_fn, top_labels=1,
            num_samples=1000, batch_size=batch_size, segmentation_fn=seg, random_seed=0)

    def shap_partition(batch_size=BATCH):
        import shap

        masker = shap.maskers.Image(f"blur({h // 2},{w // 2})", image01.shape)
        explainer = shap.Explainer(classifier_fn, masker)
        return explainer(image01[None], max_evals=500, batch_size=batch_size,
                         outputs=shap.Explanation.argsort.flip[:1], silent=True)

    return {
        "lime": [("lime_image, batch 16", lime)] + library_batch("lime_image, its default batch 10", lambda: lime(10)),
        "shap_partition": [("shap Partition blur, batch 16", shap_partition)]
        + library_batch("shap Partition blur, default 10", lambda: shap_partition(10)),
    }


class Normalised(torch.nn.Module):
    """What a notebook passes to captum / shap: [0, 1] NCHW in, normalisation inside."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model((x - MEAN) / STD)


def predicted(net, x) -> int:
    with torch.no_grad():
        return int(net(x).argmax())


def references(net, image01: np.ndarray, rgb: np.ndarray):
    """method -> list of (reference name, zero-argument callable)."""
    from captum.attr import IntegratedGradients, LayerGradCam, NoiseTunnel, Occlusion, Saliency
    from pytorch_grad_cam import GradCAM

    x = torch.from_numpy(image01).permute(2, 0, 1)[None].contiguous()
    layer = net.model._bn1  # our default Grad-CAM layer for this network

    def probs_fn(t):
        return torch.softmax(net(t), 1)

    def saliency():
        return Saliency(net).attribute(x, target=predicted(net, x), abs=True)

    def grad_cam_captum():
        cam = LayerGradCam(net, layer).attribute(x, target=predicted(net, x), relu_attributions=True)
        return torch.nn.functional.interpolate(cam, size=x.shape[2:], mode="bicubic")

    def grad_cam_pgc():
        with GradCAM(model=net, target_layers=[layer]) as cam:
            return cam(input_tensor=x, targets=None)  # None: the predicted class

    def smoothgrad():
        return NoiseTunnel(Saliency(net)).attribute(
            x, nt_type="smoothgrad", nt_samples=25, stdevs=0.15, nt_samples_batch_size=BATCH,
            target=predicted(net, x), abs=True)

    def integrated_gradients():
        return IntegratedGradients(net).attribute(
            x, baselines=torch.zeros_like(x), target=predicted(net, x), n_steps=50,
            internal_batch_size=BATCH, return_convergence_delta=True)

    def occlusion():
        with torch.no_grad():
            return Occlusion(probs_fn).attribute(
                x, sliding_window_shapes=(3, 28, 28), strides=(3, 14, 14), baselines=0.5,
                target=predicted(net, x), perturbations_per_eval=BATCH)

    def shap_gradient():
        import shap

        bg = torch.from_numpy(background_set(image01, "blur_black", 8, np.random.default_rng(0))).permute(0, 3, 1, 2)
        explainer = shap.GradientExplainer(net, bg.contiguous(), batch_size=BATCH)
        return explainer.shap_values(x, nsamples=64, ranked_outputs=1, rseed=0)

    def lime(batch_size=BATCH):
        from lime import lime_image
        from lime.wrappers.scikit_image import SegmentationAlgorithm

        def classifier_fn(images):
            batch = torch.from_numpy(np.asarray(images, np.float32)).permute(0, 3, 1, 2)
            with torch.no_grad():
                return probs_fn(batch).numpy()

        seg = SegmentationAlgorithm("slic", n_segments=50, compactness=10, start_label=0)
        return lime_image.LimeImageExplainer(random_state=0).explain_instance(
            image01.astype(np.float64), classifier_fn, top_labels=1, num_samples=1000,
            batch_size=batch_size, segmentation_fn=seg, random_seed=0)

    def shap_partition(batch_size=BATCH):
        import shap

        def f(images):
            batch = torch.from_numpy(np.asarray(images, np.float32)).permute(0, 3, 1, 2)
            with torch.no_grad():
                return probs_fn(batch).numpy()

        masker = shap.maskers.Image("blur(112,112)", image01.shape)
        explainer = shap.Explainer(f, masker)
        return explainer(image01[None], max_evals=500, batch_size=batch_size,
                         outputs=shap.Explanation.argsort.flip[:1], silent=True)

    return {
        "saliency": [("captum Saliency", saliency)],
        "grad_cam": [("captum LayerGradCam", grad_cam_captum), ("pytorch-grad-cam GradCAM", grad_cam_pgc)],
        "smoothgrad": [("captum NoiseTunnel(Saliency)", smoothgrad)],
        "integrated_gradients": [("captum IntegratedGradients", integrated_gradients)],
        "occlusion": [("captum Occlusion", occlusion)],
        "shap_gradient": [("shap GradientExplainer", shap_gradient)],
        "lime": [("lime_image, batch 16", lime)] + library_batch("lime_image, its default batch 10", lambda: lime(10)),
        "shap_partition": [("shap Partition blur, batch 16", shap_partition)]
        + library_batch("shap Partition blur, default 10", lambda: shap_partition(10)),
    }


def per_image_floor(adapter, image01: np.ndarray, repeats: int = 3) -> tuple[float, float, float]:
    """Best per-image time of our adapter's forward on the fast-path engine, of the
    framework's own forward, and of the framework's forward+backward (minimum over
    batch sizes 1, 8, 16 of time / batch)."""
    best = {"engine": float("inf"), "framework": float("inf"), "backward": float("inf")}
    calls = {"engine": lambda b, bs: adapter.predict(b, bs),
             "framework": lambda b, bs: adapter.logits_or_probs(b, bs),
             "backward": lambda b, bs: adapter.input_gradients(b, 0, bs)}
    for bs in (1, 8, 16):
        batch = np.repeat(image01[None], bs, axis=0)
        for key, call in calls.items():
            call(batch, bs)
            for _ in range(repeats):
                t = time.perf_counter()
                call(batch, bs)
                best[key] = min(best[key], (time.perf_counter() - t) / bs)
    return best["engine"], best["framework"], best["backward"]


def floor_seconds(method: str, evals: int, single_pass: bool, t_f: float, t_fb: float) -> float:
    if method in ("occlusion", "lime", "shap_partition"):
        return evals * t_f
    if single_pass:
        return evals * t_fb
    return (evals - 1) * t_fb + t_f  # one prediction forward, the rest with gradients


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def run_table(title: str, adapter, rgb, refs, budgets: dict, methods: list[str], repeats: int,
              floors: tuple[float, float]) -> list[dict]:
    from xai_core.explainers import get_explainer

    t_f, t_fb = floors
    print(f"\n{title}")
    header = f"{'method':<22}{'evals':>6}{'ours s':>9}  {'reference':<33}{'ref s':>8}{'ours/ref':>10}{'ours/floor':>11}  engine"
    print(header)
    print("-" * len(header))
    rows = []
    for method in methods:
        if method not in budgets or method not in refs:
            continue
        params = budgets[method]
        explainer = get_explainer(method)

        def ours(method=method, params=params):
            return explain(adapter, rgb, method, params, seed=0, batch_size=BATCH)

        result = ours()  # warm-up, and the evaluation count
        for _, ref in refs[method]:
            ref()
        ours_times: list[float] = []
        ref_times: dict[str, list[float]] = {name: [] for name, _ in refs[method]}
        for r in range(repeats):
            order = [("ours", ours)] + refs[method]
            if r % 2:
                order = order[::-1]
            for name, fn in order:
                (ours_times if name == "ours" else ref_times[name]).append(timed(fn))
        ours_s = statistics.median(ours_times)
        floor = floor_seconds(method, result.model_evals, explainer.single_pass, t_f, t_fb)
        for name, times in ref_times.items():
            ref_s = statistics.median(times)
            row = {"model": adapter.name, "method": method, "evals": result.model_evals, "ours_s": ours_s,
                   "reference": name, "reference_s": ref_s, "ours_over_reference": ours_s / ref_s,
                   "ours_over_floor": ours_s / floor, "engine": result.engine}
            rows.append(row)
            print(f"{method:<22}{result.model_evals:>6}{ours_s:>9.3f}  {name:<33}{ref_s:>8.3f}"
                  f"{ours_s / ref_s:>9.2f}x{ours_s / floor:>10.2f}x  {result.engine}", flush=True)
    return rows


def print_markdown(rows: list[dict]) -> None:
    """The README's tables, one per model."""
    for model in dict.fromkeys(r["model"] for r in rows):
        print(f"\n{model}:\n")
        print("| method | evals | ours (s) | reference | reference (s) | ours/reference | ours/floor | engine |")
        print("| --- | ---: | ---: | --- | ---: | ---: | ---: | --- |")
        for r in rows:
            if r["model"] == model:
                print(f"| {r['method']} | {r['evals']} | {r['ours_s']:.3f} | {r['reference']} | "
                      f"{r['reference_s']:.3f} | {r['ours_over_reference']:.2f}x | {r['ours_over_floor']:.2f}x | "
                      f"{r['engine']} |")


def describe_model(adapter, image01: np.ndarray) -> tuple[float, float, dict]:
    """Calibrate the fast path on the photo, print its choice and the floors."""
    fast = prepare_fast_forward(adapter, image01)
    t_f, t_frame, t_fb = per_image_floor(adapter, image01)
    timings = ", ".join(f"{k} {v:.2f}" for k, v in fast.ms_per_image.items())
    print(f"{adapter.name}: fast path engine {fast.engine} (calibration ms/image: {timings})")
    print(f"  floor: forward on {fast.engine} {t_f * 1000:.2f} ms/image, on {adapter.framework} "
          f"{t_frame * 1000:.2f} ms/image, forward+backward {t_fb * 1000:.2f} ms/image")
    return t_f, t_fb, {"model": adapter.name, "engine": fast.engine, "calibration_ms_per_image": fast.ms_per_image,
                       "floor_forward_s": t_f, "floor_framework_forward_s": t_frame,
                       "floor_forward_backward_s": t_fb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=str(ROOT / "sample_images" / "chelsea_cat.jpg"))
    parser.add_argument("--digit", default=str(ROOT / "sample_images" / "digit_9.png"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--short", action="store_true", help="one timed run each (a check that it runs; noisy)")
    parser.add_argument("--methods", nargs="+", default=list(BUDGETS))
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras table")
    parser.add_argument("--only-keras", action="store_true", help="only the Keras table")
    parser.add_argument("--library-batch", action="store_true",
                        help="also time lime_image and shap Partition at their default batch of 10")
    parser.add_argument("--json", help="also write the tables as JSON here")
    args = parser.parse_args()
    if args.short:
        args.repeats = 1
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    global LIBRARY_BATCH
    LIBRARY_BATCH = args.library_batch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {BATCH}; "
          f"median of {args.repeats} after a warm-up; load: {os.getloadavg()}")

    models, rows = [], []
    if not args.only_keras:
        rgb = load_image(args.image)
        ours_model = open_model("efficientnet_lite0", device="cpu", batch_size=BATCH)
        ref_net = Normalised(efficientnet_lite0().eval()).eval()  # the user's plain model, no tuning
        image01 = preprocess(rgb, ours_model.spec)
        t_f, t_fb, model_info = describe_model(ours_model, image01)
        models.append(model_info)
        rows += run_table(f"EfficientNet-Lite0, {Path(args.image).name}", ours_model, rgb,
                          references(ref_net, image01, rgb), BUDGETS, args.methods, args.repeats, (t_f, t_fb))
    if not args.no_keras:
        digit = load_image(args.digit)
        keras_ours = open_model(KERAS_MODEL, device="cpu", batch_size=BATCH)
        keras_plain = open_model(KERAS_MODEL, device="cpu").model  # a separate copy for the references
        digit01 = preprocess(digit, keras_ours.spec)
        k_f, k_fb, info = describe_model(keras_ours, digit01)
        models.append(info)
        rows += run_table(f"{KERAS_MODEL} (Keras), {Path(args.digit).name}", keras_ours, digit,
                          keras_references(keras_plain, keras_ours.spec, digit01), KERAS_BUDGETS,
                          args.methods, args.repeats, (k_f, k_fb))
    print(f"\nload average at the end: {os.getloadavg()}")
    print_markdown(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"models": models, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
