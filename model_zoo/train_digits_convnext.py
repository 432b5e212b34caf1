"""Train the zoo's small ConvNeXt on scikit-learn's digits, saved as a timm
checkpoint (reproducible).

    python -m model_zoo.train_digits_convnext

Writes model_zoo/weights/digits_convnext/ the way timm saves a model
(``timm.models.save_for_hf``): ``model.safetensors`` (the state_dict) and
``config.json`` (the timm name ``convnext_atto``, the constructor arguments that
shrink it, and the preprocessing as timm's ``pretrained_cfg``), plus
``training.json`` (seed, split, test accuracy). ConvNeXt (Liu et al. 2022) with
four stages of widths 24/48/96/128 and depths 1/1/2/1 over a 2 x 2 stem, so a
32 x 32 RGB digit gives 16, 8, 4 and 2 pixel maps. Digits are the 8 x 8 images
upsampled to 32 x 32 (bilinear), grey copied to three channels, mean/std 0.5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model_zoo.digits_data import SIZE, digit_split
from model_zoo.train_digits_vit import rgb

SEED = 0
EPOCHS = 30
ARCH = "convnext_atto"
MODEL_ARGS = {"depths": [1, 1, 2, 1], "dims": [24, 48, 96, 128], "patch_size": 2}
DATA_CONFIG = {"input_size": (3, SIZE, SIZE), "interpolation": "bilinear", "crop_pct": 1.0,
               "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
OUT = Path(__file__).resolve().parent / "weights" / "digits_convnext"


def main() -> None:
    import timm
    from timm.models import save_for_hf

    torch.set_num_threads(1)  # reproducible, and fast on a busy 2-core machine
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    x_train, x_test, y_train, y_test = digit_split(SEED)
    x_train, x_test = rgb(x_train), rgb(x_test)
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)

    model = timm.create_model(ARCH, pretrained=False, num_classes=10, **MODEL_ARGS)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.05)
    steps = EPOCHS * ((len(x_train) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
            xb = torch.roll(x_train[idx], shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 5 == 0 or epoch + 1 == EPOCHS:
            model.eval()
            with torch.no_grad():
                acc = (model(x_test).argmax(1) == y_test).float().mean().item()
            print(f"epoch {epoch + 1:2d}  loss {loss.item():.4f}  test accuracy {acc:.4f}", flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    save_for_hf(model, str(OUT), model_config={"label_names": [str(i) for i in range(10)]},
                model_args=MODEL_ARGS, safe_serialization=True, data_config=DATA_CONFIG)
    meta = {
        "architecture": ARCH,
        "seed": SEED,
        "epochs": EPOCHS,
        "data": "sklearn.datasets.load_digits upsampled to 32x32 RGB, 25% stratified test split (random_state=0)",
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "timm": timm.__version__,
    }
    (OUT / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
