"""The tabular dashboard page, run headless with Streamlit's AppTest."""

from __future__ import annotations

import pytest
from tabular_helpers import ROOT, synthetic_csv

PAGE = str(ROOT / "views" / "tabular.py")


@pytest.fixture()
def app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def _by_label(elements, prefix):
    (found,) = [w for w in elements if w.label.startswith(prefix)]
    return found


def _set_param(at, name, value):
    """The method's parameter widget (keyed tab_<method>_<parameter>)."""
    (widget,) = [w for w in at.number_input if w.key.startswith("tab_") and w.key.endswith(f"_{name}")]
    widget.set_value(value)


def test_one_row_with_the_zoo_model_and_sample_csv(app):
    at = app
    assert at.title[0].value == "Tabular rows"
    assert at.selectbox(key="tab_zoo_model").value == "breast_cancer_mlp"
    assert _by_label(at.selectbox, "Label column").value == "target"
    assert not at.multiselect  # the zoo model knows its feature names: columns are matched by name
    assert any("matched by name to the model's 30 features" in c.value for c in at.caption)
    assert [o for o in at.selectbox(key="tab_method").options] == [
        "LIME", "Kernel SHAP", "Integrated Gradients", "Layer conductance", "Neuron conductance"]
    at.selectbox(key="tab_method").set_value("kernel_shap")
    at.run()
    _set_param(at, "nsamples", 100)
    _set_param(at, "background_size", 10)
    at.number_input(key="tab_row").set_value(3)
    at.button(key="tab_explain_row").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # signed bars + waterfall
    assert "row 3" in at.markdown[0].value.lower() or any("Row 3" in m.value for m in at.markdown)
    predictions = at.dataframe[0].value
    assert set(predictions["label"]) == {"malignant", "benign"}
    values = at.dataframe[1].value
    assert len(values) == 30 and list(values.columns) == ["feature", "value", "attribution"]
    assert any("base value" in c.value for c in at.caption)


def test_many_rows_progress_and_download(app):
    at = app
    at.selectbox(key="tab_method").set_value("integrated_gradients")
    at.run()
    at.slider(key="tab_rows").set_value((0, 11))
    at.button(key="tab_explain_rows").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 2  # importance + beeswarm
    assert at.get("download_button")[0].proto.label.startswith("Download attribution table")
    assert any("12 rows" in m.value for m in at.markdown)


def test_bad_csv_shows_an_error_not_a_traceback(app):
    at = app
    at.radio(key="tab_data_source").set_value("Upload a CSV")
    at.run()
    assert not at.exception
    at.file_uploader(key="tab_csv_upload").upload("bad.csv", b"a,b\n1,x\n", "text/csv")
    at.run()
    assert not at.exception, at.exception
    assert at.error and "missing 30 of the model's features: 'mean radius'" in at.error[0].value
    assert "2 column(s) the model does not take: 'a', 'b'" in at.error[0].value


def test_onnx_zoo_model_offers_no_integrated_gradients(app):
    at = app
    at.selectbox(key="tab_zoo_model").set_value("breast_cancer_sklearn")
    at.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="tab_method").options == ["LIME", "Kernel SHAP"]


def test_uploaded_csv_with_chosen_columns(app):
    at = app
    at.radio(key="tab_data_source").set_value("Upload a CSV")
    at.run()
    at.file_uploader(key="tab_csv_upload").upload("synthetic.csv", synthetic_csv(), "text/csv")
    at.run()
    assert _by_label(at.selectbox, "Label column").value == "y"  # found by name
    assert at.error and "missing 30 of the model's features" in at.error[0].value
    assert "6 column(s) the model does not take: 'f0', 'f1', 'f2'" in at.error[0].value


def _sample_predictions(at):
    (table,) = at.dataframe  # the row's outputs, before any explanation
    return table.value


def test_uploaded_csv_in_any_column_order_gives_the_same_predictions(app):
    """The sample CSV uploaded as-is and with its columns reversed: the label column
    'target' is found by name, the features by the model's names; predictions agree."""
    import pandas as pd

    at = app
    at.number_input(key="tab_row").set_value(7)
    at.run()
    expected = _sample_predictions(at)
    frame = pd.read_csv(ROOT / "sample_data" / "breast_cancer.csv")
    at.radio(key="tab_data_source").set_value("Upload a CSV")
    at.run()
    for name, table in (("same.csv", frame), ("reversed.csv", frame[list(reversed(frame.columns))])):
        at.file_uploader(key="tab_csv_upload").upload(name, table.to_csv(index=False).encode(), "text/csv")
        at.run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert _by_label(at.selectbox, "Label column").value == "target"
        assert _sample_predictions(at).equals(expected)
    at.file_uploader(key="tab_csv_upload").upload("short.csv", frame.drop(columns=["mean area"]).to_csv(index=False).encode(), "text/csv")
    at.run()
    assert at.error and "missing 1 of the model's features: 'mean area'" in at.error[0].value


