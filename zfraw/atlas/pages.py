"""The atlas's static pages: plain HTML and one stylesheet, no script, every link relative (the
site is opened from disk). Each function takes plain values (:class:`LayerInfo`,
:class:`MapInfo`) and returns the page's text; :mod:`zfraw.atlas.build` writes them.

    index.html                    the layers, with their counts, and the input convention
    style.css
    <layer>/index.html            a layer page: every map as a thumbnail, by firing rate
    <layer>/map-NNNN.html         a map page: top-9, its maxima, its top images' classes,
                                  its evolution over the saved epochs
    <layer>/map-NNNN-*.webp       the map's pictures (thumb, top9, patches, evolution)
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

from .stats import DUPLICATE_R

STYLE = """\
body{font-family:system-ui,sans-serif;max-width:1200px;margin:auto;padding:0 1em 2em;color:#222}
nav{font-size:90%;padding:.6em 0;border-bottom:1px solid #ddd;margin-bottom:.6em}
nav a{margin-right:.8em}
nav .here{font-weight:bold;margin-right:.8em}
img{image-rendering:pixelated}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}
td.n{text-align:right}
.grid{display:flex;flex-wrap:wrap;gap:6px}
.cell{display:block;width:76px;text-decoration:none;color:#222;font-size:11px;text-align:center}
.cell img,.cell .none{display:block;width:64px;height:64px;margin:2px auto;background:#888}
.cell .none{line-height:64px;color:#eee}
.cell.dead{opacity:.55}
.cell.dup img,.cell.dup .none{outline:3px solid #d80}
.flag{display:inline-block;padding:0 4px;border-radius:3px;font-size:10px;color:#fff}
.flag.dead{background:#777}
.flag.dup{background:#d80}
.pair{display:flex;flex-wrap:wrap;gap:24px;align-items:flex-start}
figure{margin:.4em 0}
figcaption{font-size:90%;color:#444;max-width:560px}
.hist rect.zero{fill:#999}
.hist rect.pos{fill:#3a7bd5}
.hist text{font-size:11px;fill:#333}
"""


@dataclass
class MapInfo:
    """One map as its pages show it. Paths are relative to the atlas folder."""
    layer: str
    index: int
    rate: float                  # firing rate: share of images where its maximum is > 0
    fired: int                   # images where it fired
    duplicates: list             # [(other map, r)], r > DUPLICATE_R
    top: list                    # [{rank, image, y, x, value, class}] its top-9, strongest first
    classes: list                # [(class name, count)] of its top images
    hist: tuple                  # (zeros, counts, edges) of its per-image maxima
    files: dict = field(default_factory=dict)   # 'page', 'thumb', 'top9', 'patches', 'evolution'
    evolution: str = ""          # what its evolution strip shows, or why there is none

    @property
    def dead(self) -> bool:
        return self.fired == 0


@dataclass
class LayerInfo:
    name: str
    folder: str                  # its folder in the atlas
    shape: tuple                 # (C, H, W) of its output
    rf: int                      # receptive field, net-input pixels
    maps: list                   # [MapInfo], in map order

    @property
    def page(self) -> str:
        return f"{self.folder}/index.html"

    @property
    def dead(self) -> int:
        return sum(m.dead for m in self.maps)

    @property
    def duplicated(self) -> int:
        """Maps with at least one near-duplicate."""
        return sum(bool(m.duplicates) for m in self.maps)

    @property
    def pairs(self) -> int:
        return sum(len(m.duplicates) for m in self.maps) // 2


def esc(text) -> str:
    return html.escape(str(text))


def document(title: str, body: str, root: str) -> str:
    """A whole page; ``root``: the relative path from the page to the atlas folder ('' or
    '../')."""
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{esc(title)}</title><link rel='stylesheet' href='{root}style.css'>"
            f"</head><body>\n{body}\n</body></html>\n")


def layer_nav(layers, here: str | None, root: str) -> str:
    """Links to the atlas's index and to every layer page (the current one in bold)."""
    links = [f"<a href='{root}index.html'>atlas</a>"]
    for ly in layers:
        if ly.name == here:
            links.append(f"<span class='here'>{esc(ly.name)}</span>")
        else:
            links.append(f"<a href='{root}{esc(ly.page)}'>{esc(ly.name)}</a>")
    return "<nav>" + " ".join(links) + "</nav>"


def pct(rate: float) -> str:
    return f"{100 * rate:.0f}%" if rate in (0, 1) or rate >= 0.01 else f"{100 * rate:.2f}%"


def flags(m: MapInfo) -> str:
    out = []
    if m.dead:
        out.append("<span class='flag dead'>dead</span>")
    if m.duplicates:
        out.append(f"<span class='flag dup'>dup x{len(m.duplicates)}</span>")
    return " ".join(out)


def index_page(title: str, about: str, spec_rows, layers, passed: str, epochs) -> str:
    """The atlas's front page: what it shows, the layers with their counts, the input
    convention, how the pass went."""
    rows = "".join(
        f"<tr><td><a href='{esc(ly.page)}'>{esc(ly.name)}</a></td><td class='n'>{len(ly.maps)}"
        f"</td><td>{ly.shape[1]}x{ly.shape[2]}</td><td class='n'>{ly.rf} px</td>"
        f"<td class='n'>{ly.dead}</td><td class='n'>{ly.duplicated} ({ly.pairs} pairs)</td>"
        f"<td class='n'>{pct(_median([m.rate for m in ly.maps]))}</td></tr>" for ly in layers)
    spec = "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in spec_rows)
    saved = ", ".join(map(str, epochs))
    evo = (f"the strongest projection of each map at each saved epoch ({saved})" if epochs
           else "no evolution (no epoch checkpoints)")
    body = (f"{layer_nav(layers, None, '')}<h1>{esc(title)}</h1><p>{esc(about)}</p>"
            "<p>Every map of every conv layer (after its ReLU), as the paper's figures show "
            "them: a page per layer with each map's strongest deconv projection, sorted by "
            "firing rate (the share of images on which the map's maximum is above zero), dead "
            "maps (rate 0) and near-duplicates (maps whose per-image maxima correlate above "
            f"{DUPLICATE_R:g}) flagged; a page per map with its top-9 projections and the image "
            "patches under them (Fig. 2), its per-image maxima, its top images' classes, and "
            f"{evo} (Fig. 4).</p>"
            "<table><tr><th>layer</th><th>maps</th><th>map size</th><th>receptive field</th>"
            "<th>dead</th><th>near-duplicates</th><th>median firing rate</th></tr>"
            f"{rows}</table><p>{esc(passed)}</p><h2>Input convention</h2>"
            f"<table>{spec}</table>")
    return document(title, body, "")


def _median(values) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def layer_page(title: str, layer: LayerInfo, layers, images: int) -> str:
    """Every map of ``layer`` as a lazy-loaded thumbnail (its strongest projection), sorted by
    firing rate, strongest first; dead and near-duplicate maps flagged and counted."""
    i = [ly.name for ly in layers].index(layer.name)
    prev = layers[i - 1] if i > 0 else None
    nxt = layers[i + 1] if i + 1 < len(layers) else None
    steps = " ".join(
        f"<a href='../{esc(ly.page)}'>{arrow} {esc(ly.name)}</a>"
        for ly, arrow in ((prev, "&larr;"), (nxt, "&rarr;")) if ly is not None)
    cells = []
    for m in sorted(layer.maps, key=lambda m: (-m.rate, m.index)):
        name = m.files["page"].split("/")[-1]
        tip = (f"map {m.index}: fires on {m.fired} of {images} images ({pct(m.rate)})"
               + (f"; near-duplicate of {', '.join(str(o) for o, _ in m.duplicates)}"
                  if m.duplicates else ""))
        pic = (f"<img loading='lazy' src='{esc(m.files['thumb'].split('/')[-1])}' width='64' "
               f"height='64' alt='map {m.index}'>" if "thumb" in m.files
               else "<span class='none'>dead</span>")
        kind = "cell" + (" dead" if m.dead else "") + (" dup" if m.duplicates else "")
        cells.append(f"<a class='{kind}' href='{esc(name)}' title='{esc(tip)}'>{pic}"
                     f"{m.index} &middot; {pct(m.rate)}</a>")
    body = (f"{layer_nav(layers, layer.name, '../')}<h1>{esc(layer.name)}</h1>"
            f"<p>{steps}</p>"
            f"<p>{len(layer.maps)} maps of {layer.shape[1]}x{layer.shape[2]}, receptive field "
            f"{layer.rf} px; {images} images searched. <span class='flag dead'>dead</span> "
            f"{layer.dead} (never above zero); <span class='flag dup'>dup</span> "
            f"{layer.duplicated} near-duplicates in {layer.pairs} pairs (per-image maxima "
            f"correlating above {DUPLICATE_R:g}, outlined). Each thumbnail is the map's strongest "
            "activation projected to pixels with the deconvnet (zero = grey), cropped to its "
            "receptive field; under it, the map's number and its firing rate (the share of "
            "images on which its maximum is above zero), by which the maps are sorted.</p>"
            f"<div class='grid'>{''.join(cells)}</div>")
    return document(f"{layer.name}: {title}", body, "../")


def histogram_svg(hist, width: int = 420, height: int = 130) -> str:
    """An inline SVG bar chart of one map's per-image maxima: a grey bar for the images where
    it is 0, then blue bars over its positive values (0 to the largest)."""
    zeros, counts, edges = hist
    bars = [zeros] + [int(c) for c in counts]
    top = max(bars) or 1
    plot_h, base = height - 34, height - 22
    bw = (width - 20) / len(bars)
    rects = []
    for i, c in enumerate(bars):
        h = plot_h * c / top
        cls = "zero" if i == 0 else "pos"
        what = (f"{c} images at 0" if i == 0 else
                f"{c} images in {edges[i - 1]:.3g}..{edges[i]:.3g}")
        rects.append(f"<rect class='{cls}' x='{10 + i * bw:.1f}' y='{base - h:.1f}' "
                     f"width='{max(bw - 1, 1):.1f}' height='{h:.1f}'><title>{what}</title></rect>")
    labels = (f"<text x='10' y='{height - 6}'>0</text>"
              + (f"<text x='{width - 10}' y='{height - 6}' text-anchor='end'>{edges[-1]:.3g}"
                 "</text>" if len(edges) else "")
              + f"<text x='10' y='12'>{top} images</text>")
    return (f"<svg class='hist' width='{width}' height='{height}' "
            f"xmlns='http://www.w3.org/2000/svg'>{''.join(rects)}{labels}</svg>")


def map_page(title: str, layer: LayerInfo, m: MapInfo, layers, images: int, truth: str,
             evolution_note: str) -> str:
    """One map: its top-9 projections and patches with each cell's image, class, activation
    and position; its firing rate and the distribution of its per-image maxima; its top
    images' classes; its near-duplicates; its evolution over the saved epochs."""
    c = len(layer.maps)
    nav_maps = " ".join(
        f"<a href='map-{j:04d}.html'>{arrow} map {j}</a>"
        for j, arrow in ((m.index - 1, "&larr;"), (m.index + 1, "&rarr;")) if 0 <= j < c)
    head = (f"{layer_nav(layers, None, '../')}<p><a href='index.html'>&uarr; {esc(layer.name)}"
            f"</a> {nav_maps}</p><h1>{esc(layer.name)}, map {m.index} {flags(m)}</h1>")
    zeros, counts, edges = m.hist
    if m.dead:
        summary = (f"<p>Dead: its maximum is 0 on all {images} images (it never fires after "
                   "the ReLU), so it has no projections.</p>")
    else:
        summary = (f"<p>Fires on {m.fired} of {images} images ({pct(m.rate)}: its maximum is "
                   f"above zero there); the largest activation is {m.top[0]['value']:.4g}. "
                   f"Receptive field {layer.rf} px.</p>")
    dups = ""
    if m.duplicates:
        dups = (f"<p>Near-duplicates (per-image maxima correlating above {DUPLICATE_R:g}): "
                + ", ".join(f"<a href='map-{o:04d}.html'>map {o}</a> (r = {r:.3f})"
                            for o, r in m.duplicates) + ".</p>")
    top9 = ""
    if not m.dead:
        rows = "".join(
            f"<tr><td class='n'>{t['rank']}</td><td class='n'>{t['image']}</td>"
            f"<td>{esc(t['class'])}</td><td class='n'>{t['value']:.4g}</td>"
            f"<td>({t['y']}, {t['x']})</td></tr>" for t in m.top)
        cls = ", ".join(f"{esc(name)} x{n}" for name, n in m.classes)
        top9 = (
            "<h2>Top-9 (Fig. 2)</h2><div class='pair'>"
            f"<figure><img src='{esc(m.files['top9'].split('/')[-1])}' alt='top-9 projections'>"
            "<figcaption>The 9 validation images where the map's activation is strongest, one "
            "image per cell, each at its strongest position, projected to pixels with the "
            "deconvnet (zero = grey) and cropped to the receptive field; row by row, strongest "
            "first.</figcaption></figure>"
            f"<figure><img src='{esc(m.files['patches'].split('/')[-1])}' alt='image patches'>"
            "<figcaption>The image patches under them, at the same places.</figcaption>"
            "</figure></div>"
            "<table><tr><th>cell</th><th>image</th><th>class</th><th>activation</th>"
            f"<th>position in the {layer.shape[1]}x{layer.shape[2]} map</th></tr>{rows}</table>"
            f"<p>Classes of its top images ({esc(truth)}): {cls}.</p>")
    hist = ("<h2>Its maximum in each image</h2>" + histogram_svg(m.hist)
            + f"<p>Grey: the {zeros} images where it is 0; blue: the other "
            f"{int(counts.sum()) if len(counts) else 0} by value"
            + (f" (0 to {edges[-1]:.4g})" if len(edges) else "") + ".</p>")
    evo = "<h2>Evolution during training (Fig. 4)</h2>"
    if "evolution" in m.files:
        evo += (f"<figure><img src='{esc(m.files['evolution'].split('/')[-1])}' "
                f"alt='evolution'><figcaption>{esc(evolution_note)}</figcaption></figure>")
    else:
        evo += f"<p>{esc(m.evolution)}</p>"
    body = head + summary + dups + top9 + hist + evo
    return document(f"{layer.name} map {m.index}: {title}", body, "../")
