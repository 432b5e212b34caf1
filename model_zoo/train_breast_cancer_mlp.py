"""Train the zoo's tabular MLP on scikit-learn's breast-cancer table (reproducible).

    python -m model_zoo.train_breast_cancer_mlp

Writes model_zoo/weights/breast_cancer_mlp.pt (state_dict of architecture
``tabular_mlp``), breast_cancer_mlp.json (labels, feature names, seed, split, test
accuracy) and sample_data/breast_cancer.csv (the 100 test rows). Standardisation
(train-split mean/std) is a fixed layer inside the model, so it takes raw CSV values
and outputs class probabilities (softmax).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model_zoo.architectures import TabularMLP
from model_zoo.breast_cancer_data import LABEL_COLUMN, SEED, TEST_ROWS, split, write_sample_csv

HIDDEN = (32, 16)
EPOCHS = 60
OUT = Path(__file__).resolve().parent / "weights"


def main() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    x_train, x_test, y_train, y_test, names, classes = split()
    model = TabularMLP(x_train.shape[1], HIDDEN, len(classes), x_train.mean(0), x_train.std(0))
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    xs, ys = torch.from_numpy(x_test), torch.from_numpy(y_test)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(xt), generator=gen)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            probs = model(xt[idx])
            loss = torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-7)), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (epoch + 1) % 10 == 0:
            model.eval()
            with torch.no_grad():
                acc = (model(xs).argmax(1) == ys).float().mean().item()
            print(f"epoch {epoch + 1:3d}  loss {loss.item():.4f}  test accuracy {acc:.4f}")
    model.eval()
    with torch.no_grad():
        acc = (model(xs).argmax(1) == ys).float().mean().item()

    OUT.mkdir(exist_ok=True)
    torch.save(model.state_dict(), OUT / "breast_cancer_mlp.pt")
    csv = write_sample_csv()
    meta = {
        "architecture": "tabular_mlp",
        "hidden": list(HIDDEN),
        "labels": classes,
        "feature_names": names,
        "label_column": LABEL_COLUMN,
        "output": "probability",
        "seed": SEED,
        "epochs": EPOCHS,
        "data": f"sklearn.datasets.load_breast_cancer, {TEST_ROWS} stratified test rows (random_state={SEED})",
        "sample_csv": str(csv.relative_to(OUT.parents[1])),
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "torch": torch.__version__,
    }
    (OUT / "breast_cancer_mlp.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: v for k, v in meta.items() if k != "feature_names"}, indent=2))


if __name__ == "__main__":
    main()
