"""Named tabular models that ship with the project, each with the CSV it reads.

Importing this module loads no framework. The dashboard's tabular page and
``explain-tabular --model NAME`` use these when nothing is uploaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xai_core.types import InputError, ModelLoadError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample_data"


@dataclass(frozen=True)
class TabularZooEntry:
    name: str
    framework: str
    description: str
    file: str  # in model_zoo/weights/, with a JSON sidecar of the same stem
    sample_csv: str  # in sample_data/
    label_column: str | None
    source: str = ""

    @property
    def path(self) -> Path:
        return WEIGHTS_DIR / self.file

    @property
    def csv_path(self) -> Path:
        return SAMPLE_DIR / self.sample_csv

    def metadata(self) -> dict:
        meta = self.path.with_suffix(".json")
        if not meta.is_file():
            raise ModelLoadError(f"{meta} is missing; run {self.source}")
        return json.loads(meta.read_text())

    def available(self) -> bool:
        if not self.path.exists():
            return False
        if self.framework == "keras":
            import importlib.util

            return importlib.util.find_spec("keras") is not None
        return True


TABULAR_ZOO: dict[str, TabularZooEntry] = {
    "breast_cancer_mlp": TabularZooEntry(
        "breast_cancer_mlp",
        "torch",
        "PyTorch MLP (30 -> 32 -> 16 -> 2, softmax) on scikit-learn's breast-cancer table; "
        "standardisation inside the model, raw CSV values in",
        "breast_cancer_mlp.pt",
        "breast_cancer.csv",
        "target",
        "python -m model_zoo.train_breast_cancer_mlp (seed 0)",
    ),
    "breast_cancer_sklearn": TabularZooEntry(
        "breast_cancer_sklearn",
        "onnx",
        "scikit-learn pipeline (StandardScaler + MLPClassifier) converted to ONNX with skl2onnx; "
        "predictions only (no gradients)",
        "breast_cancer_sklearn.onnx",
        "breast_cancer.csv",
        "target",
        "python -m model_zoo.train_breast_cancer_sklearn (seed 0)",
    ),
    "breast_cancer_keras": TabularZooEntry(
        "breast_cancer_keras",
        "keras",
        "Keras MLP (30 -> 32 -> 16 -> 2, softmax) on the breast-cancer table; needs tensorflow",
        "breast_cancer_keras.keras",
        "breast_cancer.csv",
        "target",
        "python -m model_zoo.train_breast_cancer_keras (seed 0)",
    ),
    "titanic_mlp": TabularZooEntry(
        "titanic_mlp",
        "torch",
        "PyTorch MLP (12 -> 12 -> 8 -> 2, sigmoid hidden layers, softmax; captum's Titanic tutorial "
        "network) on a synthetic Titanic-style passenger table",
        "titanic_mlp.pt",
        "titanic_synthetic.csv",
        "survived",
        "python -m model_zoo.train_titanic_mlp (seed 0)",
    ),
}

DEFAULT_TABULAR_MODEL = "breast_cancer_mlp"


def get_tabular_entry(name: str) -> TabularZooEntry:
    if name not in TABULAR_ZOO:
        raise InputError(f"no tabular zoo model named {name!r}; available: {', '.join(TABULAR_ZOO)}")
    return TABULAR_ZOO[name]


def available_tabular_models() -> list[str]:
    """Zoo names whose files are present and whose framework is installed."""
    return [name for name, entry in TABULAR_ZOO.items() if entry.available()]
