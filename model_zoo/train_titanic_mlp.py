"""Train the zoo's Titanic-style MLP (captum's Titanic tutorial network) on a
synthetic passenger table (reproducible, no download).

    python -m model_zoo.train_titanic_mlp

The table: 1309 passengers drawn with seed 0 from distributions close to the real
Titanic list (class, sex, age, siblings/spouses, parents/children, fare by class,
port), survival drawn from a logistic rule in which sex and class matter most. The
12 features are captum's tutorial's: age, sibsp, parch, fare, female, male,
embark_C, embark_Q, embark_S, class_1, class_2, class_3. Writes
model_zoo/weights/titanic_mlp.pt (state_dict of architecture ``titanic_mlp``),
titanic_mlp.json (labels, feature names, seed, test accuracy) and
sample_data/titanic_synthetic.csv (the 200 test rows, label column ``survived``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model_zoo.architectures import TitanicMLP

SEED = 0
PASSENGERS = 1309
TEST_ROWS = 200
EPOCHS = 200
FEATURES = ["age", "sibsp", "parch", "fare", "female", "male", "embark_C", "embark_Q", "embark_S",
            "class_1", "class_2", "class_3"]
LABEL_COLUMN = "survived"
OUT = Path(__file__).resolve().parent / "weights"
SAMPLE_CSV = Path(__file__).resolve().parents[1] / "sample_data" / "titanic_synthetic.csv"


def passengers(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(features N x 12 float32, survived N int64), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    n = PASSENGERS
    klass = rng.choice([1, 2, 3], size=n, p=[0.25, 0.21, 0.54])
    female = rng.random(n) < 0.36
    age = np.clip(rng.normal(29.9, 14.4, n), 0.4, 80).round(1)
    sibsp = np.minimum(rng.poisson(0.5, n), 8)
    parch = np.minimum(rng.poisson(0.4, n), 6)
    fare = np.exp(rng.normal(np.choose(klass - 1, [4.1, 2.9, 2.2]), 0.5)).round(2)
    port = rng.choice(3, size=n, p=[0.19, 0.09, 0.72])  # C, Q, S
    logit = (-0.3 + 2.6 * female - 1.0 * (klass == 2) - 2.1 * (klass == 3) - 0.035 * (age - 30)
             - 0.35 * sibsp + 0.004 * fare + 0.4 * (port == 0))
    survived = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    x = np.column_stack([age, sibsp, parch, fare, female, ~female, port == 0, port == 1, port == 2,
                         klass == 1, klass == 2, klass == 3]).astype(np.float32)
    return x, survived


def main() -> None:
    import pandas as pd

    torch.manual_seed(SEED)
    x, y = passengers()
    order = np.random.default_rng(SEED).permutation(len(x))
    test, train = order[:TEST_ROWS], order[TEST_ROWS:]
    model = TitanicMLP(12, x[train].mean(0), x[train].std(0))
    xt, yt = torch.from_numpy(x[train]), torch.from_numpy(y[train])
    xs, ys = torch.from_numpy(x[test]), torch.from_numpy(y[test])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for epoch in range(EPOCHS):  # full batch: about 1100 rows
        loss = torch.nn.functional.nll_loss(torch.log(model(xt).clamp_min(1e-7)), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (epoch + 1) % 50 == 0:
            with torch.no_grad():
                acc = (model(xs).argmax(1) == ys).float().mean().item()
            print(f"epoch {epoch + 1:3d}  loss {loss.item():.4f}  test accuracy {acc:.4f}")
    model.eval()
    with torch.no_grad():
        acc = (model(xs).argmax(1) == ys).float().mean().item()

    OUT.mkdir(exist_ok=True)
    torch.save(model.state_dict(), OUT / "titanic_mlp.pt")
    frame = pd.DataFrame(x[test], columns=FEATURES)
    frame[LABEL_COLUMN] = y[test]
    SAMPLE_CSV.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(SAMPLE_CSV, index=False, float_format="%.7g")
    meta = {
        "architecture": "titanic_mlp",
        "labels": ["died", "survived"],
        "feature_names": FEATURES,
        "label_column": LABEL_COLUMN,
        "output": "probability",
        "seed": SEED,
        "epochs": EPOCHS,
        "data": f"synthetic Titanic-style passengers (model_zoo/train_titanic_mlp.py, seed {SEED}), "
                f"{PASSENGERS} rows, {TEST_ROWS} test rows",
        "sample_csv": str(SAMPLE_CSV.relative_to(OUT.parents[1])),
        "test_accuracy": round(acc, 4),
        "test_size": TEST_ROWS,
        "torch": torch.__version__,
    }
    (OUT / "titanic_mlp.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: v for k, v in meta.items() if k != "feature_names"}, indent=2))


if __name__ == "__main__":
    main()
