"""Plot helpers: what the figures encode, checked on their data."""

from __future__ import annotations

import numpy as np
import pytest
from tabular_helpers import SAMPLE_CSV

from xai_core.render import bars as plots
from xai_core.tabular import explain_row, explain_rows, load_table, open_tabular_model
from xai_core.types import UnsupportedError


@pytest.fixture(scope="module")
def setup():
    model = open_tabular_model("breast_cancer_mlp")
    data = load_table(SAMPLE_CSV, label_column="target", n_features=model.n_features)
    expl = explain_row(model, data, 7, "integrated_gradients", {"steps": 64}, target=0)
    return model, data, expl


def test_bar_figure_sorted_by_magnitude_with_values(setup):
    _, data, expl = setup
    fig = plots.bar_figure(expl, top_k=10)
    bar = fig.data[0]
    magnitudes = np.abs(np.array(bar.x))
    assert len(bar.x) == 10 and np.all(np.diff(magnitudes) >= 0)  # largest drawn last = on top
    top_feature = bar.y[-1]
    assert top_feature == expl.ranked()[0][0]
    j = data.feature_names.index(top_feature)
    assert bar.text[-1] == f"= {float(data.x[7, j]):.4g}"
    colors = ["red" if v >= 0 else "blue" for v in bar.x]
    assert [c == "red" for c in colors] == [m == plots.POSITIVE for m in bar.marker.color]


def test_waterfall_runs_from_base_value_to_output(setup):
    _, _, expl = setup
    fig = plots.waterfall_figure(expl, top_k=8)
    wf = fig.data[0]
    assert wf.measure[0] == "absolute" and wf.x[0] == pytest.approx(expl.base_value)
    assert wf.measure[-1] == "total" and wf.y[-1] == "output"
    assert wf.y[-2] == "22 other features"
    end = float(np.sum(wf.x[:-1]))
    assert end == pytest.approx(expl.base_value + sum(expl.by_feature().values()), abs=1e-9)
    assert end == pytest.approx(expl.output, abs=abs(expl.extras["convergence_delta"]) + 1e-6)
    assert fig.layout.yaxis.autorange == "reversed"


def test_waterfall_refuses_lime(setup):
    model, data, _ = setup
    lime = explain_row(model, data, 7, "lime", {"samples": 200})
    with pytest.raises(UnsupportedError, match="no base value"):
        plots.waterfall_figure(lime)


def test_summary_figures_and_png(setup, tmp_path):
    model, data, expl = setup
    summary = explain_rows(model, data, list(range(8)), "integrated_gradients", {"steps": 16}, target=1)
    imp = plots.importance_figure(summary, top_k=5).data[0]
    assert list(imp.y)[::-1] == list(summary.mean_abs.index[:5])
    swarm = plots.beeswarm_figure(summary, top_k=5).data[0]
    assert len(swarm.x) == 5 * 8
    assert np.nanmin(swarm.marker.color) >= 0 and np.nanmax(swarm.marker.color) <= 1
    png = plots.save_bar_png(expl, tmp_path / "bar.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
