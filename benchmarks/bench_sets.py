"""A whole labelled set: evaluation and Grad-CAM / IG / SHAP Gradient over every
item, locally and on a Ray cluster of 1, 2, 3 nodes on this machine, against the
model's batched floor and against pytorch-grad-cam and captum on batches of the
same size, in one run.

    python benchmarks/bench_sets.py [--items 10000] [--batch-size 64] [--steps 32] [--samples 32]
        [--threads 1 2] [--ray-nodes 1 2 3] [--methods grad_cam integrated_gradients shap_gradient]
        [--repeats 1] [--json FILE]

The set: the shipped held-out digits (sample_data/digits_test.npz, 450 images)
augmented to ``--items`` images with a fixed seed (shifts of up to one pixel, a
brightness factor, a little noise), written as an .npz and opened like any
labelled set. The model: the zoo's digits_cnn on the CPU. Every method explains
every item against its predicted class (what pytorch-grad-cam's ``targets=None``
does) through the ordinary set path (``explain_selection``: read, predict, explain,
items sharing batches of ``--batch-size`` rows).

The floors are the model's own batched passes over the already preprocessed
items, ``--batch-size`` at a time: the forward pass (evaluation), the CAM layer's
activations and gradients (Grad-CAM), the input gradients times ``--steps`` path
points (IG) or ``--samples`` samples (SHAP Gradient), timed over four rows per
item and scaled. ``vs floor`` is items/s over
the floor's items/s. The references run on batches of ``--batch-size`` items:
pytorch-grad-cam's GradCAM, captum's IntegratedGradients(n_steps) and
GradientShap(n_samples, 8 baselines), each called the way a notebook user calls
it. ``--threads`` sets torch's threads for the local rows (1 and 2 cores); each Ray
node has one CPU and runs one worker (one model replica, one thread), so N nodes
use N cores. Ours, the floor and the references run in turn in each of
``--repeats`` rounds (after a warm-up round), so they share the machine's load;
items/s are medians, ``vs floor`` the median of each round's own ratio
(evaluation, a short timing, takes at least 7 rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xai_core.inputs.images import preprocess  # noqa: E402
from xai_core.sets.data import open_set  # noqa: E402
from xai_core.sets.evaluate import evaluate  # noqa: E402
from xai_core.sets.explain import ExplainRequest, explain_selection  # noqa: E402
from xai_core.sets.model import ModelRef  # noqa: E402

DIGITS = ROOT / "sample_data" / "digits_test.npz"
GRAD_REPEATS = 4  # the gradient floor times 4 rows per item and scales to --steps / --samples rows


def augmented_set(n: int, folder: Path, seed: int = 0) -> Path:
    """n digit images from the 450 shipped ones: each a copy shifted by up to one
    pixel, scaled in brightness (0.8-1.2) and given N(0, 4) noise, fixed seed."""
    with np.load(DIGITS) as f:
        x, y = f["x"].astype(np.float32), f["y"]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(x), n)
    out = np.empty((n, *x.shape[1:]), np.uint8)
    shifts = rng.integers(-1, 2, (n, 2))
    gains = rng.uniform(0.8, 1.2, n)
    for i, (j, (dy, dx), g) in enumerate(zip(pick, shifts, gains, strict=True)):
        img = np.roll(x[j], (dy, dx), axis=(0, 1)) * g + rng.normal(0, 4, x.shape[1:])
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    path = folder / f"digits_aug_{n}.npz"
    np.savez(path, x=out, y=y[pick])
    return path


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Each round runs every one of ``runs`` once, in turn (after one warm-up round),
    so ours, the floor and the references see the same machine load; their seconds
    per round."""
    for fn in runs.values():
        fn()
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="set size (the issue's full run: 10000)")
    parser.add_argument("--full", action="store_true", help="the full 10,000-image set")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32, help="IG path points (ours and captum's)")
    parser.add_argument("--samples", type=int, default=32, help="SHAP Gradient samples (ours and captum's)")
    parser.add_argument("--methods", nargs="*", default=["grad_cam", "integrated_gradients", "shap_gradient"])
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--ray-nodes", nargs="*", type=int, default=[1, 2, 3])
    parser.add_argument("--ray-methods", nargs="*", default=["grad_cam"])
    parser.add_argument("--repeats", type=int, default=3, help="paired rounds (medians are reported)")
    parser.add_argument("--json", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    n_items = 10_000 if args.full else args.items
    bs = args.batch_size
    params = {"grad_cam": {}, "integrated_gradients": {"steps": args.steps},
              "shap_gradient": {"samples": args.samples, "background_size": 8}}
    rows: list[dict] = []

    def add(what: str, where: str, items: int, seconds: float, floor: float | None = None, **extra) -> None:
        row = {"what": what, "where": where, "items": items, "seconds": seconds, "items_per_s": items / seconds,
               **extra}
        if floor is not None and "vs_floor" not in row:
            row["vs_floor"] = row["items_per_s"] / floor
        rows.append(row)
        ratio = f"  {row['vs_floor']:.2f}x floor" if "vs_floor" in row else ""
        print(f"  {what:<34} {where:<18} {row['items_per_s']:9.1f} items/s{ratio}", file=sys.stderr, flush=True)

    def add_paired(seconds: dict[str, list[float]], floor: str, where: str, items: int,
                   rate: float = 1.0) -> None:
        """Medians of the rounds; ``vs floor`` is the median of each round's ratio to
        that round's floor (``rate``: floor items per timed floor item, 1/steps for IG)."""
        for name, times in seconds.items():
            if name == floor:
                continue
            ratios = [f / (t * rate) for f, t in zip(seconds[floor], times, strict=True)]
            add(name, where, items, statistics.median(times), None, vs_floor=statistics.median(ratios))

    with tempfile.TemporaryDirectory() as tmp:
        path = augmented_set(n_items, Path(tmp))
        model = ModelRef("digits_cnn", device="cpu", batch_size=bs).open()
        adapter = model.model
        dataset = open_set(path, model.class_names)
        x = np.stack([preprocess(dataset.read(i), adapter.spec) for i in range(len(dataset))])
        module = adapter.model.eval()
        layer = adapter.default_cam_layer()
        tensors = [adapter._tensors([x[s:s + bs]])[0] for s in range(0, len(x), bs)]
        floors: dict[tuple[str, int], float] = {}

        for threads in args.threads:
            torch.set_num_threads(threads)
            where = f"local {threads} core(s)"
            preds = np.argmax(adapter.predict(x, bs), 1)
            refs = _references(args, module, adapter, layer, tensors, preds)

            def forward(): return adapter.predict(x, bs)

            def cam_floor(preds=preds):  # one target per batch: the same cost as one per item
                for s in range(0, len(x), bs):
                    adapter.layer_activations_and_gradients(x[s:s + bs], int(preds[s]), layer)

            def grad_floor(preds=preds):  # GRAD_REPEATS rows per item, so the floor is not a short timing
                for _ in range(GRAD_REPEATS):
                    for s in range(0, len(x), bs):
                        adapter.input_gradients(x[s:s + bs], int(preds[s]), bs)

            got = paired({"floor: batched forward": forward,
                          "evaluation": lambda: evaluate(model, dataset, batch_size=bs)}, max(7, args.repeats))
            floors[("evaluation", threads)] = len(x) / statistics.median(got["floor: batched forward"])
            add("floor: batched forward", where, len(x), statistics.median(got["floor: batched forward"]))
            add_paired(got, "floor: batched forward", where, len(x))
            ev = evaluate(model, dataset, batch_size=bs)
            chosen = ev.select("all")
            for method in args.methods:
                request = ExplainRequest(method, params[method], 0, "predicted")
                floor_name = "floor: layer pass" if method == "grad_cam" else "floor: input gradients"
                rate = 1.0 if method == "grad_cam" else GRAD_REPEATS / (
                    args.steps if method == "integrated_gradients" else args.samples)
                runs = {floor_name: cam_floor if method == "grad_cam" else grad_floor,
                        method: lambda r=request, c=chosen: sum(1 for _ in explain_selection(model, dataset, c, r)),
                        **{name: fn for name, (m, fn) in refs.items() if m == method}}
                got = paired(runs, args.repeats)
                floors[(method, threads)] = len(x) / statistics.median(got[floor_name]) * rate
                add_paired(got, floor_name, where, len(x), rate)

        if args.ray_nodes:
            _ray_rows(args, add, model, dataset, params, floors, len(x))

    print(f"\ndigits_cnn on {n_items} augmented digits, batch {bs}, IG steps {args.steps}, SHAP Gradient samples "
          f"{args.samples}; each item explained against its predicted class; medians of {args.repeats} paired "
          "rounds (vs floor: the median of each round's ratio to the floor timed in the same round)")
    print("| what | where | items | seconds | items/s | vs floor |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        ratio = f"{r['vs_floor']:.2f}x" if "vs_floor" in r else ""
        print(f"| {r['what']} | {r['where']} | {r['items']} | {r['seconds']:.2f} | {r['items_per_s']:.1f} | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def _references(args, module, adapter, layer, tensors, preds) -> dict[str, tuple[str, Callable[[], object]]]:
    """name -> (the method it stands beside, one pass of it over every batch)."""
    import torch

    bs = args.batch_size
    n = sum(len(t) for t in tensors)
    targets = [torch.as_tensor(preds[s:s + bs]) for s in range(0, n, bs)]
    refs: dict[str, tuple[str, Callable[[], object]]] = {}
    if "grad_cam" in args.methods:
        from pytorch_grad_cam import GradCAM

        def grad_cam_batches() -> list:
            # its hooks stay on the layer while a GradCAM lives, recording every later forward pass
            # (ours, captum's): opened and released around each run, as its own `with` does
            with GradCAM(model=module, target_layers=[adapter._module(layer)]) as cam:
                return [cam(input_tensor=t, targets=None) for t in tensors]

        refs["pytorch-grad-cam GradCAM"] = ("grad_cam", grad_cam_batches)
    if "integrated_gradients" in args.methods:
        from captum.attr import IntegratedGradients

        ig = IntegratedGradients(module)
        refs["captum IntegratedGradients"] = ("integrated_gradients", lambda: [
            ig.attribute(t, target=y, n_steps=args.steps) for t, y in zip(tensors, targets, strict=True)])
    if "shap_gradient" in args.methods:
        from captum.attr import GradientShap

        gs = GradientShap(module)
        base = torch.zeros((8, *tensors[0].shape[1:]))
        refs["captum GradientShap"] = ("shap_gradient", lambda: [
            gs.attribute(t, baselines=base, n_samples=args.samples, target=y)
            for t, y in zip(tensors, targets, strict=True)])
    return refs


def _ray_rows(args, add, model, dataset, params, floors, n) -> None:
    """Evaluation and ``--ray-methods`` on clusters of 1, 2, 3 one-CPU nodes; the
    floor is the one-core local floor times the number of nodes."""
    import ray
    from ray.cluster_utils import Cluster

    from xai_core.sets.runners import open_engine

    for nodes in args.ray_nodes:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                                "object_store_memory": 100 * 1024**2})
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=1, object_store_memory=100 * 1024**2)
        try:
            cluster.wait_for_nodes()
            where = f"ray {nodes} node(s)"
            with open_engine("ray", model, dataset, workers=nodes, address=cluster.address) as engine:
                t = timed(lambda e=engine: evaluate(model, dataset, engine=e, batch_size=args.batch_size),
                          args.repeats)
                add("evaluation", where, n, t, floors.get(("evaluation", 1), 0) * nodes or None)
                ev = evaluate(model, dataset, engine=engine, batch_size=args.batch_size)
                chosen = ev.select("all")
                for method in args.ray_methods:
                    request = ExplainRequest(method, params[method], 0, "predicted")
                    t = timed(lambda r=request, e=engine, c=chosen: sum(1 for _ in explain_selection(
                        model, dataset, c, r, engine=e)), args.repeats)
                    add(method, where, len(chosen), t, floors.get((method, 1), 0) * nodes or None)
        finally:
            if ray.is_initialized():
                ray.shutdown()
            cluster.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
