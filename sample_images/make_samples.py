"""Regenerate the sample images from the data that scikit-image and scikit-learn ship.

    python -m sample_images.make_samples

Photos are saved as JPEG (quality 92) at their original resolution; digits as
64 x 64 PNG (8 x 8 sklearn digits upsampled, nearest), ink bright on black.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent


def main() -> None:
    import skimage.data as data
    from sklearn.datasets import load_digits

    photos = {"chelsea_cat": data.chelsea(), "coffee": data.coffee(), "astronaut": data.astronaut(), "rocket": data.rocket()}
    for name, array in photos.items():
        Image.fromarray(array).save(HERE / f"{name}.jpg", quality=92)
    digits = load_digits()
    for label in (0, 3, 4, 7, 9):
        index = int(np.flatnonzero(digits.target == label)[-1])  # the last sample of the class
        img = np.clip(digits.images[index] * 16, 0, 255).astype(np.uint8)
        Image.fromarray(img).resize((64, 64), Image.NEAREST).save(HERE / f"digit_{label}.png")


if __name__ == "__main__":
    main()
