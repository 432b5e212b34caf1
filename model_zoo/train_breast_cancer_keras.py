"""Train the zoo's Keras MLP on the breast-cancer table (reproducible on the CPU).

    python -m model_zoo.train_breast_cancer_keras

Writes model_zoo/weights/breast_cancer_keras.keras (a Keras 3 archive that loads
with ``safe_mode=True``: built-in layers only) and breast_cancer_keras.json.
Standardisation is a ``Normalization`` layer adapted on the training split, so the
model takes raw CSV values; softmax probabilities out. Same split as the PyTorch
model (model_zoo.breast_cancer_data).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from model_zoo.breast_cancer_data import LABEL_COLUMN, SEED, TEST_ROWS, split  # noqa: E402

HIDDEN = (32, 16)
EPOCHS = 60
OUT = Path(__file__).resolve().parent / "weights"


def main() -> None:
    import keras
    import numpy as np

    keras.utils.set_random_seed(SEED)
    x_train, x_test, y_train, y_test, names, classes = split()
    norm = keras.layers.Normalization(axis=-1, name="standardise")
    norm.adapt(x_train)
    layers = [keras.Input((x_train.shape[1],), name="features"), norm]
    layers += [keras.layers.Dense(h, activation="relu") for h in HIDDEN]
    layers.append(keras.layers.Dense(len(classes), activation="softmax", name="probabilities"))
    model = keras.Sequential(layers, name="breast_cancer_keras")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=EPOCHS, batch_size=64, shuffle=True, verbose=0)
    probs = model.predict(x_test, verbose=0)
    acc = float((probs.argmax(1) == y_test).mean())
    OUT.mkdir(exist_ok=True)
    model.save(OUT / "breast_cancer_keras.keras")
    meta = {
        "framework": "keras",
        "labels": classes,
        "feature_names": names,
        "label_column": LABEL_COLUMN,
        "output": "probability",
        "hidden": list(HIDDEN),
        "seed": SEED,
        "epochs": EPOCHS,
        "data": f"sklearn.datasets.load_breast_cancer, {TEST_ROWS} stratified test rows (random_state={SEED})",
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
    }
    np.testing.assert_allclose(
        keras.saving.load_model(OUT / "breast_cancer_keras.keras", safe_mode=True).predict(x_test, verbose=0),
        probs, atol=1e-6,
    )
    (OUT / "breast_cancer_keras.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: v for k, v in meta.items() if k != "feature_names"}, indent=2))


if __name__ == "__main__":
    main()
