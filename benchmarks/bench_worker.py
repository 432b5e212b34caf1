"""The confined model worker's overhead: the same model file explained in-process
and through the worker, alternately, on the same photo and budget.

    python benchmarks/bench_worker.py [--repeats 3] [--json out.json]

Model: EfficientNet-Lite0 (ImageNet weights, 224x224) saved as a ``.pt2``
torch.export program, i.e. a file that carries code and so runs in the worker.
Cold start: open_model(file) in a fresh worker until the adapter is ready (worker
process start + confinement + imports + load + probe). Per method: median of
--repeats runs after one warm-up on each side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model_zoo.pretrained import efficientnet_lite0  # noqa: E402
from xai_core.inputs.images import load_image  # noqa: E402
from xai_core.loading.models import open_model  # noqa: E402
from xai_core.service import explain  # noqa: E402
from xai_core.worker import sandbox  # noqa: E402
from xai_core.worker.client import close_all  # noqa: E402

CASES = [("lime", {"samples": 500}), ("integrated_gradients", {"steps": 50})]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--image", default=str(ROOT / "sample_images" / "chelsea_cat.jpg"))
    parser.add_argument("--json")
    args = parser.parse_args()
    image = load_image(args.image)
    folder = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    path = folder / "lite0.pt2"
    module = efficientnet_lite0().eval()
    torch.export.save(torch.export.export(module, (torch.zeros(1, 3, 224, 224),)), str(path))
    print(f"protection: {sandbox.detect().mechanism}; torch threads in-process: {torch.get_num_threads()}")

    colds, starts, loads, local_loads = [], [], [], []
    for _ in range(args.repeats):
        close_all()
        start = time.perf_counter()
        remote = open_model(path)
        colds.append(time.perf_counter() - start)
        starts.append(remote._worker.timings["start_s"])
        loads.append(remote._worker.timings["load_s"])
        start = time.perf_counter()
        local = open_model(path, engine="inprocess", trust_pickle=True)
        local_loads.append(time.perf_counter() - start)
    med = statistics.median
    rows = [{"case": "cold start", "worker_total_s": med(colds), "worker_process_ready_s": med(starts),
             "worker_model_load_s": med(loads), "inprocess_model_load_s": med(local_loads)}]
    print(f"cold start (median of {args.repeats}): worker process ready {med(starts):.2f} s, model load in it "
          f"{med(loads):.2f} s, total {med(colds):.2f} s; the same load in-process {med(local_loads):.2f} s")
    for method, params in CASES:
        times = {"inprocess": [], "worker": []}
        for _side, model in (("inprocess", local), ("worker", remote)):  # warm-up
            explain(model, image, method, params, seed=0)
        for _ in range(args.repeats):
            for side, model in (("inprocess", local), ("worker", remote)):
                start = time.perf_counter()
                explain(model, image, method, params, seed=0)
                times[side].append(time.perf_counter() - start)
        a, b = statistics.median(times["inprocess"]), statistics.median(times["worker"])
        rows.append({"case": f"{method} {params}", "inprocess_s": a, "worker_s": b, "ratio": b / a,
                     "runs": times})
        print(f"{method:22s} {params}  in-process {a:.2f} s  worker {b:.2f} s  worker/in-process {b / a:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
