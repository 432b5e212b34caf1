"""CSV tables: the good path, and each kind of bad file with its own clear error."""

from __future__ import annotations

import numpy as np
import pytest
from tabular_helpers import SAMPLE_CSV

from xai_core.inputs.tables import load_table, read_columns
from xai_core.types import InputError


def test_sample_csv_reads_with_label_column():
    data = load_table(SAMPLE_CSV, label_column="target", n_features=30)
    assert data.x.shape == (100, 30) and data.x.dtype == np.float32
    assert data.feature_names[0] == "mean radius" and "target" not in data.feature_names
    assert set(data.labels) == {0, 1}
    assert read_columns(SAMPLE_CSV)[-1] == "target"


def test_feature_columns_choose_and_order():
    data = load_table(b"a,b,c,label\n1,2,3,x\n4,5,6,y\n", label_column="label", feature_columns=["c", "a"])
    assert data.feature_names == ["c", "a"]
    assert data.x.tolist() == [[3, 1], [6, 4]]
    assert data.labels == ["x", "y"]  # a text label column is fine; it is never fed to the model


def test_label_column_may_be_omitted():
    data = load_table(b"a,b\n1,2\n", name="t.csv")
    assert data.feature_names == ["a", "b"] and data.labels is None


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        (b"", {}, r"t\.csv: the file is empty"),
        (b"   \n\n", {}, r"t\.csv: the file is empty"),
        (b"a,b\n", {}, r"a header but no data rows"),
        (b"a,b\n1,2\n3,\n", {}, r"column 'b' has 1 missing value\(s\) \(row 1\)"),
        (b"a,b\n1,2\n3,NA\n5,6\n,8\n", {}, r"column 'a' has 1 missing value\(s\) \(row 3\)"),
        (b"a,b\n1,2\n3,seven\n", {}, r"column 'b' is not numeric \(row 1 holds 'seven'\)"),
        (b"a,b\n1,inf\n", {}, r"column 'b' has an infinite value at row 0"),
        (b"1,2\n3,4\n", {}, r"first line looks like data, not a header"),
        (b"a,,c\n1,2,3\n", {}, r"column 2 has no name"),
        (b"a,b\n1,2,3\n", {}, r"more fields than the header"),
        (b"a,b\n1,2\n4,5,6\n", {}, r"not a readable CSV.*line 3"),
        (b"\xff\xfe\x00a\x00", {}, r"not a UTF-8 text file"),
        (b"a,b\n1,2\n", {"label_column": "y"}, r"no column named 'y'; columns: a, b"),
        (b"a,b\n1,2\n", {"feature_columns": ["a", "z"]}, r"no column named 'z'"),
        (b"a,b\n1,2\n", {"label_column": "a", "feature_columns": ["a"]}, r"label column 'a' cannot also be a feature"),
        (b"a,b\n1,2\n", {"feature_columns": ["a", "a"]}, r"'a' is chosen twice"),
        (b"a\n1\n", {"label_column": "a"}, r"no feature columns left"),
        (b"a,b,c\n1,2,3\n", {"n_features": 30}, r"3 feature columns chosen but the model takes 30 features"),
    ],
)
def test_bad_csv_gives_its_specific_error(content, kwargs, message):
    with pytest.raises(InputError, match=message):
        load_table(content, name="t.csv", **kwargs)


def test_size_and_row_limits(tmp_path):
    big = b"a,b\n" + b"1,2\n" * 50
    with pytest.raises(InputError, match=r"big\.csv: larger than 100 bytes"):
        load_table(big, name="big.csv", max_bytes=100)
    path = tmp_path / "big.csv"
    path.write_bytes(big)
    with pytest.raises(InputError, match=r"big\.csv: larger than"):
        load_table(path, max_bytes=100)
    with pytest.raises(InputError, match=r"50 rows; the limit is 10"):
        load_table(big, name="big.csv", max_rows=10)
    with pytest.raises(InputError, match=r"no such CSV file"):
        load_table(tmp_path / "missing.csv")


