"""Transformer methods side by side with the reference libraries, in one run.

    python benchmarks/bench_transformers.py [--repeats 5] [--threads 2] [--json out.json]

Models (built here, seed 0, untrained but with a random non-zero head so every
gradient is non-zero; no download): a ViT-Tiny (12 blocks, 3 heads, width 192,
16 x 16 patches, 224 x 224 input) from timm, and the same configuration from
torchvision (torchcam's LeGrad accepts torchvision's VisionTransformer only).

Rows (each side produces the map of the predicted class from a 224 x 224 photo;
times are medians of --repeats rounds after one warm-up, ours and the
reference called in turn in each round, same process, same threads):

* grad_cam: ours on ``blocks.11.norm1`` vs pytorch-grad-cam's ``GradCAM`` with
  the ``reshape_transform`` its ViT tutorial gives, on the same layer;
* attention_rollout: ours vs the notebook implementation everyone copies
  (jacobgil/vit-explain: hooks on each block's ``attn_drop``, fused attention
  off, the product in torch; no library ships rollout);
* legrad: ours vs ``torchcam.methods.LeGrad`` on the torchvision ViT;
* transformer_attribution (Chefer et al.): ours only, against the floor.

Columns: ours/reference, ours/floor (floor = one forward + backward pass of the
model, the least a gradient method can cost), and the largest difference
between the two maps on the patch grid (a check that both compute the same).
"""

from __future__ import annotations

import argparse
import json
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
from xai_core.types import IMAGENET_MEAN, IMAGENET_STD, ImageSpec, XaiError  # noqa: E402

SPEC = ImageSpec(size=(224, 224))
GRID = 14
LAYER = "blocks.11.norm1"


def timm_vit():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10).eval()
    torch.nn.init.normal_(model.head.weight, std=0.5)
    return model


def torchvision_vit():
    from torchvision.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(image_size=224, patch_size=16, num_layers=12, num_heads=3, hidden_dim=192,
                              mlp_dim=768, num_classes=10).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.5)
    return model


