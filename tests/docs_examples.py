"""The ``python -m xai_core`` examples of the README and the docs pages, parsed out
of their fenced shell blocks, so that an example moved from one page to another
stays checked (tests/test_runtime_examples.py runs them in a venv that holds
requirements.txt only).

A command may span lines joined by a trailing backslash; ``#`` comments are
dropped. Commands that are templates rather than examples (``...``, a
placeholder such as ``HEAD_IP``, a Ray cluster address) are not runnable as they
stand and are left out by :func:`runnable`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHELL_FENCES = ("bash", "sh", "shell", "console", "")
PLACEHOLDERS = ("...", "HEAD_IP", "<", ">", "--address")


@dataclass(frozen=True)
class Example:
    page: str  # path relative to the repository
    line: int  # first line of the command in the page
    argv: tuple[str, ...]  # the arguments after `python -m xai_core`

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}:{' '.join(self.argv[:1])}"


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _blocks(text: str):
    """(first line number, lines) of every fenced block whose language is a shell."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", lines[i])
        if not match:
            i += 1
            continue
        fence, lang = match.group(1), match.group(2).lower()
        start = i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        if lang in SHELL_FENCES:
            yield start + 1, lines[start:j]
        i = j + 1


def examples(root: Path = ROOT) -> list[Example]:
    """Every ``python -m xai_core ...`` command in the shell blocks of the pages."""
    found = []
    for page in pages(root):
        if not page.is_file():
            continue
        rel = str(page.relative_to(root))
        for first, block in _blocks(page.read_text(encoding="utf-8")):
            k = 0
            while k < len(block):
                start, text = first + k, block[k]
                while text.rstrip().endswith("\\") and k + 1 < len(block):
                    k += 1
                    text = text.rstrip()[:-1] + " " + block[k]
                k += 1
                text = text.strip().removeprefix("$ ")
                if not text.startswith("python -m xai_core"):
                    continue
                words = shlex.split(text, comments=True)
                found.append(Example(rel, start, tuple(words[3:])))
    return found


FILE_FLAGS = ("--model", "--image", "--data")


def _files(argv: tuple[str, ...]):
    """(flag, value) for the values of the flags that name files (or a zoo model)."""
    flag = None
    for word in argv:
        if word.startswith("--"):
            flag = word if word in FILE_FLAGS else None
        elif flag is not None:
            yield flag, word


def _names_a_local_thing(flag: str, value: str, root: Path) -> bool:
    if flag == "--model" and ":" in value or value.startswith("timm/"):
        return False  # a hub model: nothing may be downloaded here
    if flag == "--model" and "/" not in value and not Path(value).suffix:
        return True  # a zoo name
    return (root / value).exists()


def runnable(example: Example, root: Path = ROOT) -> bool:
    """False for a template: ``...``, a placeholder, a cluster address, a hub model,
    or a file that the checkout does not hold (``cat.jpg``: "your own file")."""
    if any(p in word for word in example.argv for p in PLACEHOLDERS):
        return False
    return all(_names_a_local_thing(flag, value, root) for flag, value in _files(example.argv))


def with_out_under(argv: tuple[str, ...], folder: Path) -> list[str]:
    """The arguments with ``--out DIR`` moved under ``folder`` (DIR keeps its name),
    so that a run writes nothing into the checkout."""
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word == "--out":
            out[i + 1] = str(folder / out[i + 1].strip("/").replace("/", "_"))
    return out
