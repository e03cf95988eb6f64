"""The same :class:`~sweep.answers.tables.Report` as Markdown, as one self-contained HTML
page (pictures and plotly.js embedded: nothing is downloaded when it is opened) and as a
terminal table that fits the terminal's width."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweep.answers.figure import plotly_js
from sweep.answers.tables import HTML_FILE, Report, Table


# ------------------------------------------------------------------ renderers
def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(table: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in table.headers) + " |",
             # Labels left, numbers right, as in the terminal.
             "| --- |" + "".join(" ---: |" for _ in table.headers[1:])]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    parts = [f"# Study `{report.study_name}`: where the penalties belong", ""]
    parts += [f"- {line}" for line in report.summary] + [""]
    for table in report.tables:
        parts += [f"## {table.title}", "", markdown_table(table), ""]
        parts += [f"- {note}" for note in table.notes] + [""]
    parts += ["## Figures", ""]
    for figure in report.figures:
        parts += [f"### {figure.title}", ""]
        if figure.skipped:
            parts += [f"_Skipped: {figure.skipped}._", ""]
            continue
        parts += [f"![{figure.title}]({figure.png})", "",
                  f"[interactive version]({HTML_FILE}#{figure.name})", ""]
        if figure.note:
            parts += [f"_{figure.note}._", ""]
    return "\n".join(parts)


# The page fits a 1280-px window: headers and text cells wrap between words, figures
# keep to one line per number (no-break), the widest table scrolls inside itself rather
# than widening the page.
_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1240px;
       color: #222; padding: 0 1em; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.8em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.35em; text-align: right;
         vertical-align: top; }
th { background: #f0f0f0; font-weight: 600; }
td { font-variant-numeric: tabular-nums; }
td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
.notes, .skipped, .note { color: #555; font-size: 0.9em; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.nb { white-space: nowrap; }
.chart { width: 100%; min-height: 450px; border: 1px solid #ddd; }
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _html_cell(text: str) -> str:
    """A cell wraps only between the words of its text: a number with a sign and its
    interval, ``0.958 ± 0.008`` and ``yes (p=0.035)`` keep each token whole."""
    return " ".join(f"<span class='nb'>{html.escape(word)}</span>"
                    if any(ch.isdigit() for ch in word) else html.escape(word)
                    for word in text.split(" "))


def html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>"
                   for row in table.rows)
    return (f"<div class='table-wrap'><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def to_html(report: Report, folder: Path | None = None) -> str:
    """One self-contained page: no file, script or style from elsewhere, so it works
    offline and in MLflow's artifact preview (a ``blob:`` URL, where relative links do
    not resolve). plotly.js is embedded once for every chart; each chart's PNG (from
    ``folder``) stands in for it where scripts do not run."""
    esc = html.escape
    charts = [figure for figure in report.figures if figure.chart]
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{esc(report.study_name)}: report</title>",
             f"<style>{_CSS}</style>"]
    if charts:
        parts.append(f"<script type='text/javascript'>{plotly_js()}</script>")
    parts += ["</head><body>",
              f"<h1>Study <code>{esc(report.study_name)}</code>: where the penalties belong</h1>",
              "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in report.summary) + "</ul>"]
    for table in report.tables:
        parts += [f"<h2>{esc(table.title)}</h2>", html_table(table),
                  "<ul class='notes'>" + "".join(f"<li>{esc(n)}</li>" for n in table.notes)
                  + "</ul>"]
    parts.append("<h2>Figures</h2>")
    for figure in report.figures:
        parts.append(f"<h3 id='{esc(figure.name)}'>{esc(figure.title)}</h3>")
        if figure.skipped:
            parts.append(f"<p class='skipped'>Skipped: {esc(figure.skipped)}.</p>")
            continue
        png = folder / figure.png if folder is not None and figure.png else None
        source = _data_uri(png) if png is not None and png.exists() else figure.png
        picture = f"<img src='{esc(source or '')}' alt='{esc(figure.title)}'>"
        if figure.chart:
            parts.append(f"<figure><div class='chart'>{figure.chart}</div>"
                         f"<noscript>{picture}</noscript></figure>")
        else:
            parts.append(f"<figure>{picture}</figure>")
        if figure.note:
            parts.append(f"<p class='note'>{esc(figure.note)}.</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def print_terminal(report: Report, console: Any = None) -> None:
    from rich.console import Console

    console = console or Console()
    console.print(f"[bold]study {report.study_name}[/bold]")
    for line in report.summary:
        console.print(f"  {line}", highlight=False)
    for table in report.tables:
        console.print(_fitting_table(table, console))
        for note in table.notes:
            console.print(f"  {note}", style="dim", highlight=False)
    drawn = [f.name for f in report.figures if not f.skipped]
    console.print(f"figures: {', '.join(drawn) or 'none'}", highlight=False)
    for figure in report.figures:
        if figure.skipped:
            console.print(f"  skipped {figure.name}: {figure.skipped}", style="dim",
                          highlight=False)


def _rich_table(table: Table, widths: Sequence[int]) -> Any:
    from rich import box
    from rich.table import Table as RichTable

    # Columns one rule apart, no padding: the room goes to the figures. A blank between
    # columns read as one cell where two right-aligned texts met ("l1=3.3e-03 l2=1.3e-04").
    rich_table = RichTable(title=table.title, title_justify="left", box=box.MINIMAL,
                           show_edge=False, padding=0)
    for index, (header, width) in enumerate(zip(table.headers, widths, strict=True)):
        rich_table.add_column(header, justify="left" if index == 0 else "right",
                              width=width, overflow="fold")
    for row in table.rows:
        rich_table.add_row(*row)
    return rich_table


def column_widths(table: Table, width: int, *, wrap: bool) -> list[int] | None:
    """Widths that print every cell of ``table`` within ``width`` columns, each column
    at least as wide as its longest word (so text wraps between words, never inside
    one), or None when no such widths exist. ``wrap=False``: every cell on one line."""
    from rich.cells import cell_len

    columns = list(zip(table.headers, *table.rows, strict=True))
    longest = [max(cell_len(cell) for cell in column) for column in columns]
    words = [max(cell_len(word) for cell in column for word in cell.split() or [""])
             for column in columns]
    widths = list(words if wrap else longest)
    spare = width - sum(widths) - (len(widths) - 1)  # one space between columns
    if spare < 0:
        return None
    # The spare room goes first to the columns it lets print on one line.
    for index in sorted(range(len(widths)), key=lambda i: longest[i] - widths[i]):
        extra = min(spare, longest[index] - widths[index])
        widths[index] += extra
        spare -= extra
    return widths


def transposed(table: Table) -> Table:
    """One column per row of ``table``: a narrow terminal fits a few placements side by
    side better than fifteen figures."""
    headers = ("", *(row[0] for row in table.rows))
    rows = tuple((header, *(row[index] for row in table.rows))
                 for index, header in enumerate(table.headers) if index)
    return Table(table.title, headers, rows, table.notes)


def stacked(table: Table) -> list[str]:
    """The table as one block per row (``header: value`` lines), for a terminal too
    narrow for any grid: lines wrap between words, never inside a figure."""
    lines = [table.title]
    for row in table.rows:
        lines.append(f"{table.headers[0]} {row[0]}")
        lines += [f"    {header}: {cell}" for header, cell in zip(table.headers[1:], row[1:],
                                                                   strict=True)]
    return lines


def _fitting_table(table: Table, console: Any) -> Any:
    """The table as it is if it fits on one line per row, else turned (placements as
    columns), else wrapped between words, else stacked: rich on its own folds a word
    wider than its column (``first+pe/nultimat/e``), so widths are chosen here."""
    from rich.console import Group
    from rich.text import Text

    layouts = [table, transposed(table)]
    for wrap in (False, True):
        for layout in layouts:
            widths = column_widths(layout, console.width, wrap=wrap)
            if widths is not None:
                return _rich_table(layout, widths)
    return Group(*(Text(line) for line in stacked(table)))
