"""A model with several inputs on the image page (AppTest, no browser): one form per
input from the model's description, typed or uploaded feature rows checked against
the input's spec, one picture and one file per input, and a reproduce command with
``--input NAME=FILE`` that recomputes the same numbers."""

from __future__ import annotations

import io
import json
import shlex

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from tests.test_dashboard import APP, TIMEOUT, assert_clean, captions, click_explain, errors
from tests.test_several_inputs import ImageAndVector
from xai_core.inputs.feature_rows import parse_typed_row, read_feature_row
from xai_core.types import InputError, VectorSpec

SIDECAR = {"inputs": [
    {"kind": "image", "name": "digit", "size": [8, 8], "grayscale": True, "mean": [0.0], "std": [1.0]},
    {"kind": "vector", "name": "extra", "size": 3, "feature_names": ["x", "y", "z"]},
], "labels": ["zero", "one", "two"]}
EXTRA = VectorSpec(3, ("x", "y", "z"), name="extra")


@pytest.fixture(scope="module")
def two_input_files(tmp_path_factory):
    """ImageAndVector (a conv branch on an 8x8 digit, a dense branch on 3 features)
    saved as a torch.export program, and its description."""
    folder = tmp_path_factory.mktemp("two_inputs")
    program = torch.export.export(ImageAndVector().eval(), (torch.zeros(1, 1, 8, 8), torch.zeros(1, 3)))
    torch.export.save(program, str(folder / "image_and_vector.pt2"))
    (folder / "image_and_vector.json").write_text(json.dumps(SIDECAR))
    return folder


def test_feature_rows_are_read_and_checked_against_the_spec():
    np.testing.assert_array_equal(parse_typed_row("0.5, -1 ,2", EXTRA), [0.5, -1.0, 2.0])
    # a header line in another order is matched by name; a .npy of shape (1, F) is one row
    np.testing.assert_array_equal(read_feature_row(b"z,x,y\n3,1,2\n", "r.csv", EXTRA), [1, 2, 3])
    buf = io.BytesIO()
    np.save(buf, np.array([[4.0, 5.0, 6.0]]))
    np.testing.assert_array_equal(read_feature_row(buf.getvalue(), "r.npy", EXTRA), [4, 5, 6])
    for bad, message in (
        (lambda: parse_typed_row("1, 2", EXTRA), r"input 'extra' takes 3 feature values \(x, y, z\); 2 were given"),
        (lambda: parse_typed_row("1, two, 3", EXTRA), r"value 2 \('two'\) is not a number"),
        (lambda: parse_typed_row("1, nan, 3", EXTRA), "y is not a finite number"),
        (lambda: read_feature_row(b"1,2,3\n4,5,6\n", "r.csv", EXTRA), "holds 2 data rows"),
        (lambda: read_feature_row(b"a,b,c\n1,2,3\n", "r.csv", EXTRA), "the header names a, b, c"),
        (lambda: read_feature_row(b"not npy", "r.npy", EXTRA), "not a readable .npy"),
    ):
        with pytest.raises(InputError, match=message):
            bad()


def upload_two_input_model(at: AppTest, folder) -> None:
    at.radio(key="img_source").set_value("Upload a model file").run()
    model = (folder / "image_and_vector.pt2").read_bytes()
    at.file_uploader(key="img_model_file_torch").set_value(("image_and_vector.pt2", model, "application/octet-stream"))
    at.run()
    (described,) = [u for u in at.file_uploader if u.label.startswith("Model description")]
    described.set_value(("two_inputs.json", (folder / "image_and_vector.json").read_bytes(), "application/json"))
    at.run()


