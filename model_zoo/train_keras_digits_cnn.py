"""Train the zoo's Keras digits CNN on scikit-learn's handwritten digits (reproducible).

    python -m model_zoo.train_keras_digits_cnn

Writes model_zoo/weights/keras_digits_cnn.keras (the whole model, no Lambda layers,
loads in safe mode) and keras_digits_cnn.json (labels, preprocessing, seed, split,
test accuracy). Same data pipeline as train_digits_cnn.py (model_zoo.digits_data):
32 x 32 grayscale in [0, 1], normalised with mean 0.5 / std 0.5. The network mirrors
the PyTorch DigitsCNN (three 3x3 conv blocks, global average pooling) but ends in a
softmax, as Keras classifiers usually do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_zoo.digits_data import SIZE, digit_split

SEED = 0
EPOCHS = 30
BATCH = 64
OUT = Path(__file__).resolve().parent / "weights"


def build_keras_digits_cnn(num_classes: int = 10, softmax: bool = True):
    """Conv(16)-pool-Conv(32)-pool-Conv(64)-GAP-Dense, input 32 x 32 x 1 (channels-last)."""
    from xai_core.adapters.runtime import import_tensorflow

    import_tensorflow()  # in the safe order next to torch
    import keras

    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 1), name="image"),
            layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),  # 16 x 16
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),  # 8 x 8
            layers.Conv2D(64, 3, padding="same", activation="relu", name="conv3"),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(num_classes, activation="softmax" if softmax else None, name="classifier"),
        ],
        name="keras_digits_cnn",
    )


def main() -> None:
    from xai_core.adapters.runtime import import_tensorflow

    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    x_train, x_test, y_train, y_test = digit_split(SEED)
    x_train = ((x_train - 0.5) / 0.5)[..., None].astype(np.float32)
    x_test = ((x_test - 0.5) / 0.5)[..., None].astype(np.float32)

    model = build_keras_digits_cnn(10)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(SEED)
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            # small random shifts make the maps less tied to one pixel grid
            dy, dx = rng.integers(-2, 3, size=2)
            xb = np.roll(x_train[idx], shift=(int(dy), int(dx)), axis=(1, 2))
            loss, _ = model.train_on_batch(xb, y_train[idx])
        acc = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
        print(f"epoch {epoch + 1:2d}  loss {float(loss):.4f}  test accuracy {acc:.4f}")

    OUT.mkdir(exist_ok=True)
    model.compile()  # drop the optimizer state: a smaller file, inference only
    model.save(OUT / "keras_digits_cnn.keras")
    meta = {
        "architecture": "keras_digits_cnn (model_zoo/train_keras_digits_cnn.py)",
        "labels": [str(i) for i in range(10)],
        "spec": {"size": [SIZE, SIZE], "mean": [0.5], "std": [0.5], "grayscale": True},
        "seed": SEED,
        "epochs": EPOCHS,
        "data": "sklearn.datasets.load_digits, 25% stratified test split (random_state=0)",
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    (OUT / "keras_digits_cnn.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
