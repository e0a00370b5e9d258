"""The offline asv dashboard (scripts/offline_dashboard.py): no CDN left in the page, every library
served locally, and (where Chromium and asv results exist) a benchmark graph drawn with the network
cut off."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
asv = pytest.importorskip("asv")
ASV_PAGE = Path(asv.__file__).parent / "www" / "index.html"


@functools.cache
def _dashboard():
    spec = importlib.util.spec_from_file_location(
        "offline_dashboard", ROOT / "scripts" / "offline_dashboard.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _library_references(page: str) -> list[str]:
    scripts = re.findall(r"<script\b[^>]*\bsrc=\"([^\"]+)\"", page)
    return scripts + re.findall(r"<link\b[^>]*\bhref=\"([^\"]+)\"", page)


def test_the_asv_page_loads_every_library_locally(tmp_path):
    """asv 0.6.6's page names 10 CDN files; after the rewrite none is external and each one exists."""
    dashboard = _dashboard()
    before = ASV_PAGE.read_text(encoding="utf-8")
    assert sum(ref.startswith("http") for ref in _library_references(before)) == 10
    shutil.copyfile(ASV_PAGE, tmp_path / "index.html")
    assert dashboard.make_offline(tmp_path) == [tmp_path / "index.html"]
    after = (tmp_path / "index.html").read_text(encoding="utf-8")
    references = _library_references(after)
    assert not [ref for ref in references if ref.startswith("http")]
    vendored = [ref for ref in references if ref.startswith("vendor/")]
    assert len(vendored) == 8  # 10 CDN files; stupidtable, md5 and orderBars share the fallbacks file
    assert all((tmp_path / ref).is_file() for ref in vendored)
    assert (tmp_path / "vendor/js.bootstrap/fonts/glyphicons-halflings-regular.woff2").is_file()
    assert dashboard.make_offline(tmp_path) == []  # idempotent


def test_an_unknown_cdn_library_is_an_error():
    page = '<script src="https://cdn.example.org/new-plugin.min.js"></script>'
    with pytest.raises(SystemExit, match=r"new-plugin\.min\.js"):
        _dashboard().rewrite(page)


def test_publish_without_results_names_what_to_run(tmp_path, monkeypatch):
    dashboard = _dashboard()
    monkeypatch.setattr(dashboard, "ROOT", tmp_path)
    with pytest.raises(SystemExit, match="asv run"):
        dashboard.publish(tmp_path / "html")


def _serve(directory: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.skipif(not (ROOT / ".asv" / "results").is_dir(), reason="no asv results (make bench-smoke)")
def test_the_dashboard_draws_a_graph_in_chromium_without_network(tmp_path):
    """Published into a temporary directory, served on 127.0.0.1 and opened in headless Chromium with
    every other host unresolvable: flot draws the graph canvas and the page is not asv's error page."""
    html = tmp_path / "html"
    subprocess.run(
        [str(Path(sys.executable).with_name("asv")), "publish", "--html-dir", str(html)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    _dashboard().make_offline(html)
    benchmark = sorted(path.stem for path in (html / "graphs" / "summary").glob("*.json"))[0]
    server = _serve(html)
    try:
        dom = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"http://127.0.0.1:{server.server_address[1]}/#{benchmark}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    finally:
        server.shutdown()
    assert "continental origin of swallow" not in dom  # asv's error page: a library failed to load
    assert 'class="flot-base"' in dom
