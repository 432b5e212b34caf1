"""Notes on unreliable explanations: a poor LIME fit or an unconverged Integrated
Gradients path is never shown without comment (page and command line)."""

from __future__ import annotations

import json

from tabular_helpers import SAMPLE_CSV

from xai_core.service.quality import quality_notes
from xai_core.tabular import explain_row, load_table, open_tabular_model


def test_thresholds():
    assert quality_notes("lime", {"fit_r2": 0.10})[0].startswith("LIME's local linear fit has R² 0.10")
    assert quality_notes("lime", {"r2_score": 0.8}) == []
    note = quality_notes("integrated_gradients", {"convergence_delta": -0.77, "score": 0.9, "baseline_score": 0.1})
    assert "convergence delta -0.77 (96% of it)" in note[0] and "sum to 0.03" in note[0]
    assert quality_notes("integrated_gradients", {"convergence_delta": 0.01, "score": 0.9, "baseline_score": 0.1}) == []
    assert quality_notes("integrated_gradients", {"convergence_delta": 1e-4, "output": 0.5}, base_value=0.5) == []
    assert quality_notes("grad_cam", {"fit_r2": 0.0}) == []


def test_a_two_step_path_gets_a_note_and_a_converged_one_none():
    model = open_tabular_model("breast_cancer_mlp")
    data = load_table(SAMPLE_CSV, label_column="target", model_features=model.feature_names)
    rough = explain_row(model, data, 0, "integrated_gradients", {"steps": 2, "method": "riemann_trapezoid"})
    fine = explain_row(model, data, 0, "integrated_gradients", {"steps": 256})
    assert quality_notes(rough.method, rough.extras, rough.base_value)
    assert not quality_notes(fine.method, fine.extras, fine.base_value)


def test_the_command_line_prints_the_note(tmp_path, capsys):
    from xai_core.cli.tabular import main

    assert main(["explain-tabular", "--model", "breast_cancer_mlp", "--row", "0", "--method", "integrated_gradients",
                 "--param", "steps=2", "method=riemann_trapezoid", "--out", str(tmp_path)]) == 0
    assert "note: Integrated Gradients has not converged" in capsys.readouterr().out
    assert json.loads((tmp_path / "results.json").read_text())[0]["extras"]["convergence_delta"]
