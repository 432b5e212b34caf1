"""The digits data pipeline shared by the zoo's PyTorch and Keras digits CNNs.

scikit-learn's 8 x 8 handwritten digits (values 0..16) -> uint8 -> bilinear
upsampling to 32 x 32 -> [0, 1], ink bright on black; a stratified 25% test split.
Normalisation (mean 0.5, std 0.5) is applied by each training script, the same as
the service applies it at run time.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIZE = 32


def digit_to_uint8(image8x8: np.ndarray) -> np.ndarray:
    """sklearn digit (values 0..16) -> uint8 8 x 8 image."""
    return np.clip(image8x8 * 16, 0, 255).astype(np.uint8)


def upsample(image_u8: np.ndarray, size: int = SIZE) -> np.ndarray:
    return np.asarray(Image.fromarray(image_u8).resize((size, size), Image.BILINEAR), np.float32) / 255.0


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """All digits as (N x 32 x 32 float32 in [0, 1], N labels)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.stack([upsample(digit_to_uint8(im)) for im in digits.images])
    return images, digits.target


def digit_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, x_test, y_train, y_test): N x 32 x 32 images, 25% stratified test split."""
    from sklearn.model_selection import train_test_split

    images, target = digit_images()
    return train_test_split(images, target, test_size=0.25, random_state=seed, stratify=target)
