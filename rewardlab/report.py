"""The one HTML report writer: a page of sections, each built from small HTML fragments.

Every verb that writes a report (``eval``, ``study``, …) builds its page from these functions and adds
only what it shows; none writes its own page skeleton, CSS, tables or image tags.

    page = report.page("Title", [
        report.cards([("pairs", "300"), ("accuracy", "0.71")]),
        report.section("Metrics", report.table(["metric", "value"], [["accuracy", 0.7123]])),
        report.section("Plots", report.figure(out / "margins.png", "Δ per pair")),
    ], subtitle="one line under the title", footer="a note at the bottom")
    report.write(out / "report.html", page)

Conventions: arguments named ``text``, ``title``, ``caption``, cells and items are plain text and are
HTML-escaped here; ``parts`` are HTML fragments returned by these functions and are joined as they are.
Table cells that are numbers (or None) are formatted with ``format_value`` and right-aligned.
Figures are PNG files, embedded as base64 (the page then stands alone) or linked by file name.

Bottom layer: imports the standard library and numpy only, nothing from rewardlab.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["format_value", "is_number", "flatten_metrics", "table", "records_table", "figure", "figures", "cards",
           "paragraph", "bullets", "section", "page", "write"]


# --------------------------------------------------------------------------- numbers


def format_value(v: Any) -> str:
    """A value as short text: 4 significant digits, scientific outside [1e-3, 1e5), '—' for None."""
    if v is None:
        return "—"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x) or math.isinf(x):
            return str(x)
        if x == 0 or 1e-3 <= abs(x) < 1e5:
            return f"{x:.4g}"
        return f"{x:.3e}"
    if isinstance(v, (list, tuple, np.ndarray)):
        items = list(v)
        if len(items) > 12:
            return f"[{len(items)} values]"
        return "[" + ", ".join(format_value(i) for i in items) + "]"
    return str(v)


def is_number(v: Any) -> bool:
    """An int or float (numpy included), not a bool."""
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts → one level with dotted keys: {"a": {"b": 1}} → {"a.b": 1}. Lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


# --------------------------------------------------------------------------- fragments


def _e(text: Any) -> str:
    return html.escape(str(text))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], *, best: Iterable[tuple[int, int]] = (),
          css_class: str = "") -> str:
    """A table: ``header`` names the columns, each row is a list of cells (text, or numbers shown with
    ``format_value``). ``best``: (row, column) positions shown in bold accent. ``css_class`` "metrics":
    a narrow two-column table."""
    best = set(best)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, v in enumerate(row):
            cls = " ".join(c for c in ("num" if v is None or is_number(v) else "", "best" if (i, j) in best else "") if c)
            cells.append(f'<td class="{cls}">' if cls else "<td>")
            cells.append(f"{_e(format_value(v))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    cls = f' class="{css_class}"' if css_class else ""
    return (f'<div class="table-wrap"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
            "</tbody></table></div>")


def records_table(records: Sequence[Mapping[str, Any]]) -> str:
    """A list of dicts as a table: the union of their keys (in first-seen order) as columns."""
    if not records:
        return paragraph("No rows.")
    columns = list(dict.fromkeys(k for r in records for k in r))
    return table([str(c) for c in columns], [[r.get(c) for c in columns] for r in records])


def figure(png: str | Path, caption: str = "", *, embed: bool = True) -> str:
    """A PNG with its caption: embedded as base64 (``embed``), else linked by file name (the PNG then
    has to sit beside the page)."""
    png = Path(png)
    src = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii") if embed else png.name
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{_e(src)}" alt="{_e(caption or png.stem)}">{cap}</figure>'


def figures(*parts: str) -> str:
    """Figures side by side in a grid of columns at least 520 px wide (one column on a narrow page)."""
    return f'<div class="plots">{"".join(parts)}</div>'


def cards(items: Iterable[tuple[str, str]]) -> str:
    """A row of headline numbers: (label, value text) pairs."""
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{_e(k)}</div><div class="value">{_e(v)}</div></div>' for k, v in items
    ) + "</div>"


def paragraph(text: str) -> str:
    return f"<p>{_e(text)}</p>"


def bullets(items: Iterable[str]) -> str:
    return "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in items) + "</ul>"


def section(heading: str, *parts: str, level: int = 2) -> str:
    """A heading (h2, or h3 for ``level`` 3) and the fragments under it."""
    return f"<section><h{level}>{_e(heading)}</h{level}>{''.join(parts)}</section>"


# --------------------------------------------------------------------------- page

CSS = """
:root { --ink:#1f2933; --muted:#616e7c; --line:#e4e7eb; --bg:#f7f8fa; --accent:#2b7bba; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
       font:15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width:1240px; margin:0 auto; padding:28px 24px 48px; }
header h1 { margin:0 0 4px; font-size:26px; }
header p { margin:0; color:var(--muted); }
h2 { font-size:19px; margin:34px 0 12px; padding-bottom:6px; border-bottom:1px solid var(--line); }
h3 { font-size:16px; margin:22px 0 8px; }
li { margin:.3em 0; }
.cards { display:grid; grid-template-columns:repeat(auto-fit, minmax(150px, 1fr)); gap:12px; margin-top:20px; }
.card { background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:24px; font-weight:600; margin-top:2px; font-variant-numeric:tabular-nums; }
.plots { display:grid; grid-template-columns:repeat(auto-fit, minmax(520px, 1fr)); gap:16px; }
figure { margin:0 0 16px; background:#fff; border:1px solid var(--line); border-radius:8px; padding:12px; }
.plots figure { margin:0; }
figure img { max-width:100%; height:auto; display:block; margin:0 auto; }
.plots figure img { width:100%; }
figcaption { color:var(--muted); font-size:13px; margin-top:6px; }
.table-wrap { overflow-x:auto; background:#fff; border:1px solid var(--line); border-radius:8px;
              width:fit-content; max-width:100%; margin:8px 0; }
table { border-collapse:collapse; width:100%; font-size:14px; }
table.metrics { width:auto; min-width:min(640px, 100%); }
table.metrics td:first-child { padding-right:48px; }
th, td { padding:6px 12px; text-align:left; border-bottom:1px solid var(--line); white-space:nowrap; }
th { background:#eef2f6; font-weight:600; position:sticky; top:0; }
td.num { text-align:right; font-variant-numeric:tabular-nums; font-family:ui-monospace, Menlo, Consolas, monospace; }
tr:nth-child(even) td { background:#fafbfc; }
td.best { font-weight:700; color:var(--accent); }
footer { margin-top:36px; color:var(--muted); font-size:12px; }
"""


def page(title: str, parts: Iterable[str], *, subtitle: str | None = None, footer: str | None = None) -> str:
    """A whole HTML page: the title (with ``subtitle`` under it), the fragments, then ``footer``.
    Self-contained: the CSS is inline and nothing is fetched."""
    sub = paragraph(subtitle) if subtitle else ""
    foot = f"<footer>{_e(footer)}</footer>" if footer else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>"
        f"<body><main><header><h1>{_e(title)}</h1>{sub}</header>{''.join(parts)}{foot}</main></body></html>\n"
    )


def write(path: str | Path, html_page: str) -> Path:
    """Write ``html_page`` (UTF-8) to ``path``, creating its folder; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html_page, encoding="utf-8")
    return path
