"""Copy the front-end libraries installed by npm into the package's static files.

Run after ``npm ci``. Nothing is loaded from a CDN at run time, and the copied files
are not committed (they come from the npm lockfile).
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODULES = ROOT / "node_modules"
TARGET = ROOT / "src" / "closedloop" / "web" / "static_vendor" / "vendor"

SOURCE_MAP = re.compile(r"^\s*(//|/\*)# sourceMappingURL=.*$", re.MULTILINE)

FILES = {
    "bootstrap/dist/css/bootstrap.min.css": "bootstrap/bootstrap.min.css",
    "bootstrap/dist/css/bootstrap.rtl.min.css": "bootstrap/bootstrap.rtl.min.css",
    "bootstrap/dist/js/bootstrap.bundle.min.js": "bootstrap/bootstrap.bundle.min.js",
    "bootstrap-icons/font/bootstrap-icons.min.css": "bootstrap-icons/bootstrap-icons.min.css",
    "bootstrap-icons/font/fonts/bootstrap-icons.woff2": "bootstrap-icons/fonts/bootstrap-icons.woff2",
    "bootstrap-icons/font/fonts/bootstrap-icons.woff": "bootstrap-icons/fonts/bootstrap-icons.woff",
    "htmx.org/dist/htmx.min.js": "htmx/htmx.min.js",
    "leaflet/dist/leaflet.js": "leaflet/leaflet.js",
    "leaflet/dist/leaflet.css": "leaflet/leaflet.css",
    "leaflet/dist/images/marker-icon.png": "leaflet/images/marker-icon.png",
    "leaflet/dist/images/marker-icon-2x.png": "leaflet/images/marker-icon-2x.png",
    "leaflet/dist/images/marker-shadow.png": "leaflet/images/marker-shadow.png",
    "leaflet/dist/images/layers.png": "leaflet/images/layers.png",
    "leaflet/dist/images/layers-2x.png": "leaflet/images/layers-2x.png",
    "echarts/dist/echarts.min.js": "echarts/echarts.min.js",
    "echarts-wordcloud/dist/echarts-wordcloud.min.js": "echarts/echarts-wordcloud.min.js",
}


def main() -> int:
    missing = [src for src in FILES if not (MODULES / src).is_file()]
    if missing:
        print(
            "missing front-end files (run `npm ci` first):", *missing, sep="\n  ", file=sys.stderr
        )
        return 1
    for src, dest in FILES.items():
        target = TARGET / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix in {".js", ".css"}:
            # the source maps are not shipped; a dangling reference breaks collectstatic
            text = (MODULES / src).read_text(encoding="utf-8")
            text = SOURCE_MAP.sub("", text)
            target.write_text(text, encoding="utf-8")
        else:
            shutil.copy2(MODULES / src, target)
    print(f"copied {len(FILES)} front-end files into {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
