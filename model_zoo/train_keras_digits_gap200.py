"""Train a small Keras CNN ending in GlobalAveragePooling + Dense (softmax) on
scikit-learn's digits upscaled to 200 x 200 grayscale (reproducible): the model of
the user story "CAM, and Grad-CAM at a layer chosen by index".

    python -m model_zoo.train_keras_digits_gap200

``model.layers[6]`` (``get_layer(index=6)``) is the last convolution, conv4, the
layer CAM and Grad-CAM use. Writes model_zoo/weights/keras_digits_gap200.keras
(the whole model, no Lambda layers) and keras_digits_gap200.json (the sidecar:
preprocessing, labels, seed, test accuracy).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SEED = 0
SIZE = 200
EPOCHS = 12
BATCH = 32
OUT = Path(__file__).resolve().parent / "weights"


def build(num_classes: int = 10):
    """conv1(s2)-pool-conv2-pool-conv3-pool-conv4-GAP-Dense(softmax), 200 x 200 x 1 in."""
    from xai_core.adapters.runtime import import_tensorflow

    import_tensorflow()
    import keras

    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1), name="image"),
            layers.Conv2D(8, 5, strides=2, padding="same", activation="relu", name="conv1"),  # 100
            layers.MaxPooling2D(2, name="pool1"),  # 50
            layers.Conv2D(16, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),  # 25
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv3"),
            layers.MaxPooling2D(2, name="pool3"),  # 12
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv4"),  # model.layers[6]
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(num_classes, activation="softmax", name="classifier"),
        ],
        name="keras_digits_gap200",
    )


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits pipeline of the other digits models, upscaled to 200 x 200 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from model_zoo.digits_data import digit_to_uint8, upsample

    digits = load_digits()
    images = np.stack([upsample(digit_to_uint8(im), SIZE) for im in digits.images])[..., None]
    return train_test_split(images, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target)


def main() -> None:
    from xai_core.adapters.runtime import import_tensorflow

    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, x_test, y_train, y_test = data()
    x_train, x_test = (x_train - 0.5) / 0.5, (x_test - 0.5) / 0.5
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS, verbose=2, shuffle=True)
    acc = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
    OUT.mkdir(exist_ok=True)
    model.compile()  # inference only: a smaller file
    model.save(OUT / "keras_digits_gap200.keras")
    meta = {
        "architecture": "keras_digits_gap200 (model_zoo/train_keras_digits_gap200.py)",
        "labels": [str(i) for i in range(10)],
        "spec": {"size": [SIZE, SIZE], "mean": [0.5], "std": [0.5], "grayscale": True},
        "seed": SEED,
        "epochs": EPOCHS,
        "data": "sklearn.datasets.load_digits upscaled (bilinear) to 200 x 200, 25% stratified test split "
                "(random_state=0)",
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    (OUT / "keras_digits_gap200.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
