"""The pieces of a self-contained HTML page: one stylesheet, escaped text, tables, embedded figures.

The corpus report and the evaluation report are built from them, so both look alike and open
offline as single files (images are base64 PNG, styles inline).

Example:
    >>> row = [("text", escape("a<b>.wav")), ("number", number(0.25, ".2f"))]
    >>> table(["file", "error"], [row]).split("<tbody>")[1]
    '<tr><td class="text">a&lt;b&gt;.wav</td><td class="number">0.25</td></tr></tbody></table>'
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from speechae.atomic import atomic_path

__all__ = ["MISSING", "STYLE", "escape", "number", "png", "table", "write_page"]

#: How a number that is not defined is shown.
MISSING = "–"

STYLE = """
body { margin: 0; background: #f4f5f7; color: #1c2230;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 8px 24px 32px; }
h1 { font-size: 1.6em; margin: 20px 0 4px; }
h2 { font-size: 1.2em; margin: 0 0 10px; }
section { background: #fff; border: 1px solid #d9dde4; border-radius: 6px; padding: 16px 20px;
  margin: 16px 0; }
p.note { color: #4a5263; margin: 0 0 12px; max-width: 80ch; }
table { border-collapse: collapse; font-size: 0.92em; }
th, td { border-bottom: 1px solid #e4e7ec; padding: 5px 12px 5px 0; text-align: left;
  vertical-align: top; }
th { color: #4a5263; font-weight: 600; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
td.text { word-break: break-all; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
figure { margin: 0; }
figcaption { font-size: 0.9em; color: #4a5263; margin-bottom: 4px; word-break: break-all; }
img { max-width: 100%; height: auto; border: 1px solid #e4e7ec; }
"""


def escape(value: object) -> str:
    """``value`` as text safe inside HTML, quotes included."""
    return html.escape(str(value), quote=True)


def number(value: float, fmt: str) -> str:
    """``value`` formatted with ``fmt``, or :data:`MISSING` when it is not finite."""
    return format(value, fmt) if value is not None and np.isfinite(value) else MISSING


def table(headers: Sequence[str], rows: Iterable[Sequence[tuple[str, str]]]) -> str:
    """An HTML table; each cell is ``(kind, escaped html)`` with kind ``number`` or ``text``."""
    head = "".join(f"<th>{escape(header)}</th>" for header in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="{kind}">{cell}</td>' for kind, cell in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def png(figure: Figure, dpi: float, alt: str) -> str:
    """``figure`` as an ``<img>`` holding its PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{escape(alt)}">'


def write_page(path: str | os.PathLike[str], title: str, heading: str, sections: Sequence[str]) -> None:
    """Write a page: ``title`` (h1), a ``heading`` line under it, then ``sections`` (HTML).

    The page is written under a temporary name and renamed when complete.
    """
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}: {escape(heading)}</title>\n<style>{STYLE}</style>\n"
        "</head>\n<body>\n<main>\n"
        f'<h1>{escape(title)}</h1>\n<p class="note">{escape(heading)}</p>\n'
        + "\n".join(sections)
        + "\n</main>\n</body>\n</html>\n"
    )
    with atomic_path(Path(path)) as partial:
        partial.write_text(page, encoding="utf-8")