def test_row_lookup_errors():
    data = load_table(b"a,b\n1,2\n3,4\n", name="t.csv")
    assert data.row(1).tolist() == [3, 4]
    with pytest.raises(InputError, match=r"row 2 is out of range: t\.csv has 2 rows \(0\.\.1\)"):
        data.row(2)
    with pytest.raises(InputError, match="out of range"):
        data.row(-1)


def _reordered_sample(drop: str | None = None, rename: dict | None = None) -> bytes:
    """The sample CSV with its columns reversed (label first), optionally one dropped or renamed."""
    import pandas as pd

    frame = pd.read_csv(SAMPLE_CSV)
    frame = frame[list(reversed(frame.columns))]
    if drop:
        frame = frame.drop(columns=[drop])
    if rename:
        frame = frame.rename(columns=rename)
    return frame.to_csv(index=False).encode()


def test_columns_are_matched_to_the_model_by_name_in_any_order():
    names = read_columns(SAMPLE_CSV)[:-1]
    original = load_table(SAMPLE_CSV, label_column="target", model_features=names)
    reordered = load_table(_reordered_sample(), label_column="target", model_features=names)
    assert reordered.feature_names == names
    assert np.array_equal(reordered.x, original.x) and reordered.labels == original.labels
    positional = load_table(_reordered_sample(), label_column="target")
    assert not np.array_equal(positional.x, original.x)  # the model's names are what makes the order right


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"drop": "mean texture"}, r"missing 1 of the model's features: 'mean texture'; rename"),
        ({"rename": {"mean texture": "mean textur"}},
         r"missing 1 of the model's features: 'mean texture'; 1 column\(s\) the model does not take: 'mean textur'"),
        ({"rename": {"target": "diagnosis"}}, r"1 column\(s\) the model does not take: 'diagnosis'.*label column"),
    ],
)
def test_missing_extra_or_misnamed_columns_are_named(kwargs, message):
    names = read_columns(SAMPLE_CSV)[:-1]
    label = "target" if "target" not in kwargs.get("rename", {}) else None
    with pytest.raises(InputError, match=r"t\.csv: columns are matched to the model's 30 features by name; " + message):
        load_table(_reordered_sample(**kwargs), name="t.csv", label_column=label, model_features=names)


def test_chosen_columns_must_be_the_models_features():
    data = load_table(b"b,a,c\n2,1,3\n", model_features=["a", "b"], feature_columns=["b", "a"])
    assert data.feature_names == ["a", "b"] and data.x.tolist() == [[1, 2]]
    with pytest.raises(InputError, match=r"missing 1 of the model's features: 'b'; 1 column\(s\) .*: 'c'"):
        load_table(b"b,a,c\n2,1,3\n", model_features=["a", "b"], feature_columns=["a", "c"])
    with pytest.raises(InputError, match=r"'a' is one of the model's features; it cannot be the label column"):
        load_table(b"b,a,c\n2,1,3\n", model_features=["a", "b"], label_column="a")


def test_label_column_found_by_name():
    from xai_core.inputs.tables import default_label_column

    columns = ["x1", "Target", "x2"]
    assert default_label_column(columns) == "Target"
    assert default_label_column(columns, model_label="x2") == "x2"
    assert default_label_column(columns, model_label="diagnosis") == "Target"
    assert default_label_column(["x1", "y", "label"]) is None  # two candidates: the user chooses
    assert default_label_column(["x", "y"], model_features=["x", "y"]) is None  # a model feature is never the label
    assert default_label_column(["a", "b"]) is None


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"feature_names": "a,b"}, "must be a list of column names"),
        ({"feature_names": ["a", ""]}, "must be a list of column names"),
        ({"feature_names": ["a", "a"]}, "repeat 'a'"),
        ({"feature_names": ["a", "b", "c"]}, "names 3 features but the model takes 2"),
    ],
)
def test_bad_sidecar_feature_names(sidecar, message):
    from xai_core.inputs.tables import feature_names_from_sidecar

    assert feature_names_from_sidecar({}, 2, "m.onnx") is None
    assert feature_names_from_sidecar({"feature_names": ["a", "b"]}, 2, "m.onnx") == ["a", "b"]
    with pytest.raises(InputError, match=message):
        feature_names_from_sidecar(sidecar, 2, "m.onnx")
