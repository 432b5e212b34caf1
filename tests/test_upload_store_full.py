"""The upload store on a full disk (issue 20): one clear line, earlier files kept,
nothing half-written left behind."""

from __future__ import annotations

import os

import pytest

from xai_core.inputs import uploads
from xai_core.types import InputError


def test_full_disk_gives_one_line_and_keeps_earlier_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_UPLOAD_DIR", str(tmp_path / "store"))
    earlier = uploads.store_upload(b"first model bytes", "first.onnx")
    real_fdopen = os.fdopen

    def full_disk(fd, mode="r", *args, **kwargs):  # every write now fails as on a full disk
        os.close(fd)
        return real_fdopen(os.open("/dev/full", os.O_WRONLY), mode, *args, **kwargs)

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    monkeypatch.setattr(os, "fdopen", full_disk)
    with pytest.raises(InputError) as info:
        uploads.store_upload(b"x" * 100_000, "second.pt2", sidecar=b"{}")
    text = str(info.value)
    assert text.startswith("second.pt2: the upload store could not keep the file (No space left on device)")
    assert "earlier uploads are kept" in text and "\n" not in text
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert earlier.read_bytes() == b"first model bytes"
    left = sorted(p.name for p in (tmp_path / "store").rglob("*") if p.is_file())
    assert left == ["first.onnx"]  # no partial file, no empty folder of the failed upload
    assert [p for p in (tmp_path / "store").iterdir()] == [earlier.parent]
    again = uploads.store_upload(b"x" * 100_000, "second.pt2")  # space again: it is stored
    assert again.read_bytes() == b"x" * 100_000
