"""Train the zoo's digits CNN on scikit-learn's handwritten digits (reproducible).

    python -m model_zoo.train_digits_cnn

Writes model_zoo/weights/digits_cnn.pt (state_dict) and digits_cnn.json (labels,
preprocessing, seed, split and test accuracy). Images are the 8 x 8 digits
upsampled (bilinear) to 32 x 32, ink bright on black, scaled to [0, 1], then
normalised with mean 0.5 / std 0.5, the same path the service feeds at run time.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model_zoo.architectures import DigitsCNN
from model_zoo.digits_data import SIZE, digit_split, digit_to_uint8, upsample  # noqa: F401

SEED = 0
EPOCHS = 30
OUT = Path(__file__).resolve().parent / "weights"


def main() -> None:
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    x_train, x_test, y_train, y_test = digit_split(SEED)
    x_train, x_test = x_train[:, None], x_test[:, None]
    x_train = torch.from_numpy((x_train - 0.5) / 0.5)
    x_test = torch.from_numpy((x_test - 0.5) / 0.5)
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)

    model = DigitsCNN(10)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            xb = x_train[idx]
            # small random shifts make the maps less tied to one pixel grid
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            acc = (model(x_test).argmax(1) == y_test).float().mean().item()
        print(f"epoch {epoch + 1:2d}  loss {loss.item():.4f}  test accuracy {acc:.4f}")

    OUT.mkdir(exist_ok=True)
    torch.save(model.state_dict(), OUT / "digits_cnn.pt")
    meta = {
        "architecture": "digits_cnn",
        "labels": [str(i) for i in range(10)],
        "spec": {"size": [SIZE, SIZE], "mean": [0.5], "std": [0.5], "grayscale": True},
        "seed": SEED,
        "epochs": EPOCHS,
        "data": "sklearn.datasets.load_digits, 25% stratified test split (random_state=0)",
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "torch": torch.__version__,
    }
    (OUT / "digits_cnn.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
