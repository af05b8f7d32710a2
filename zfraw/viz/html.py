"""A minimal static HTML page: sections of headings, paragraphs, preformatted text, tables and
images (PNG files next to the page, linked by relative path). No templates, no scripts."""
from __future__ import annotations

import html
import os
from pathlib import Path

from .images import write_file

# The page's column, in CSS pixels; figures are laid out to fit it where they can. Images are
# shown at their own size (never shrunk: a tile drawn 48 px wide in the file is 48 px on the
# page), a wider one scrolls sideways inside its figure.
PAGE_WIDTH = 1200


class HtmlPage:
    """Collects blocks in order and writes them as one self-contained index.html.

    >>> page = HtmlPage("zfraw report")
    >>> page.heading("Training"); page.image("curves.png", "loss and error per epoch")
    >>> page.write("run/report/index.html")
    """

    def __init__(self, title: str):
        self.title = title
        self.blocks: list[str] = []

    def heading(self, text: str, level: int = 2):
        """A section heading <h2> (or <hN>)."""
        self.blocks.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str):
        """A paragraph of plain text (escaped)."""
        self.blocks.append(f"<p>{html.escape(text)}</p>")

    def pre(self, text: str):
        """Preformatted text, e.g. the architecture summary."""
        self.blocks.append(f"<pre>{html.escape(text)}</pre>")

    def table(self, header, rows):
        """A table: header is a list of column names, rows a list of lists (floats get 4
        significant digits)."""
        def cell(v):
            return f"{v:.4g}" if isinstance(v, float) else html.escape(str(v))

        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
        self.blocks.append(f"<table><tr>{head}</tr>{body}</table>")

    def link(self, path, text: str, before: str = "", after: str = ""):
        """A paragraph ``before`` + a link to ``path`` (made relative to the page when it is
        written) + ``after``."""
        self.blocks.append(("a", str(path), (before, text, after)))

    def image(self, path, caption: str = ""):
        """An image with a caption; path is made relative to the page when it is written."""
        self.blocks.append(("img", str(path), caption))

    def _render(self, block, base: Path) -> str:
        if isinstance(block, str):
            return block
        kind, path, caption = block
        rel = os.path.relpath(Path(path).resolve(), base.resolve()).replace(os.sep, "/")
        if kind == "a":
            before, text, after = (html.escape(t) for t in caption)
            return f'<p>{before}<a href="{html.escape(rel)}">{text}</a>{after}</p>'
        return (f'<figure><img src="{html.escape(rel)}" alt="{html.escape(caption)}">'
                f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def write(self, path) -> Path:
        """Write the page (creating its folder, atomically: the previous page stays whole until
        the new one is); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "\n".join(self._render(b, path.parent) for b in self.blocks)
        page = (
            "<!doctype html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>"
            f"body{{font-family:sans-serif;max-width:{PAGE_WIDTH}px;margin:auto;padding:1em}}"
            "figure{margin:1em 0;overflow-x:auto}"
            "img{max-width:none;image-rendering:pixelated}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px}"
            "figcaption{font-size:90%;color:#444}"
            f"</style></head><body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n")
        return write_file(path, lambda f: f.write(page.encode("utf-8")))
