"""Report folders in words: the figures a report holds and the run it was made from."""

from __future__ import annotations

import html
import re
from pathlib import Path


def describe_report(path: Path) -> dict:
    """``{"path", "title", "figures": [file names], "missing": [figures index.html names that
    are not in the folder], "summary": the report's first paragraph as text}``."""
    page = (path / "index.html").read_text(errors="replace")
    named = re.findall(r"""src=["']([^"']+\.png)["']""", page)
    title = re.search(r"<title>(.*?)</title>", page, re.S)
    first = re.search(r"<p>(.*?)</p>", page, re.S)
    return {
        "path": str(path),
        "title": html.unescape(title.group(1).strip()) if title else "",
        "figures": sorted(p.name for p in path.glob("*.png")),
        "missing": [n for n in named if not (path / n).is_file()],
        "summary": html.unescape(re.sub(r"<[^>]+>", "", first.group(1))).strip() if first else "",
    }


def format_report(d: dict) -> str:
    """Text of ``describe_report``."""
    lines = [f"{d['path']}: report {d['title']!r}, {len(d['figures'])} figures", f"  {d['summary']}"]
    lines += [f"  {name}" for name in d["figures"]]
    if d["missing"]:
        lines.append(f"  index.html names {len(d['missing'])} figures that are missing: {', '.join(d['missing'])}")
    return "\n".join(lines)


__all__ = ["describe_report", "format_report"]