def test_two_input_model_gets_one_form_and_one_result_per_input(two_input_files, tmp_path):
    from xai_core import explain
    from xai_core.loading.models import open_model

    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("views/image.py").run()
    upload_two_input_model(at, two_input_files)
    assert_clean(at)
    assert "Features, in order: x, y, z" in [c.value for c in at.caption]
    methods = at.selectbox(key="img_method").options
    # methods giving one attribution per input only (the perturbation methods serve several inputs too)
    assert {"Integrated Gradients", "Occlusion", "LIME (superpixels)"} <= set(methods) and "Grad-CAM" not in methods
    values = at.text_input(key="img_input_extra_values")
    assert values.value == "0, 0, 0"
    values.set_value("0.5, -1").run()
    assert any("Input 'extra' takes 3 feature values (x, y, z); 2 were given" in e for e in errors(at)), errors(at)
    assert next(b for b in at.button if b.label == "Explain").disabled
    at.text_input(key="img_input_extra_values").set_value("0.5, -1, 2").run()
    at.selectbox(key="img_method").set_value("integrated_gradients").run()
    at.number_input(key="img_param_integrated_gradients_steps").set_value(16)
    assert "img_layer_integrated_gradients" not in [s.key for s in at.selectbox]  # at a layer: one input only
    at.selectbox(key="img_target").set_value(1)
    click_explain(at)
    assert_clean(at)
    shown = [c for c in captions(at) if c.startswith("Integrated Gradients: input")]
    assert "All classes (one result per class, per input)" in at.selectbox(key="img_target").options
    assert len(shown) == 2 and "input digit (image," in shown[0] and "input extra (vector, typed values)" in shown[1]
    labels = [b.label for b in at.get("download_button")]
    for name in ("digit", "extra"):
        assert f"{name} .npy" in labels and f"{name} .png" in labels
    assert "Row of extra .csv" in labels

    # every class at once (the first row): one result per class, each with one picture per input
    at.selectbox(key="img_target").set_value("all")
    click_explain(at)
    assert_clean(at)
    per_class = [c for c in captions(at) if c.startswith("Integrated Gradients: ")]
    assert [c.split(": input ")[0] for c in per_class] == [
        f"Integrated Gradients: {name}" for name in ("zero", "zero", "one", "one", "two", "two")]
    at.selectbox(key="img_target").set_value(1)
    click_explain(at)

    # the faithfulness panel runs on what fed each input (the typed row included): one row per input
    at.button(key="check_image").click().run()
    assert_clean(at)
    columns = list(at.dataframe[-1].value.columns)  # one column per method x input, one row per metric
    assert "Integrated Gradients · digit" in columns and "Integrated Gradients · extra" in columns, columns

    result = at.session_state["img_results"]
    page = result.items[0].explanation
    picture = result.image.array
    core = explain(open_model(str(two_input_files / "image_and_vector.pt2")), [picture, np.array([0.5, -1, 2])],
                   "integrated_gradients", {"steps": 16}, target=1)
    for mine, theirs in zip(page.attributions, core.attributions, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-6)

    # the reproduce command names the typed row's file; with the files beside it, it gives the same numbers
    from ui.results import _record_json

    record = json.loads(_record_json(result, result.items[0]))
    argv = record["argv"]
    assert argv[argv.index("--input") + 1] == "extra=extra.csv" and record["model_inputs"][1]["values"] == [0.5, -1, 2]
    assert "image_and_vector.pt2" in record["run_in"] and "extra.csv" in record["run_in"]
    (tmp_path / "image_and_vector.pt2").write_bytes((two_input_files / "image_and_vector.pt2").read_bytes())
    (tmp_path / "image_and_vector.json").write_text(json.dumps(SIDECAR))
    fed = result.fed.inputs[1]
    (tmp_path / "extra.csv").write_bytes(fed.csv_row())
    from xai_core.cli.main import main

    image_arg = argv[argv.index("--image") + 1]
    argv = argv[3:]  # after "python -m xai_core"
    argv[argv.index("--model") + 1] = str(tmp_path / "image_and_vector.pt2")
    argv[argv.index("--input") + 1] = f"extra={tmp_path / 'extra.csv'}"
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main(argv) == 0, shlex.join(argv)
    np.testing.assert_allclose(np.load(tmp_path / "out" / f"{image_arg.rsplit('/', 1)[-1].rsplit('.', 1)[0]}"
                                       "__integrated_gradients__extra.npy"), page.attributions[1], rtol=1e-5, atol=1e-6)
