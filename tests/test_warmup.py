"""The one-click start's warm-up (ui/warmup.py) loads the very model the click asks
for, so the click finds it in the shared model cache instead of loading it again."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

import xai_core.loading.models

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_warmup_fills_the_model_cache_the_one_click_start_uses(monkeypatch):
    from ui import cache, warmup

    opened = []
    real = xai_core.loading.models.open_model

    def counting(*args, **kwargs):
        opened.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(xai_core.loading.models, "open_model", counting)
    cache._load_model.clear()
    warmup._warm()
    assert opened == ["efficientnet_lite0"]
    at = AppTest.from_file(APP, default_timeout=180).run()
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert "Overlay: Grad-CAM" in [c for img in at.get("image") for c in img.captions]
    assert opened == ["efficientnet_lite0"]  # the click reused the warmed model
