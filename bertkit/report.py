"""A self-contained HTML report: headings, text, tables, PNG images and HTML views, in one file.

    report = Report("bertkit demo")
    section = report.section("Pretraining")
    section.text("A tiny BERT, MLM + NSP.")
    section.table([{"step": 10, "loss": 7.1}, {"step": 20, "loss": 6.3}])
    section.image("loss.png")                # embedded as base64: the file travels alone
    section.frame(attention_page_html)        # another self-contained page, inline (iframe srcdoc)
    report.write("out/report.html")

Nothing is fetched when the page opens (no CDN, no network), so it opens the same anywhere.
"""
from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bertkit.utils.extras import pyplot

STYLE = """
body { font-family: system-ui, -apple-system, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .6em 0; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 13px; }
img { max-width: 100%; border: 1px solid #eee; }
iframe { width: 100%; height: 640px; border: 1px solid #ddd; }
.muted { color: #777; font-size: 13px; }
"""


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@dataclass
class Section:
    title: str
    parts: list[str] = field(default_factory=list)

    def text(self, text: str, muted: bool = False) -> None:
        css = ' class="muted"' if muted else ""
        self.parts.append(f"<p{css}>{html.escape(text)}</p>")

    def code(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        if not rows:
            return
        columns = columns or list(dict.fromkeys(key for row in rows for key in row))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = []
        for row in rows:
            cells = []
            for column in columns:
                value = row.get(column, "")
                css = ' class="num"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
                cells.append(f"<td{css}>{html.escape(format_value(value))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        self.parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")

    def image(self, png: str | Path | bytes, alt: str = "") -> None:
        data = png if isinstance(png, bytes) else Path(png).read_bytes()
        encoded = base64.b64encode(data).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">')

    def frame(self, page: str, height: int = 640) -> None:
        """Another complete HTML page shown inline (its scripts run in their own frame)."""
        self.parts.append(f'<iframe style="height:{height}px" srcdoc="{html.escape(page, quote=True)}"></iframe>')

    def html(self, fragment: str) -> None:
        self.parts.append(fragment)


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str) -> Section:
        section = Section(title)
        self.sections.append(section)
        return section

    def render(self) -> str:
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        if self.subtitle:
            body.append(f'<p class="muted">{html.escape(self.subtitle)}</p>')
        if len(self.sections) > 1:
            links = "".join(f'<li><a href="#s{i}">{html.escape(s.title)}</a></li>' for i, s in enumerate(self.sections))
            body.append(f"<ol>{links}</ol>")
        for index, section in enumerate(self.sections):
            body.append(f'<h2 id="s{index}">{html.escape(section.title)}</h2>')
            body.extend(section.parts)
        return (
            '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.render(), encoding="utf-8")
        return path


def line_chart(series: dict[str, list[tuple[float, float]]], title: str, ylabel: str) -> bytes:
    """A PNG of one line per named series of (x, y) points (matplotlib, drawn off-screen)."""
    plt = pyplot("the report's charts")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, "-o", label=name, markersize=3, linewidth=1.2)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()