def as_tensor(image01: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(image01).permute(2, 0, 1)[None]
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def reshape_transform(tensor, height=GRID, width=GRID):
    """pytorch-grad-cam's ViT tutorial: drop the class token, tokens -> N x C x h x w."""
    result = tensor[:, 1:, :].reshape(tensor.size(0), height, width, tensor.size(2))
    return result.transpose(2, 3).transpose(1, 2)


def grad_cam_reference(model, x):
    from pytorch_grad_cam import GradCAM

    def run():
        with GradCAM(model=model, target_layers=[model.blocks[-1].norm1],
                     reshape_transform=reshape_transform) as cam:
            return cam(input_tensor=x, targets=None)[0]  # the predicted class, min-max normalised, upsampled
    return run


def rollout_reference(model, x):
    """jacobgil/vit-explain's VITAttentionRollout (mean fusion, discard 0), with its
    row normalisation written as the paper has it (keepdim)."""
    def run():
        found = []
        hooks = [blk.attn.attn_drop.register_forward_hook(lambda m, i, o: found.append(o)) for blk in model.blocks]
        fused = [blk.attn.fused_attn for blk in model.blocks]
        for blk in model.blocks:
            blk.attn.fused_attn = False
        try:
            with torch.no_grad():
                model(x)
        finally:
            for h, blk, f in zip(hooks, model.blocks, fused, strict=True):
                h.remove()
                blk.attn.fused_attn = f
        result = torch.eye(found[0].size(-1))
        with torch.no_grad():
            for attention in found:
                a = attention.mean(dim=1)[0]
                a = (a + torch.eye(a.size(-1))) / 2
                a = a / a.sum(dim=-1, keepdim=True)
                result = a @ result
        return result[0, 1:].reshape(GRID, GRID).numpy()
    return run


def legrad_reference(model, x):
    from torchcam.methods import LeGrad

    def run():
        with LeGrad(model, list(model.encoder.layers)) as extractor:
            scores = model(x)
            return extractor(int(scores[0].argmax()), scores)[0][0].detach().numpy()
    return run


def floor(model, x):
    def run():
        x.requires_grad_(True)
        out = model(x)
        out[0, int(out[0].argmax())].backward()
        x.requires_grad_(False)
        x.grad = None
    return run


def timed(fn, repeats: int) -> tuple[float, object]:
    return alternating([fn], repeats)[0]


def alternating(fns, repeats: int) -> list[tuple[float, object]]:
    """Each function once as a warm-up, then ``repeats`` rounds calling each in turn
    (so a busy machine slows both sides alike): (median seconds, last result) each."""
    results = [fn() for fn in fns]
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [(statistics.median(t), r) for t, r in zip(times, results, strict=True)]


def normalised(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64)
    a = a - a.min()
    return a / (a.max() + 1e-8)


def grad_cam_as_reference(exp) -> np.ndarray:
    """Our Grad-CAM's patch-grid map brought to the input size as pytorch-grad-cam
    does (min-max normalised, cv2 bilinear, then min-max normalised again after its
    mean over target layers), so the two maps compare like for like (ours
    upsamples bicubically and leaves the values as they are)."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    once = scale_cam_image(np.asarray(exp.extras["cam"], np.float32)[None], (224, 224))
    return scale_cam_image(np.maximum(once, 0))[0]


def ours(adapter, image, method, params=None, layer=None):
    def run():
        return explain(adapter, image, method, params, layer=layer)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image", default=str(ROOT / "sample_images" / "chelsea_cat.jpg"))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    image = load_image(args.image)
    x01 = preprocess(image, SPEC)
    x = as_tensor(x01)
    tm, tv = timm_vit(), torchvision_vit()
    timm_adapter = TorchAdapter(tm, SPEC, device="cpu")
    tv_adapter = TorchAdapter(tv, SPEC, device="cpu")
    floors = {"timm": timed(floor(tm, x.clone()), args.repeats)[0],
              "torchvision": timed(floor(tv, x.clone()), args.repeats)[0]}

    rows = []

    def row(method, model, mine, reference_name, reference, compare):
        try:
            exp = mine()
        except XaiError as exc:
            exp = None
            print(f"{method}: ours refused: {exc}", flush=True)
        fns = ([mine] if exp is not None else []) + ([reference] if reference else [])
        timings = alternating(fns, args.repeats)
        ours_s, exp = timings.pop(0) if exp is not None else (None, None)
        ref_s, ref = timings.pop(0) if reference else (None, None)
        diff = None
        if exp is not None and ref is not None:
            diff = float(np.abs(compare(exp) - normalised(ref)).max())
        rows.append({"method": method, "model": model, "ours_s": ours_s, "reference": reference_name,
                     "reference_s": ref_s, "floor_s": floors[model], "max_map_difference": diff})

    row("grad_cam", "timm", ours(timm_adapter, image, "grad_cam", layer=LAYER),
        "pytorch-grad-cam GradCAM + reshape_transform", grad_cam_reference(tm, x),
        grad_cam_as_reference)
    row("attention_rollout", "timm", ours(timm_adapter, image, "attention_rollout"),
        "vit-explain rollout (notebook code)", rollout_reference(tm, x),
        lambda e: normalised(e.extras["grid"]))
    row("legrad", "torchvision", ours(tv_adapter, image, "legrad"),
        "torchcam.methods.LeGrad", legrad_reference(tv, x), lambda e: normalised(e.extras["grid"]))
    row("transformer_attribution", "timm", ours(timm_adapter, image, "transformer_attribution"),
        "", None, None)

    print(f"\nViT-Tiny 224x224, {args.threads} threads, median of {args.repeats} "
          f"(torch {torch.__version__}); floor = forward + backward")
    print(f"{'method':<25}{'model':<12}{'ours s':>9}{'ref s':>9}{'ours/ref':>10}{'ours/floor':>12}"
          f"{'max diff':>10}  reference")
    for r in rows:
        def fmt(v, spec):
            return format(v, spec) if v is not None else format("-", f">{spec.split('.')[0]}")
        ratio = r["ours_s"] / r["reference_s"] if r["ours_s"] and r["reference_s"] else None
        vs_floor = r["ours_s"] / r["floor_s"] if r["ours_s"] else None
        print(f"{r['method']:<25}{r['model']:<12}{fmt(r['ours_s'], '9.4f')}{fmt(r['reference_s'], '9.4f')}"
              f"{fmt(ratio, '10.2f')}{fmt(vs_floor, '12.2f')}{fmt(r['max_map_difference'], '10.1e')}  "
              f"{r['reference']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "floors": floors}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
