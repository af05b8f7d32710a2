"""Cut the committed sample out of a built atlas: one layer page with all its thumbnails and a
few map pages, every link to a page left out turned into plain text (so nothing in the sample
points at a missing file).

    python docs/atlas-sample/make_sample.py ATLAS_DIR LAYER MAP [MAP ...]

e.g. ``python docs/atlas-sample/make_sample.py runs/gallery-v2/atlas relu5 9 10 11 33`` writes
``docs/atlas-sample/`` (style.css, LAYER/index.html, the thumbnails, the chosen map pages and
their pictures). How the atlas itself is built: docs/atlas.md.
"""
from __future__ import annotations

import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LINK = re.compile(r"<a ([^>]*?)href='([^']*)'([^>]*)>(.*?)</a>", re.S)


def unlink_missing(html: str, page_dir: str) -> str:
    """``html`` with every <a href> whose target file is not in the sample made a <span>."""
    def keep_or_drop(m):
        target = os.path.normpath(os.path.join(page_dir, m.group(2)))
        if os.path.exists(target):
            return m.group(0)
        attrs = (m.group(1) + m.group(3)).strip()
        return f"<span {attrs}>{m.group(4)}</span>" if attrs else f"<span>{m.group(4)}</span>"
    return LINK.sub(keep_or_drop, html)


def main(argv) -> int:
    if len(argv) < 3:
        print("usage: python docs/atlas-sample/make_sample.py ATLAS_DIR LAYER MAP [MAP ...]",
              file=sys.stderr)
        return 2
    atlas, layer, maps = argv[0], argv[1], [int(m) for m in argv[2:]]
    src, dst = os.path.join(atlas, layer), os.path.join(HERE, layer)
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    shutil.copy(os.path.join(atlas, "style.css"), HERE)
    names = ["index.html"] + [f for f in os.listdir(src) if f.endswith("-thumb.webp")]
    for m in maps:
        names += [f for f in os.listdir(src) if f.startswith(f"map-{m:04d}")]
    for name in names:
        shutil.copy(os.path.join(src, name), dst)
    for name in names:   # after every file is in place, so the links see the whole sample
        if name.endswith(".html"):
            path = os.path.join(dst, name)
            with open(path) as f:
                html = f.read()
            with open(path, "w") as f:
                f.write(unlink_missing(html, dst))
    print(f"{len(names)} files in {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
