"""The breast-cancer table that the zoo's tabular models train on, split the same way
by every training script (seed 0, 100 stratified test rows).

The test rows ship as ``sample_data/breast_cancer.csv`` (header = feature names,
label column ``target``: 0 = malignant, 1 = benign), the table the dashboard page
and the command line use when no CSV is uploaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0
TEST_ROWS = 100
LABEL_COLUMN = "target"
SAMPLE_CSV = Path(__file__).resolve().parents[1] / "sample_data" / "breast_cancer.csv"


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], list[str]]:
    """(x_train, x_test, y_train, y_test, feature_names, class_names); x float32 raw values."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=TEST_ROWS, random_state=SEED, stratify=data.target
    )
    return x_train, x_test, y_train, y_test, list(data.feature_names), list(data.target_names)


def write_sample_csv(path: Path = SAMPLE_CSV) -> Path:
    """Write the test split as CSV (values as float32 text, so the models see exactly
    what they were evaluated on)."""
    import pandas as pd

    _, x_test, _, y_test, names, _ = split()
    frame = pd.DataFrame(x_test, columns=names)
    frame[LABEL_COLUMN] = y_test
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.7g")
    return path
