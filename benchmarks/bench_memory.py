"""Peak memory of the perturbation methods against their budget, each run in a fresh
subprocess.

    python benchmarks/bench_memory.py [--model efficientnet_lite0] [--samples 1000 5000 20000] [--short]

For every configuration a child process opens the model, explains the cat photo
once at a tiny budget (so imports, the model and the fast-path engine are in
memory), resets the kernel's peak-RSS counter (/proc/self/clear_refs) and then
runs the measured explanation. Reported: the peak resident memory during that
explanation above the resident memory before it (MiB), and its wall time. Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {root!r})
from xai_core import explain, load_image, open_model

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024
model = open_model({model!r}, device="cpu")
image = load_image({image!r})
explain(model, image, {method!r}, {warm!r}, seed=0)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset VmHWM to the current RSS
before = status("VmRSS")
t = time.perf_counter()
result = explain(model, image, {method!r}, {params!r}, seed=0)
print(json.dumps({{"peak_above_mib": status("VmHWM") - before, "seconds": time.perf_counter() - t,
                  "evals": result.model_evals, "engine": result.engine}}))
"""

WARM = {"lime": {"samples": 20}, "occlusion": {"window": 112, "stride": 112}}


def measure(model: str, image: str, method: str, params: dict) -> dict:
    code = CHILD.format(root=str(ROOT), model=model, image=image, method=method,
                        warm=WARM[method], params=params)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--image", default=str(ROOT / "sample_images" / "chelsea_cat.jpg"))
    parser.add_argument("--samples", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--occlusion-window", type=int, default=160,
                        help="occlusion patch side; stride 1 then gives (224 - window + 1)^2 patches")
    parser.add_argument("--short", action="store_true",
                        help="LIME at 200 and 1000 samples, occlusion at stride 16 only (a check that it runs)")
    args = parser.parse_args()
    samples = [200, 1000] if args.short else args.samples
    runs = [("lime", {"samples": n}) for n in samples]
    runs += [("occlusion", {"window": args.occlusion_window, "stride": s}) for s in ((16,) if args.short else (16, 1))]
    print(f"{'method':<10}{'params':<40}{'evals':>8}{'peak above start (MiB)':>24}{'seconds':>10}  engine")
    table = []
    for method, params in runs:
        row = measure(args.model, args.image, method, params)
        table.append((method, params, row))
        print(f"{method:<10}{json.dumps(params):<40}{row['evals']:>8}{row['peak_above_mib']:>24.1f}"
              f"{row['seconds']:>10.1f}  {row['engine']}", flush=True)
    print("\n| method | parameters | evals | peak above start (MiB) | seconds | engine |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    for method, params, row in table:
        shown = ", ".join(f"{k} {v}" for k, v in params.items())
        print(f"| {method} | {shown} | {row['evals']} | {row['peak_above_mib']:.1f} | {row['seconds']:.1f} | "
              f"{row['engine']} |")


if __name__ == "__main__":
    main()
