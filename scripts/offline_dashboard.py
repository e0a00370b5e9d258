"""Publish the asv results as a dashboard that renders without internet, and serve it on localhost.

``asv publish`` (asv 0.6.6) writes an ``index.html`` that loads jQuery, flot (with its time,
selection and categories plugins), flot-orderbars, stupidtable, blueimp-md5 and Bootstrap 3 from
public CDNs; offline the page shows only an error. This script copies local files into
``<html>/vendor/`` and points every CDN tag at them:

==========================  ==========================================================
CDN library                 local file, from
==========================  ==========================================================
jQuery 3.3.1                ``jquery.min.js`` of XStatic-jQuery (3.7.1)
flot 0.8.3 and 3 plugins    js.jquery_flot (flot 0.8.1): jquery.flot[.time|.selection|.categories].min.js
Bootstrap 3.1.1 (js, css)   js.bootstrap (3.3.4): bootstrap.min.js, bootstrap.min.css and its fonts
stupidtable, blueimp-md5,   ``scripts/dashboard/offline_fallbacks.js`` (no Python package ships them;
flot-orderbars              the file says what each stand-in does and does not do)
==========================  ==========================================================

An external script or stylesheet this table does not know (a newer asv) is an error, so the page
never silently depends on a CDN again. Usage::

    python scripts/offline_dashboard.py --publish --serve 8080   # make dashboard
    python scripts/offline_dashboard.py --html-dir DIR             # rewrite an already published DIR
"""

from __future__ import annotations

import argparse
import functools
import http.server
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FALLBACKS = Path(__file__).resolve().parent / "dashboard" / "offline_fallbacks.js"
VENDOR = "vendor"

# CDN file name -> (Python package, path inside its data directory), or None for the fallbacks file.
SOURCES = {
    "jquery-3.3.1.min.js": ("xstatic.pkg.jquery", "jquery.min.js"),
    "jquery.flot.min.js": ("js.jquery_flot", "jquery.flot.min.js"),
    "jquery.flot.time.min.js": ("js.jquery_flot", "jquery.flot.time.min.js"),
    "jquery.flot.selection.min.js": ("js.jquery_flot", "jquery.flot.selection.min.js"),
    "jquery.flot.categories.min.js": ("js.jquery_flot", "jquery.flot.categories.min.js"),
    "bootstrap.min.js": ("js.bootstrap", "js/bootstrap.min.js"),
    "bootstrap.min.css": ("js.bootstrap", "css/bootstrap.min.css"),
    "jquery.flot.orderBars.js": None,
    "stupidtable.min.js": None,
    "md5.min.js": None,
}
EXTERNAL = re.compile(
    r"""<(script)\b[^>]*?\bsrc="(https?://[^"]+)"[^>]*>\s*</script>|<(link)\b[^>]*?\bhref="(https?://[^"]+)"[^>]*>"""
)


def package_dir(module: str) -> Path:
    """The directory of a package's static files (XStatic: ``data/``; Fanstatic js.*: ``resources/``),
    found without importing the package (Fanstatic's import chain is not needed to copy files)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        raise SystemExit(f"{module} is not installed: install the bench extra (pip install -e '.[bench]')")
    return Path(spec.origin).parent / ("data" if module.startswith("xstatic.") else "resources")


def local_path(url: str) -> str:
    """The vendor-relative path that replaces ``url``; SystemExit for an unknown CDN file."""
    name = url.rsplit("/", 1)[-1]
    if name not in SOURCES:
        raise SystemExit(f"the asv page loads {url}, which has no local copy here: add it to SOURCES")
    source = SOURCES[name]
    return f"{VENDOR}/{FALLBACKS.name}" if source is None else f"{VENDOR}/{source[0]}/{source[1]}"


def vendor(html_dir: Path) -> None:
    """Copy every local library (and Bootstrap's fonts, which its CSS loads) into ``html_dir/vendor``."""
    target = html_dir / VENDOR
    for source in {s for s in SOURCES.values() if s is not None}:
        module, relative = source
        destination = target / module / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(package_dir(module) / relative, destination)
    fonts = package_dir("js.bootstrap") / "fonts"
    shutil.copytree(fonts, target / "js.bootstrap" / "fonts", dirs_exist_ok=True)
    shutil.copyfile(FALLBACKS, target / FALLBACKS.name)


def rewrite(page: str) -> str:
    """``page`` with each CDN script/stylesheet tag pointing at its local copy (no integrity check:
    the hashes are those of the CDN files), stupidtable's, md5's and orderBars' tags merged into one."""
    fallback_loaded = False

    def replace(match):
        nonlocal fallback_loaded
        tag, url = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        path = local_path(url)
        if path.endswith(FALLBACKS.name):
            if fallback_loaded:
                return ""
            fallback_loaded = True
        if tag == "link":
            return f'<link rel="stylesheet" href="{path}">'
        return f'<script src="{path}" onerror="js_load_failure()"></script>'

    return EXTERNAL.sub(replace, page)


def make_offline(html_dir: Path) -> list[Path]:
    """Vendor the libraries into ``html_dir`` and rewrite its HTML pages; returns the pages changed."""
    if not (html_dir / "index.html").is_file():
        raise SystemExit(f"{html_dir} holds no published asv page (index.html): run asv publish first")
    vendor(html_dir)
    changed = []
    for page in sorted(html_dir.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        offline = rewrite(text)
        if offline != text:
            page.write_text(offline, encoding="utf-8")
            changed.append(page)
    return changed


def publish(html_dir: Path) -> None:
    """``asv publish`` of the results in .asv/results into ``html_dir``."""
    asv = Path(sys.executable).with_name("asv")
    if not (ROOT / ".asv" / "results").is_dir():
        raise SystemExit(
            "no asv results in .asv/results: run e.g. `.venv/bin/asv run -E existing:.venv/bin/python "
            "--quick -b ImportAndFirstCall --set-commit-hash $(git rev-parse HEAD)` first"
        )
    subprocess.run([str(asv), "publish", "--html-dir", str(html_dir)], cwd=ROOT, check=True)


def serve(html_dir: Path, port: int) -> None:
    """Serve ``html_dir`` on http://127.0.0.1:port until interrupted."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html_dir))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"asv dashboard (offline) at http://127.0.0.1:{port}/ ; Ctrl-C stops it", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("dashboard stopped")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html-dir", type=Path, default=ROOT / ".asv" / "html", help="published asv page")
    parser.add_argument("--publish", action="store_true", help="run asv publish into --html-dir first")
    parser.add_argument("--serve", type=int, metavar="PORT", help="then serve it on 127.0.0.1:PORT")
    args = parser.parse_args(argv)
    if args.publish:
        publish(args.html_dir)
    changed = make_offline(args.html_dir)
    print(f"{args.html_dir}: {len(changed)} page(s) now load their libraries from {VENDOR}/")
    if args.serve is not None:
        serve(args.html_dir, args.serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
