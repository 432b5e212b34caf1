"""Train a scikit-learn pipeline on the breast-cancer table and convert it to ONNX.

    python -m model_zoo.train_breast_cancer_sklearn

Writes model_zoo/weights/breast_cancer_sklearn.onnx (StandardScaler +
MLPClassifier, converted with skl2onnx, ``zipmap=False`` so the probabilities come
out as a float tensor) and breast_cancer_sklearn.json (labels, seed, test
accuracy). Same split as the PyTorch model (model_zoo.breast_cancer_data).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_zoo.breast_cancer_data import LABEL_COLUMN, SEED, TEST_ROWS, split

OUT = Path(__file__).resolve().parent / "weights"


def main() -> None:
    import onnxruntime as ort
    import skl2onnx
    import sklearn
    from skl2onnx import to_onnx
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test, names, classes = split()
    pipe = make_pipeline(
        StandardScaler(),
        MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=500, random_state=SEED),
    ).fit(x_train, y_train)
    acc = float((pipe.predict(x_test) == y_test).mean())
    onx = to_onnx(pipe, x_train[:1].astype(np.float32), options={"zipmap": False}, target_opset=17)
    OUT.mkdir(exist_ok=True)
    path = OUT / "breast_cancer_sklearn.onnx"
    path.write_bytes(onx.SerializeToString())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs = session.run(["probabilities"], {session.get_inputs()[0].name: x_test})[0]
    max_diff = float(np.abs(probs - pipe.predict_proba(x_test)).max())
    meta = {
        "framework": "onnx",
        "labels": classes,
        "feature_names": names,
        "label_column": LABEL_COLUMN,
        "output": "probability",
        "seed": SEED,
        "model": "StandardScaler + MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=500)",
        "data": f"sklearn.datasets.load_breast_cancer, {TEST_ROWS} stratified test rows (random_state={SEED})",
        "test_accuracy": round(acc, 4),
        "test_size": len(y_test),
        "onnx_vs_sklearn_max_abs_diff": max_diff,
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
    }
    (OUT / "breast_cancer_sklearn.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({k: v for k, v in meta.items() if k != "feature_names"}, indent=2))


if __name__ == "__main__":
    main()
