"""One self-contained HTML report: tables, figures (embedded as data: URIs) and provenance.

The page needs nothing beside itself: no scripts, no fonts or styles from the network, images as
base64 PNG. It can be mailed, archived with a study, or opened offline in any browser. Everything
shown is escaped, so case ids or column names cannot inject markup.
"""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Mapping, Sequence, Union

import pandas as pd

from DeepRadScoreLib import __version__
from DeepRadScoreLib.outputs import atomic_file


SYNTHETIC_BANNER = "Trained on synthetic data — not for clinical use"
TEMPLATE = Path(__file__).with_name("report_template.html")


@dataclass
class ReportTable:
    """A table with its heading and a plain-language caption."""

    title: str
    frame: pd.DataFrame
    caption: str = ""
    section: str = ""


@dataclass
class ReportFigure:
    """A PNG file to embed, with its heading and caption."""

    title: str
    path: Path
    caption: str = ""
    section: str = ""


@dataclass
class ReportContent:
    """What the report shows; ``blocks`` are rendered in order, a new ``section`` starts an h2."""

    title: str
    synthetic: bool
    provenance: Mapping[str, str]
    blocks: Sequence[Union[ReportTable, ReportFigure]] = field(default_factory=list)
    subtitle: str = ""
    notes: Sequence[str] = field(default_factory=list)


def _is_p_column(name: str) -> bool:
    name = name.lower()
    return name == "p" or name.startswith("p_") or name.endswith("_p") or "_p_" in name


def format_cell(value, column: str = "") -> str:
    """Numbers to 3 decimals, p-values as '<0.001', missing as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if _is_p_column(column):
            return "<0.001" if value < 0.001 else f"{value:.3f}"
        return str(int(value)) if value.is_integer() and abs(value) >= 1 else f"{value:.3f}"
    return str(value)


def table_html(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for record in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, record):
            if hasattr(value, "item"):
                value = value.item()  # numpy scalar -> Python
            text = format_cell(value, str(column))
            opening = '<td class="text">' if isinstance(value, str) else "<td>"
            cells.append(f"{opening}{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="tablewrap"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def image_data_uri(path: Path) -> str:
    data = Path(path).read_bytes()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def render_report(content: ReportContent) -> str:
    """The report as one HTML string."""
    parts, section = [], None
    for block in content.blocks:
        if block.section and block.section != section:
            section = block.section
            parts.append(f"<h2>{html.escape(section)}</h2>")
        caption = f'<p class="caption">{html.escape(block.caption)}</p>' if block.caption else ""
        if isinstance(block, ReportTable):
            parts.append(f"<h3>{html.escape(block.title)}</h3>{table_html(block.frame)}{caption}")
        else:
            alt = html.escape(block.title, quote=True)
            figcaption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
            parts.append(f"<h3>{html.escape(block.title)}</h3><figure>"
                         f'<img src="{image_data_uri(block.path)}" alt="{alt}">{figcaption}</figure>')
    provenance = "\n".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>"
                           for k, v in content.provenance.items())
    notes = "\n".join(f'<p class="note">{html.escape(n)}</p>' for n in content.notes)
    banner = f'<div class="banner" role="alert">{html.escape(SYNTHETIC_BANNER)}</div>' if content.synthetic else ""
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        version=html.escape(__version__), title=html.escape(content.title),
        subtitle=html.escape(content.subtitle), banner=banner, notes=notes,
        provenance=provenance, blocks="\n".join(parts))


def write_report(content: ReportContent, path: Path) -> Path:
    """Write ``content`` as one self-contained HTML file (atomically)."""
    with atomic_file(path) as tmp:
        tmp.write_text(render_report(content), encoding="utf-8")
    return Path(path)
