"""Train the zoo's small Vision Transformer on scikit-learn's digits, saved as a
Hugging Face folder (reproducible).

    python -m model_zoo.train_digits_vit

Writes model_zoo/weights/digits_vit/ the way Hugging Face saves an image
classifier: ``config.json`` + ``model.safetensors`` (``save_pretrained``) and
``preprocessor_config.json`` (``ViTImageProcessor.save_pretrained``), plus
``training.json`` (seed, split, test accuracy). The model is a ViT
(Dosovitskiy et al. 2021) with 4 blocks of width 64 over 4 x 4 patches of a
32 x 32 RGB image (64 patch tokens and a class token). Digits are the 8 x 8
images upsampled to 32 x 32 (bilinear), the grey value copied to the three
channels, normalised with mean 0.5 / std 0.5 as the processor does. The training
split is seen twice: smooth, and blocky (8 x 8 -> 64 x 64 nearest -> 32 x 32
bilinear, how the shipped sample digits reach the model), which a ViT trained on
smooth digits alone misreads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from model_zoo.digits_data import SIZE, digit_split

SEED = 0
EPOCHS = 35
OUT = Path(__file__).resolve().parent / "weights" / "digits_vit"


def vit_config():
    from transformers import ViTConfig

    labels = [str(i) for i in range(10)]
    return ViTConfig(
        image_size=SIZE, patch_size=4, num_channels=3, hidden_size=64, num_hidden_layers=4,
        num_attention_heads=4, intermediate_size=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        num_labels=10, id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)},
    )


def rgb(images: np.ndarray) -> torch.Tensor:
    """N x 32 x 32 in [0, 1] -> N x 3 x 32 x 32 normalised (mean 0.5, std 0.5)."""
    x = torch.from_numpy((images - 0.5) / 0.5)[:, None]
    return x.expand(-1, 3, -1, -1).contiguous()


def blocky_split(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The training split's digits as the sample images are made (8 x 8 -> 64 x 64 nearest)
    and then fed (-> 32 x 32 bilinear): (N x 32 x 32 in [0, 1], labels), same split."""
    from PIL import Image
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from model_zoo.digits_data import digit_to_uint8

    digits = load_digits()
    train, _ = train_test_split(np.arange(len(digits.target)), test_size=0.25, random_state=seed,
                                stratify=digits.target)
    images = [Image.fromarray(digit_to_uint8(digits.images[i])).resize((64, 64), Image.NEAREST)
              .resize((SIZE, SIZE), Image.BILINEAR) for i in train]
    return np.stack([np.asarray(im, np.float32) / 255.0 for im in images]), digits.target[train]


def main() -> None:
    from transformers import ViTForImageClassification, ViTImageProcessor

    torch.set_num_threads(1)  # reproducible, and fast on a busy 2-core machine
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    x_train, x_test, y_train, y_test = digit_split(SEED)
    x_blocky, y_blocky = blocky_split(SEED)
    x_train, x_test = rgb(np.concatenate([x_train, x_blocky])), rgb(x_test)
    y_train, y_test = torch.from_numpy(np.concatenate([y_train, y_blocky])), torch.from_numpy(y_test)

    model = ViTForImageClassification(vit_config())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps = EPOCHS * ((len(x_train) + 63) // 64)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(SEED)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=gen)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
            xb = torch.roll(x_train[idx], shifts=(dy, dx), dims=(2, 3))
            loss = torch.nn.functional.cross_entropy(model(pixel_values=xb).logits, y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if (epoch + 1) % 5 == 0 or epoch + 1 == EPOCHS:
            model.eval()
            with torch.no_grad():
                acc = (model(pixel_values=x_test).logits.argmax(1) == y_test).float().mean().item()
            print(f"epoch {epoch + 1:2d}  loss {loss.item():.4f}  test accuracy {acc:.4f}", flush=True)

    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    ViTImageProcessor(
        do_resize=True, size={"height": SIZE, "width": SIZE}, resample=2, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(OUT)
    meta = {
        "seed": SEED,
        "epochs": EPOCHS,
        "data": "sklearn.datasets.load_digits upsampled to 32x32 RGB, 25% stratified test split (random_state=0)",
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
    }
    (OUT / "training.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
