"""Write sample_data/digits_test.npz: the held-out digits the zoo's digits CNNs never saw.

    python -m sample_data.make_digits_test

scikit-learn's handwritten digits (BSD-3-Clause), the same stratified 25% test split
(random_state 0) that model_zoo/train_digits_cnn.py and train_keras_digits_cnn.py
hold out: 450 images, ``x`` uint8 8 x 8 (values 0..16 scaled by 16, ink bright on
black), ``y`` the digit, ``class_names`` "0".."9". The models' preprocessing
(bilinear upsampling to 32 x 32) is applied at run time, as for any image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
OUT = Path(__file__).resolve().parent / "digits_test.npz"


def main(out: Path = OUT) -> Path:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from model_zoo.digits_data import digit_to_uint8

    digits = load_digits()
    index = np.arange(len(digits.target))
    _, test = train_test_split(index, test_size=0.25, random_state=SEED, stratify=digits.target)
    x = np.stack([digit_to_uint8(digits.images[i]) for i in test])
    np.savez_compressed(out, x=x, y=digits.target[test].astype(np.int64),
                        class_names=np.array([str(d) for d in range(10)]), sklearn_index=test.astype(np.int64))
    print(f"wrote {out} ({len(test)} digits)")
    return out


if __name__ == "__main__":
    main()
