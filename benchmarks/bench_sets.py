"""Labelled sets: items per second for evaluation and for each method, local and on Ray.

    python benchmarks/bench_sets.py [--items 2000] [--explain 10] [--methods saliency ...]
        [--ray-workers 1 2] [--repeats 3] [--json FILE]

The set is the shipped held-out digits (sample_data/digits_test.npz) tiled to
``--items`` items, the model the zoo's digits_cnn. Evaluation is timed against the
model's batched forward floor: the best time of ``adapter.predict`` on the already
decoded and preprocessed inputs at the same batch size (so ``eval/floor`` is what
reading, decoding, preprocessing and bookkeeping add). Each method explains the
``--explain`` worst misclassified items against every class (one item = 10 maps).
Ray runs start a local Ray instance with 1 and 2 workers (one model replica each);
the instance's start-up is not timed. Medians of ``--repeats`` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
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


def tiled_set(n: int, folder: Path) -> Path:
    with np.load(DIGITS) as f:
        x, y = f["x"], f["y"]
    reps = -(-n // len(x))
    path = folder / f"digits_{n}.npz"
    np.savez(path, x=np.tile(x, (reps, 1, 1))[:n], y=np.tile(y, reps)[:n])
    return path


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--explain", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=["saliency", "grad_cam", "integrated_gradients",
                                                          "shap_gradient", "occlusion"])
    parser.add_argument("--ray-workers", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    rows: list[dict] = []

    def add(row: dict) -> None:
        rows.append(row)
        print(f"  {row['what']:<22} {row['engine']:<6} {row['workers']} worker(s)  {row['seconds']:.3f} s  "
              f"{row['items_per_s']:.1f} items/s", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        path = tiled_set(args.items, Path(tmp))
        model = ModelRef("digits_cnn", device="cpu", batch_size=args.batch_size).open()
        dataset = open_set(path, model.class_names)
        x = np.stack([preprocess(dataset.read(i), model.model.spec) for i in range(len(dataset))])
        floor = min(median_time(lambda: model.model.predict(x, batch_size=args.batch_size), 1)
                    for _ in range(args.repeats))
        add({"what": "forward floor", "engine": "local", "workers": 1, "items": len(x),
                     "seconds": floor, "items_per_s": len(x) / floor})
        ev_time = median_time(lambda: evaluate(model, dataset, batch_size=args.batch_size), args.repeats)
        add({"what": "evaluation", "engine": "local", "workers": 1, "items": len(x), "seconds": ev_time,
                     "items_per_s": len(x) / ev_time, "vs_floor": ev_time / floor})
        evaluation = evaluate(model, dataset, batch_size=args.batch_size)
        chosen = evaluation.select("misclassified", top=args.explain)

        def explain_all(method, engine=None):
            request = ExplainRequest(method, {}, 0, "all")
            return lambda: list(explain_selection(model, dataset, chosen, request, engine=engine, chunk_size=1))

        for method in args.methods:
            t = median_time(explain_all(method), args.repeats)
            add({"what": method, "engine": "local", "workers": 1, "items": len(chosen), "seconds": t,
                         "items_per_s": len(chosen) / t})
        if args.ray_workers:
            from xai_core.sets.runners import open_engine

            for workers in args.ray_workers:
                with open_engine("ray", model, dataset, workers=workers) as engine:
                    t = median_time(lambda e=engine: evaluate(model, dataset, engine=e, batch_size=args.batch_size),
                                    args.repeats)
                    add({"what": "evaluation", "engine": "ray", "workers": workers, "items": len(x),
                                 "seconds": t, "items_per_s": len(x) / t, "vs_floor": t / floor})
                    for method in args.methods:
                        t = median_time(explain_all(method, engine), args.repeats)
                        add({"what": method, "engine": "ray", "workers": workers, "items": len(chosen),
                                     "seconds": t, "items_per_s": len(chosen) / t})

    print(f"digits_cnn, {args.items} items, batch {args.batch_size}; methods explain {args.explain} items "
          "against all 10 classes; median of", args.repeats)
    print("| what | engine | workers | items | seconds | items/s | vs floor |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        ratio = f"{r['vs_floor']:.2f}x" if "vs_floor" in r else ""
        print(f"| {r['what']} | {r['engine']} | {r['workers']} | {r['items']} | {r['seconds']:.3f} | "
              f"{r['items_per_s']:.1f} | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
