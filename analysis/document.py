"""A report as data (sections of text, tables, figures and links), rendered as Markdown or HTML.

Markdown links its figures and files by paths relative to the report (for a repository
viewer); HTML embeds every figure as a base64 PNG (animations as WebP) and needs no other file (for a browser and
the MLflow UI's artifact view, which shows HTML in a sandboxed frame).
"""

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis.summary import to_markdown

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: .8em; margin: .5em 0 1em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ddd; padding: .2em .5em; text-align: right; } th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
td.verdict { white-space: nowrap; } tr.holds td.verdict { color: #1a7f37; font-weight: 600; } tr.fails td.verdict { color: #b3261e; font-weight: 600; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { font-size: .85em; color: #555; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


@dataclass
class Text:
    text: str  # a paragraph; `code` spans allowed


@dataclass
class Table:
    data: pd.DataFrame
    caption: str = ""
    file: str = ""  # the CSV holding the whole table, relative to the report


@dataclass
class Image:
    png: str  # relative to the report
    caption: str
    vectors: tuple[str, ...] = ()  # the same figure as SVG, PDF


@dataclass
class Animation:
    webp: str  # an animated WebP, relative to the report
    caption: str


@dataclass
class Links:
    items: list[tuple[str, str]]  # (text, absolute URL)


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)
    level: int = 2


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)


def to_markdown_text(document: Document) -> str:
    """The document as Markdown; figures and files linked by relative paths."""
    parts = [f"# {document.title}"]
    for section in document.sections:
        parts.append(f"{'#' * section.level} {section.title}")
        for block in section.blocks:
            parts.append(_markdown_block(block))
    return "\n\n".join(parts) + "\n"


def to_html(document: Document, folder: Path) -> str:
    """The document as one self-contained HTML page; figures read from `folder` and embedded."""
    body = [f"<h1>{html.escape(document.title)}</h1>"]
    for section in document.sections:
        body.append(f"<h{section.level}>{html.escape(section.title)}</h{section.level}>")
        body += [_html_block(block, folder) for block in section.blocks]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(document.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _markdown_block(block) -> str:
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Table):
        lines = [block.caption] if block.caption else []
        if block.file:
            lines.append(f"Whole table: [{block.file}]({block.file})")
        return "\n\n".join(lines + [to_markdown(block.data).rstrip("\n")])
    if isinstance(block, Image):
        vectors = ", ".join(f"[{Path(v).suffix[1:].upper()}]({v})" for v in block.vectors)
        return f"![{block.caption}]({block.png})\n\n*{block.caption}*" + (f" (vector: {vectors})" if vectors else "")
    if isinstance(block, Animation):
        return f"![{block.caption}]({block.webp})\n\n*{block.caption}*"
    if isinstance(block, Links):
        return "\n".join(f"- [{text}]({url})" for text, url in block.items)
    raise TypeError(f"unknown block {block!r}")


def _html_block(block, folder: Path) -> str:
    if isinstance(block, Text):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Table):
        caption = f"<p>{_inline(block.caption)}</p>" if block.caption else ""
        file = f"<p>Whole table: <code>{html.escape(block.file)}</code></p>" if block.file else ""
        return caption + file + _html_table(block.data)
    if isinstance(block, Image):
        data = base64.b64encode((folder / block.png).read_bytes()).decode("ascii")
        vectors = ", ".join(f"<code>{html.escape(v)}</code>" for v in block.vectors)
        return (f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(block.caption)}" + (f" (vector: {vectors})" if vectors else "")
                + "</figcaption></figure>")
    if isinstance(block, Animation):
        data = base64.b64encode((folder / block.webp).read_bytes()).decode("ascii")
        return (f'<figure><img alt="{html.escape(block.caption)}" src="data:image/webp;base64,{data}">'
                f"<figcaption>{html.escape(block.caption)}</figcaption></figure>")
    if isinstance(block, Links):
        items = "".join(f'<li><a href="{html.escape(url)}">{html.escape(text)}</a> '
                        f"<code>{html.escape(url)}</code></li>" for text, url in block.items)
        return f"<ul>{items}</ul>"
    raise TypeError(f"unknown block {block!r}")


def _html_table(data: pd.DataFrame) -> str:
    """A table with numbers right-aligned and verdict rows marked for colour."""
    text_columns = {c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])}
    head = "".join(f'<th class="{"text" if c in text_columns else "num"}">{html.escape(str(c))}</th>'
                   for c in data.columns)
    rows = []
    for record in data.itertuples(index=False):
        cells = []
        for column, value in zip(data.columns, record):
            kind = "verdict" if column == "verdict" else "text" if column in text_columns else "num"
            cells.append(f'<td class="{kind}">{html.escape(_cell(value))}</td>')
        verdict = dict(zip(data.columns, record)).get("verdict", "")
        mark = {"holds": ' class="holds"', "does not hold": ' class="fails"'}.get(verdict, "")
        rows.append(f"<tr{mark}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(value) -> str:
    if value is pd.NA:
        return ""
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:.4g}"
    return "" if value is None else str(value)


def _inline(text: str) -> str:
    """Escape `text`, keeping `code` spans."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
