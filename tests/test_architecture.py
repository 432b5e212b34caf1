"""Structural rules of DESIGN.md: the service never imports streamlit, and
importing it loads no deep-learning framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_xai_core_never_imports_streamlit():
    offenders = [
        str(p.relative_to(ROOT)) for p in (ROOT / "xai_core").rglob("*.py")
        if "import streamlit" in p.read_text() or "from streamlit" in p.read_text()
    ]
    assert offenders == []


def test_import_is_light():
    code = (
        "import sys, xai_core, xai_core.explainers, model_zoo; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'onnxruntime', 'streamlit', 'shap', 'lime') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_zoo_models_predict_right_on_sample_photos(lite0_adapter, digits_adapter):
    from xai_core.inputs.images import load_image
    from xai_core.service import predict_image

    samples = ROOT / "sample_images"
    assert predict_image(lite0_adapter, load_image(samples / "chelsea_cat.jpg"))[0].label == "Egyptian cat"
    assert predict_image(lite0_adapter, load_image(samples / "coffee.jpg"))[0].label == "espresso"
    for digit in (0, 3, 4, 7, 9):
        top = predict_image(digits_adapter, load_image(samples / f"digit_{digit}.png"))[0]
        assert top.label == str(digit)


def test_digits_training_metadata_is_kept_with_the_weights():
    import json

    meta = json.loads((ROOT / "model_zoo" / "weights" / "digits_cnn.json").read_text())
    assert meta["seed"] == 0 and meta["test_accuracy"] >= 0.95
    assert (ROOT / "model_zoo" / "train_digits_cnn.py").exists()


def test_imports_go_only_downwards():
    """The layers of DESIGN.md section 1 (.importlinter lists them, top first): no module
    imports one of a higher layer, lazily inside a function included."""
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config", ".importlinter"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]


def test_the_layer_contract_names_every_package():
    """A new package must be placed in a layer, not slip past the contract."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    layers = set(config["importlinter:contract:layers"]["layers"].split())
    packages = {f"xai_core.{p.name}" for p in (ROOT / "xai_core").iterdir()
                if (p / "__init__.py").exists()} | {"xai_core.types"}
    assert packages == layers


def _import_cycles(graph) -> list[list[str]]:
    """Strongly connected groups of more than one module in ``graph`` (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(graph.find_modules_directly_imported_by(module)):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                group.append(other)
                if other == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def test_no_import_circle_inside_xai_core():
    """Not even inside one package (the layers contract alone allows siblings to import
    each other): cli <-> sets <-> tabular and local <-> evaluate <-> explain were circles."""
    import grimp

    graph = grimp.build_graph("xai_core", include_external_packages=False)
    assert _import_cycles(graph) == []
