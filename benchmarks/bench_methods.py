"""The new methods against their references, at equal budgets, in one run.

    python benchmarks/bench_methods.py [--model resnet18] [--size 112] [--runs 3] [--masks 500] [--batch 32]
        [--layer NAME] [--only METHOD ...]

Model: a torchvision architecture (``--model``, default resnet18) with random weights
(seed 0, 1000 classes) at ``--size`` x ``--size``, on the CPU; the CAMs' layer is
``--layer`` (default: the one the dashboard offers first for that model). Each method is timed through ``xai_core``'s
``explain`` (preprocessing, the target's prediction and the fast forward engine
included) and its reference as a notebook user calls it, on the same layer, target
and budget (channels, masks, batch size), alternating ours and the reference in
each round; the table gives median seconds and ours / reference.

References: pytorch-grad-cam (HiResCAM, LayerCAM, XGradCAM, EigenCAM, ScoreCAM,
AblationCAM, GradCAM), zennit (composite + canonizer + Gradient attributor), and
for RISE the paper's algorithm written the straightforward PyTorch way (mask by
mask bilinear upsampling with skimage, the masked normalised batch through the
model, softmax, one matrix product), as no maintained PyTorch package ships RISE.
Goals (issue 19): Score-CAM and RISE <= 0.4x, gradient CAMs and LRP <= 1.0x.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xai_core.adapters.torch import TorchAdapter  # noqa: E402
from xai_core.inputs.images import load_image, preprocess  # noqa: E402
from xai_core.service import explain  # noqa: E402
from xai_core.types import ImageSpec  # noqa: E402

GRADIENT_CAMS = {"grad_cam": "GradCAM", "hires_cam": "HiResCAM", "layer_cam": "LayerCAM", "xgrad_cam": "XGradCAM",
                 "eigen_cam": "EigenCAM"}
FORWARD_CAMS = {"score_cam": "ScoreCAM", "ablation_cam": "AblationCAM"}


def normalised(adapter, x01: np.ndarray) -> torch.Tensor:
    spec = adapter.spec
    mean = torch.tensor(spec.mean_array()).view(1, -1, 1, 1)
    std = torch.tensor(spec.std_array()).view(1, -1, 1, 1)
    return ((torch.from_numpy(x01).permute(2, 0, 1)[None] - mean) / std).float()


def grad_cam_reference(adapter, x, cls_name, layer, target, batch):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    def run():
        with getattr(pytorch_grad_cam, cls_name)(model=adapter.model, target_layers=[adapter.module(layer)]) as cam:
            if hasattr(cam, "batch_size"):
                cam.batch_size = batch
            return cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
    return run


def zennit_reference(adapter, x, composite_name, target):
    from zennit.attribution import Gradient
    from zennit.composites import EpsilonGammaBox, EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    spec = adapter.spec
    mean = torch.tensor(spec.mean_array()).view(1, -1, 1, 1)
    std = torch.tensor(spec.std_array()).view(1, -1, 1, 1)

    def run():
        if composite_name == "epsilon_gamma_box":
            composite = EpsilonGammaBox(low=((0 - mean) / std).expand_as(x), high=((1 - mean) / std).expand_as(x),
                                        canonizers=[ResNetCanonizer()])
        else:
            composite = EpsilonPlusFlat(canonizers=[ResNetCanonizer()])
        with Gradient(model=adapter.model, composite=composite,
                      attr_output=lambda out: torch.eye(out.shape[1])[[target]] * out) as attributor:
            return attributor(x.clone().requires_grad_(True))[1]
    return run


def rise_reference(adapter, x, n, s, p, batch, target, seed):
    """The paper's RISE in plain PyTorch: masks upsampled one by one (skimage, bilinear,
    (s + 1) cells, random shift), the masked normalised images through the model in
    batches, softmax, saliency = probabilities^T masks / (N p)."""
    from skimage.transform import resize

    def run():
        rng = np.random.default_rng(seed)
        _, _, h, w = x.shape
        ch, cw = int(np.ceil(h / s)), int(np.ceil(w / s))
        grids = (rng.random((n, s, s)) < p).astype(np.float32)
        masks = np.empty((n, h, w), np.float32)
        for i in range(n):
            dy, dx = rng.integers(0, ch), rng.integers(0, cw)
            masks[i] = resize(grids[i], ((s + 1) * ch, (s + 1) * cw), order=1, mode="reflect",
                              anti_aliasing=False)[dy:dy + h, dx:dx + w]
        m = torch.from_numpy(masks)[:, None]
        probs = []
        with torch.no_grad():
            for i in range(0, n, batch):
                probs.append(torch.softmax(adapter.model(m[i:i + batch] * x), dim=1))
        probs = torch.cat(probs)
        return (probs[:, target] @ m.view(n, -1)).view(h, w) / (n * p)
    return run


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--masks", type=int, default=500, help="RISE masks (both sides)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (both sides)")
    ap.add_argument("--model", default="resnet18", help="a torchvision architecture (random weights)")
    ap.add_argument("--layer", help="the CAMs' layer (default: the dashboard's first choice)")
    ap.add_argument("--only", nargs="*", help="method names to run (default: all)")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    import torchvision

    model = getattr(torchvision.models, args.model)(weights=None, num_classes=1000).eval()
    adapter = TorchAdapter(model, ImageSpec((args.size, args.size)), name=args.model, device="cpu")
    args.layer = args.layer or adapter.default_cam_layer()
    image = load_image(ROOT / "sample_images" / "chelsea_cat.jpg")
    x01 = preprocess(image, adapter.spec)
    x = normalised(adapter, x01)
    target = 3
    cases = []
    for name, ref in {**GRADIENT_CAMS, **FORWARD_CAMS}.items():
        cases.append((name, f"pytorch-grad-cam {ref}", dict(layer=args.layer, batch_size=args.batch),
                      grad_cam_reference(adapter, x, ref, args.layer, target, args.batch)))
    for comp in ("epsilon_plus_flat", "epsilon_gamma_box"):
        cases.append((f"lrp:{comp}", f"zennit {comp}", dict(params={"composite": comp}),
                      zennit_reference(adapter, x, comp, target)))
    cases.append(("rise", f"RISE in PyTorch ({args.masks} masks)",
                  dict(params={"masks": args.masks, "centre": False, "fill": "black"}, batch_size=args.batch),
                  rise_reference(adapter, x, args.masks, 7, 0.5, args.batch, target, 0)))
    if args.only:
        cases = [c for c in cases if c[0].split(":")[0] in args.only]

    print(f"{args.model} (random weights), layer {args.layer}, {args.size}x{args.size}, CPU threads {torch.get_num_threads()}, "
          f"batch {args.batch}, median of {args.runs} runs (seconds)")
    print(f"{'method':28s} {'ours':>8s} {'reference':>10s} {'ratio':>7s}  reference")
    for name, ref_name, kw, ref in cases:
        ours_run = functools.partial(explain, adapter, image, name.split(":")[0], kw.get("params", {}),
                                     target=target, **{k: v for k, v in kw.items() if k != "params"})
        ours_run(), ref()  # warm-up (fast forward export and calibration, first-call costs)
        ours, theirs = [], []
        for _ in range(args.runs):
            ours.append(timed(ours_run))
            theirs.append(timed(ref))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{name:28s} {a:8.3f} {b:10.3f} {a / b:7.2f}x  {ref_name}", flush=True)


if __name__ == "__main__":
    main()