def test_uploaded_onnx_model_explains_a_row_with_lime(app):
    at = app
    at.radio(key="tab_model_source").set_value("Upload a model")
    at.run()
    assert not at.exception and at.info  # asks for a file, no error yet
    onnx_bytes = (ROOT / "model_zoo" / "weights" / "breast_cancer_sklearn.onnx").read_bytes()
    at.file_uploader(key="tab_model_upload").upload("mine.onnx", onnx_bytes, "application/octet-stream")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    at.selectbox(key="tab_method").set_value("lime")
    at.run()
    _set_param(at, "samples", 200)
    at.button(key="tab_explain_row").click()
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == 1  # LIME: bars, no waterfall (no base value)
    assert any("no waterfall" in c.value for c in at.caption)
    assert at.dataframe[1].value["feature"].nunique() == 30


def test_a_result_is_shown_only_with_the_model_and_row_it_was_computed_from(app):
    at = app
    at.selectbox(key="tab_method").set_value("integrated_gradients")
    at.run()
    at.button(key="tab_explain_row").click()
    at.run()
    assert not at.exception and not at.error
    assert len(at.get("plotly_chart")) == 2

    def hidden():
        return [c.value for c in at.caption if "The last result is hidden" in c.value]

    at.selectbox(key="tab_zoo_model").set_value("breast_cancer_sklearn")
    at.run()
    assert not at.exception and not at.error
    assert not at.get("plotly_chart") and hidden()  # the MLP's IG result is not shown under the ONNX model
    at.selectbox(key="tab_zoo_model").set_value("breast_cancer_mlp")
    at.run()
    assert len(at.get("plotly_chart")) == 2 and not hidden()  # back to its inputs: shown again
    at.number_input(key="tab_row").set_value(5)
    at.run()
    assert not at.get("plotly_chart") and hidden()


def test_titanic_layer_and_neuron_conductance(app):
    """The issue's Titanic row on the page: per-unit bars of the first hidden layer,
    then which features feed neuron 10; the layer comes from the picker (index ·
    name · kind · units) and the neuron is bounded by the layer's units."""
    at = app
    at.selectbox(key="tab_zoo_model").set_value("titanic_mlp")
    at.run()
    at.selectbox(key="tab_method").set_value("layer_conductance")
    at.run()
    _set_param(at, "steps", 8)
    layer = at.selectbox(key="tab_layer_layer_conductance")
    assert layer.value == "linear1"  # the first hidden layer
    assert {"(1 · sigmoid1 · Sigmoid · 12)", "(4 · linear3 · Linear · 2)"} <= {o[o.rfind("("):] for o in layer.options}
    assert not [w for w in at.text_input if w.key.endswith("_layer")]  # no free-text layer box any more
    layer.set_value("sigmoid1")
    at.button(key="tab_explain_row").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(m.value.startswith("**Units of layer sigmoid1** (12)") for m in at.markdown)
    assert len(at.get("plotly_chart")) == 3  # feature bars, unit bars, waterfall
    at.selectbox(key="tab_method").set_value("neuron_conductance")
    at.run()
    at.selectbox(key="tab_layer_neuron_conductance").set_value("linear2")
    at.run()
    (neuron,) = [w for w in at.number_input if w.key.startswith("tab_param_neuron_conductance_neuron")]
    assert (neuron.min, neuron.max, neuron.label) == (0, 7, "Neuron (0 to 7)")  # linear2 has 8 units
    at.selectbox(key="tab_layer_neuron_conductance").set_value("sigmoid1")
    at.run()
    (neuron,) = [w for w in at.number_input if w.key.startswith("tab_param_neuron_conductance_neuron")]
    assert neuron.max == 11
    neuron.set_value(10)
    at.button(key="tab_explain_row").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("which features feed unit 10 of layer sigmoid1" in c.value for c in at.caption)


def test_uploaders_state_the_limits_the_service_accepts(app):
    from xai_core.inputs.tables import MAX_CSV_BYTES
    from xai_core.loading.torch import MAX_MODEL_BYTES

    at = app
    at.radio(key="tab_data_source").set_value("Upload a CSV")
    at.run()
    assert at.file_uploader(key="tab_csv_upload").proto.max_upload_size_mb == MAX_CSV_BYTES // 2**20 == 50
    at.radio(key="tab_model_source").set_value("Upload a model")
    at.run()
    assert at.file_uploader(key="tab_model_upload").proto.max_upload_size_mb == MAX_MODEL_BYTES // 2**20
