"""A new user's first hour (issue 23): grids that show what is there (robust colour
scales, pixel-column CSVs), plain words for layers, bars and poor fits, the
report-ready figure from the command line, ROAD's measured random baseline and
the metrics table shown whole. The dashboard side is in test_first_hour_browser.py."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from tests.conftest import SAMPLES
from tests.test_cli import run_cli
from xai_core.types import Explanation, InputError, Prediction


def _explanation(att: np.ndarray, target: int = 0, label: str = "zero", signed: bool = True,
                 method: str = "shap_gradient", probabilities=None) -> Explanation:
    return Explanation(method=method, target=target, target_label=label, attribution=att.astype(np.float32),
                       predictions=[Prediction(target, label, 0.5)], params={}, seed=0, model_evals=1,
                       elapsed_s=0.0, signed=signed, probabilities=probabilities)


# -- grids: a robust shared scale, or one per row or per cell -------------------------------


def test_shared_grid_scale_is_shaps_image_plot_percentile_and_survives_one_outlier():
    from xai_core.render.grid import grid_scales, scale_legend

    rng = np.random.default_rng(0)
    maps = [rng.normal(0, 0.01, (16, 16)) for _ in range(6)]
    maps[0][3, 3] = 50.0  # one extreme pixel
    rows = [[_explanation(m) for m in maps[:3]], [_explanation(m) for m in maps[3:]]]
    scales = grid_scales(rows, "shared")
    # shap.image_plot: max_val = np.nanpercentile(np.abs(shap_values concatenated), 99.9)
    expected = np.nanpercentile(np.abs(np.concatenate([m.ravel() for m in maps])), 99.9)
    assert scales[0][0].vmax == pytest.approx(expected) and scales[0][0].vmin == pytest.approx(-expected)
    assert scales[0][0].vmax < 1.0 < 50.0  # the outlier saturates; the other maps keep their colours
    assert all(s == scales[0][0] for row in scales for s in row)
    assert "one colour scale for every map" in scale_legend("shared", scales)

    per_row = grid_scales(rows, "row")
    assert per_row[0][0] == per_row[0][2] and per_row[0][0] != per_row[1][0]
    per_cell = grid_scales(rows, "cell")
    assert per_cell[1][0].vmax == pytest.approx(np.percentile(np.abs(maps[3]), 99.9))
    assert "own scale" in scale_legend("cell", per_cell) and "per row" in scale_legend("row", per_row)
    with pytest.raises(InputError, match="unknown grid scale"):
        grid_scales(rows, "global")


def test_many_class_grid_fits_the_page_with_readable_labels():
    from xai_core import render
    from xai_core.render import grid

    rng = np.random.default_rng(1)
    picture = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    exps = [_explanation(rng.normal(size=(32, 32)), target=c, label=f"class number {c}") for c in range(10)]
    png = render.class_grid([(picture, exps), (picture, exps)], names=["a long item name: true 9, pred 4"] * 2,
                            scale="cell")
    assert png.shape[1] <= grid.PAGE_PX + 100  # 11 columns, shown at its own size on the page
    assert grid.FONT_PT / 72 * grid.DPI >= 11  # every label at least 11 px at 100% zoom
    assert grid.cell_inches(11) >= 0.7 and grid.cell_inches(2) == 2.2


# -- a CSV of pixel columns is read as images ----------------------------------------------


def _pixel_csv(path, images: np.ndarray, labels) -> None:
    n = images.shape[0]
    flat = images.reshape(n, -1)
    header = "label," + ",".join(f"pixel{i}" for i in range(flat.shape[1]))
    lines = [header] + [f"{lab}," + ",".join(str(int(v)) for v in row) for lab, row in zip(labels, flat, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def test_mnist_style_pixel_csv_reads_as_28x28_images(tmp_path):
    from xai_core.sets.data import open_set

    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    path = tmp_path / "mnist_train.csv"
    _pixel_csv(path, images, [3, 1, 4, 1, 5])
    dataset = open_set(path, [str(i) for i in range(10)], kind="image")
    assert dataset.kind == "image" and len(dataset) == 5 and list(dataset.labels) == [3, 1, 4, 1, 5]
    first = dataset.read(0)
    assert first.shape == (28, 28, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first[..., 0], images[0])
    # uploaded bytes take the same path
    uploaded = open_set(path.read_bytes(), [str(i) for i in range(10)], kind="image", name="mnist.csv")
    np.testing.assert_array_equal(uploaded.read(4)[..., 1], images[4])


def test_pixel_csv_shape_is_asked_when_not_square_and_checked(tmp_path):
    from xai_core.cli.display_args import parse_image_shape
    from xai_core.sets.data import open_set

    images = np.arange(2 * 4 * 6).reshape(2, 4, 6) % 256
    path = tmp_path / "wide.csv"
    _pixel_csv(path, images, ["0", "1"])
    with pytest.raises(InputError, match="24 pixel columns are not a square image; give the shape"):
        open_set(path, ["0", "1"], kind="image")
    dataset = open_set(path, ["0", "1"], kind="image", image_shape=parse_image_shape("4x6"))
    np.testing.assert_array_equal(dataset.read(1)[..., 2], images[1])
    with pytest.raises(InputError, match="do not make 5 x 5"):
        open_set(path, ["0", "1"], kind="image", image_shape=(5, 5))
    with pytest.raises(InputError, match="--image-shape"):
        parse_image_shape("twenty")


# -- plain words --------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    output_shape: tuple


def test_layers_are_described_in_plain_words_with_the_raw_name_beside():
    from xai_core.render.words import describe_layer, layer_label

    resnet = [Layer("conv1", "Conv2d", (64, 112, 112)), Layer("layer1", "InterpreterModule", (64, 56, 56)),
              Layer("layer2", "InterpreterModule", (128, 28, 28)), Layer("layer3", "InterpreterModule", (256, 14, 14)),
              Layer("layer4", "InterpreterModule", (512, 7, 7)), Layer("fc", "Linear", (1000,))]
    assert describe_layer(resnet[4], resnet, default="layer4") == \
        "last convolution block, 512 x 7 x 7, recommended for Grad-CAM"
    assert describe_layer(resnet[1], resnet) == "first convolution block, 64 x 56 x 56"
    assert describe_layer(resnet[5], resnet) == "fully connected layer, 1000 units"
    bn = Layer("_bn1", "BatchNorm2d", (1280, 7, 7))
    assert layer_label(bn, [bn]) == "normalisation, 1280 x 7 x 7  (_bn1 · BatchNorm2d)"


def test_bars_say_which_class_and_which_direction():
    from xai_core.render.bars import bar_figure
    from xai_core.render.words import direction_legend

    e = Explanation(method="kernel_shap", target=1, target_label="benign", attribution=np.array([0.3, -0.2], np.float32),
                    predictions=[Prediction(1, "benign", 0.8), Prediction(0, "malignant", 0.2)], params={}, seed=0,
                    model_evals=1, elapsed_s=0.0, probabilities=np.array([0.2, 0.8], np.float32),
                    feature_names=["a", "b"], feature_values=np.array([1.0, 2.0], np.float32), output=0.8,
                    base_value=0.7, inputs=["row"], input_kinds=["vector"])
    assert direction_legend(e) == ("red: pushes towards 'benign' · blue: pushes away from 'benign' "
                                   "(towards 'malignant')")
    fig = bar_figure(e)
    assert "pushes towards 'benign'" in fig.layout.xaxis.title.text
    assert list(fig.data[0].hovertext) == ["pushes away from 'benign' (towards 'malignant')", "pushes towards 'benign'"]


def test_kernel_shap_that_does_not_add_up_is_flagged_with_what_to_do():
    from xai_core.render.words import fit_notes

    def row(base: float, values, output: float) -> Explanation:
        return Explanation(method="kernel_shap", target=0, target_label="x", attribution=np.array(values, np.float32),
                           predictions=[], params={}, seed=0, model_evals=1, elapsed_s=0.0,
                           feature_names=["a", "b"], output=output, base_value=base, inputs=["row"],
                           input_kinds=["vector"])

    assert fit_notes(row(0.5, [0.2, 0.1], 0.8)) == []  # adds up
    notes = fit_notes(row(0.5, [0.05, 0.05], 0.8))  # 0.6 against 0.8
    assert len(notes) == 1 and "do not add up" in notes[0] and "nsamples" in notes[0]


# -- the report-ready figure from the command line -------------------------------------------


def test_cli_figure_writes_a_report_ready_png_beside_the_bare_overlay(tmp_path):
    from xai_core.render.figure import figure_title, units_label

    out = tmp_path / "out"
    done = run_cli("explain", "--model", "digits_cnn", "--image", str(SAMPLES / "digit_9.png"),
                   "--method", "integrated_gradients", "grad_cam", "--param", "steps=16", "--figure", "--out", str(out))
    assert done.returncode == 0, done.stderr
    records = json.loads((out / "results.json").read_text())
    for record in records:
        figure = out / f"digit_9__{record['method']}__figure.png"
        assert record["figure"] == str(figure)
        bare = Image.open(record["overlay"])
        fig = np.asarray(Image.open(figure).convert("RGB"))
        assert bare.size == Image.open(SAMPLES / "digit_9.png").size  # the bare overlay is unchanged
        assert fig.shape[1] > fig.shape[0]  # the colour bar sits right of the square picture
        # the colour bar's gradient: a column of many distinct colours right of the picture
        right = fig[:, int(fig.shape[1] * 0.7):]
        assert len({tuple(p) for p in right.reshape(-1, 3)}) > 50
    ig = next(r for r in records if r["method"] == "integrated_gradients")
    e = _explanation(np.zeros((2, 2)), target=ig["target"], label=ig["target_label"], method="integrated_gradients",
                     probabilities=np.array(ig["probabilities"], np.float32))
    title = figure_title(e)
    assert "Integrated Gradients" in title and f"'{ig['target_label']}'" in title
    assert f"p = {ig['predictions'][0]['probability']:.3f}" in title
    assert units_label(e) == "contribution to the probability"
    assert not (out / "digit_9__integrated_gradients__figure.png").with_name("x").exists()


# -- ROAD's random baseline is measured; the metrics table shows it ---------------------------


def test_road_random_baseline_is_measured_not_assumed(digits_adapter):
    from xai_core.inputs.images import load_image
    from xai_core.metrics.service import evaluate_inputs
    from xai_core.service import explain, prepare_inputs

    image = load_image(SAMPLES / "digit_9.png")
    exp = explain(digits_adapter, image, "saliency")
    result = evaluate_inputs(digits_adapter, prepare_inputs(digits_adapter, image), exp, ["road"],
                             {"road": {"steps": 4}})
    road = next(iter(result.values()))["road"]
    assert road.baseline is not None and road.baseline != 0.0
    assert abs(road.baseline) < 0.5
    assert road.model_evals == 16  # 4 percentiles x (MoRF, LeRF) x (the map, a random map)


def test_metrics_table_turns_to_one_column_per_method_and_never_shows_a_small_value_as_0():
    import pandas as pd

    from ui.tables import metrics_by_method, number, whole_height

    frame = pd.DataFrame({"Method": ["Grad-CAM", "Occlusion"], "mean rank": [1.0, 2.0],
                          "road (↑)": [0.21, 0.05], "road random": [0.0012, -0.004],
                          "deletion (↓)": [0.1, 0.3], "deletion random": [0.4, 0.4], "evals": [1200, 64],
                          "seconds": [1.5, 0.2]})
    shown = metrics_by_method(frame).set_index("metric")
    assert list(shown.columns) == ["Grad-CAM", "Occlusion"]
    assert shown.loc["road (↑ better)", "Grad-CAM"] == "0.21 (random 0.0012)"
    assert shown.loc["road (↑ better)", "Occlusion"] == "0.05 (random -0.004)"
    assert shown.loc["model evaluations", "Grad-CAM"] == "1,200"
    assert number(0.0) == "0" and number(3e-5) == "3e-05"
    assert whole_height(len(shown)) >= 35 * (len(shown) + 1)


# -- the README's examples are found wherever a page keeps them --------------------------------


def test_examples_are_parsed_from_shell_blocks_with_continuations(tmp_path):
    import docs_examples

    (tmp_path / "docs").mkdir()
    (tmp_path / "README.md").write_text("```bash\n. .venv/bin/activate\npython -m xai_core models   # the zoo\n```\n")
    (tmp_path / "docs" / "page.md").write_text(
        "text\n\n```bash\npython -m xai_core explain --model m \\\n    --image 'a b.png' --out out/\n"
        "python -m xai_core explain-set ... --engine ray --address HEAD_IP:6379\n```\n\n"
        "```python\npython -m xai_core not-shell\n```\n")
    found = docs_examples.examples(tmp_path)
    assert [(e.page, e.line, e.argv) for e in found] == [
        ("README.md", 3, ("models",)),
        ("docs/page.md", 4, ("explain", "--model", "m", "--image", "a b.png", "--out", "out/")),
        ("docs/page.md", 6, ("explain-set", "...", "--engine", "ray", "--address", "HEAD_IP:6379")),
    ]
    (tmp_path / "a b.png").write_bytes(b"")
    assert [docs_examples.runnable(e, tmp_path) for e in found] == [True, True, False]
    your_own = docs_examples.Example("p", 1, ("explain", "--model", "m", "--image", "cat.jpg"))  # not shipped
    hub = docs_examples.Example("p", 1, ("explain", "--model", "hf-hub:google/vit", "--image", "a b.png"))
    assert not docs_examples.runnable(your_own, tmp_path) and not docs_examples.runnable(hub, tmp_path)
    moved = docs_examples.with_out_under(found[1].argv, tmp_path / "o")
    assert moved[-1] == str(tmp_path / "o" / "out")
