"""The sample images the gallery offers.

Files in ``sample_images/`` come first. When that folder is missing or empty the
gallery falls back to a few photos bundled with scikit-image (a runtime
dependency), so the one-click start still has something to explain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xai_core.inputs.images import SUPPORTED_SUFFIXES, load_image

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "sample_images"
SKIMAGE_PHOTOS = ("chelsea", "coffee", "astronaut")
QUICKSTART_PREFERENCE = ("chelsea_cat.jpg", "chelsea.png")


@dataclass(frozen=True)
class Sample:
    name: str  # what the gallery shows and the reproduce command uses as --image
    path: Path | None  # the file, or None for a scikit-image photo
    skimage_name: str | None = None

    @property
    def command_path(self) -> str:
        """How the command line refers to this image."""
        if self.path is None:
            return self.name
        try:
            return str(self.path.relative_to(SAMPLE_DIR.parent))
        except ValueError:
            return str(self.path)

    def load(self) -> np.ndarray:
        if self.path is not None:
            return load_image(self.path, self.name)
        import skimage.data

        image = getattr(skimage.data, self.skimage_name or "chelsea")()
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        return np.ascontiguousarray(image[:, :, :3].astype(np.uint8))

    def read_bytes(self) -> bytes:
        """The encoded file (PNG for a scikit-image photo), as a download would give it."""
        if self.path is not None:
            return self.path.read_bytes()
        from xai_core.render import to_png

        return to_png(self.load())


def list_samples(folder: Path = SAMPLE_DIR) -> list[Sample]:
    files = sorted(
        p for p in folder.glob("*") if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
    ) if folder.is_dir() else []
    if files:
        return [Sample(p.name, p) for p in files]
    return [Sample(f"{name}.png", None, name) for name in SKIMAGE_PHOTOS]


def quickstart_sample(samples: list[Sample]) -> Sample:
    """The photo the landing page's one-click start explains."""
    by_name = {s.name: s for s in samples}
    for name in QUICKSTART_PREFERENCE:
        if name in by_name:
            return by_name[name]
    photos = [s for s in samples if not s.name.startswith("digit")]
    return (photos or samples)[0]
