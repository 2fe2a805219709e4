"""BENCHMARKS.md is assembled from sections, one per benchmark script, each between markers,
so every script rewrites only its own results."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = (
    "# Benchmarks\n\nMeasured on this project's machine; each section says how to reproduce it.\n"
)


def write_section(path: Path, name: str, markdown: str) -> None:
    """Replace (or append) the section `name` of the file at `path`."""
    start, end = f"<!-- section:{name} -->", f"<!-- /section:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text if text.endswith("\n") else text + "\n")
