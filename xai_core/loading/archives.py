"""Safe unpacking of a zipped model folder (a SavedModel, a Hugging Face or timm
folder) that a user uploads: untrusted input, unpacked once into a folder of ours.

Refused: paths that escape the destination, links, encrypted or unreadable
members, more than 20,000 members, and archives whose bytes actually written pass
2 GB or 50 times the zip's size (headers can lie, so the budget counts what is
written).
"""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from pathlib import Path

from xai_core.types import ModelLoadError

MAX_UNZIPPED_BYTES = 2 * 1024**3
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_RATIO = 50  # unpacked / packed; model weights compress little, zip bombs a lot


def zip_names(path: Path) -> list[str] | None:
    """The member names of a zip archive, or None when ``path`` is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return None


def read_zip_member(path: Path, name: str, limit: int = 2**20) -> bytes | None:
    """The bytes of one small member (at most ``limit`` bytes read), or None."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(name) as fh:
            return fh.read(limit + 1)[:limit]
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, RuntimeError, NotImplementedError, zlib.error):
        return None


def unpack_zip(zip_path: str | Path, dest: str | Path, what: str = "the model folder") -> Path:
    """Extract ``zip_path`` into ``dest`` (emptied first) -> ``dest``. A finished folder
    (marked by ``.unpacked``) is reused. ``what`` names the folder in messages."""
    zip_path, dest = Path(zip_path), Path(dest)
    label = zip_path.name
    root = dest.resolve()
    done = root / ".unpacked"
    if done.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    budget = min(MAX_UNZIPPED_BYTES, MAX_ZIP_RATIO * zip_path.stat().st_size + 2**20)
    try:
        _extract_within(zip_path, root, label, budget)
    except (zipfile.BadZipFile, EOFError, zlib.error):
        shutil.rmtree(root, ignore_errors=True)
        raise ModelLoadError(f"{label}: not a readable zip archive (zip {what} to upload it)") from None
    except (RuntimeError, NotImplementedError, OSError) as exc:  # encrypted, unknown compression, clashes
        shutil.rmtree(root, ignore_errors=True)
        text = " ".join(str(exc).split())[:120]
        raise ModelLoadError(
            f"{label}: cannot unpack the archive ({text}); zip {what} again without a password, with the "
            "standard (deflate) compression"
        ) from None
    except ModelLoadError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    done.write_text("ok")
    return root


def _extract_within(zip_path: Path, root: Path, label: str, budget: int) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS:
            raise ModelLoadError(f"{label}: more than {MAX_ZIP_MEMBERS} files in the archive")
        for member in members:
            target = (root / member.filename).resolve()
            is_link = (member.external_attr >> 16) & 0o170000 == 0o120000
            if is_link or not target.is_relative_to(root):
                raise ModelLoadError(f"{label}: refused, the archive entry {member.filename!r} points outside it")
        root.mkdir(parents=True, exist_ok=True)
        written = 0
        for member in members:
            target = (root / member.filename).resolve()
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with zf.open(member) as src, os.fdopen(fd, "wb") as out:
                while chunk := src.read(2**20):
                    written += len(chunk)
                    if written > budget:
                        raise ModelLoadError(
                            f"{label}: unpacks to more than {budget // 2**20} MB (a model zip may "
                            f"unpack to at most {MAX_ZIP_RATIO}x its size and 2 GB); refused"
                        )
                    out.write(chunk)
