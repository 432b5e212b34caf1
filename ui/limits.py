"""Upload size limits per kind of file, taken from what the service accepts, so each
uploader states (and Streamlit enforces) the real limit instead of one global one."""

from __future__ import annotations

from xai_core.inputs.backgrounds import MAX_UPLOAD_BYTES as BACKGROUND_BYTES
from xai_core.inputs.images import MAX_FILE_BYTES as IMAGE_BYTES
from xai_core.inputs.labels import MAX_LABELS_BYTES
from xai_core.inputs.tables import MAX_CSV_BYTES
from xai_core.loading.torch import (
    MAX_MODEL_BYTES,  # image and tabular models go through the same check_model_file
)


def _mb(n: int) -> int:
    return max(1, n // 2**20)


# megabytes, for st.file_uploader(max_upload_size=...)
IMAGE_MB = _mb(IMAGE_BYTES)
LABELS_MB = _mb(MAX_LABELS_BYTES)
IMAGE_MODEL_MB = TABULAR_MODEL_MB = _mb(MAX_MODEL_BYTES)
CSV_MB = _mb(MAX_CSV_BYTES)
BACKGROUND_MB = _mb(BACKGROUND_BYTES)
