"""In headless Chromium: hostile token and dataset text stays data. A page listening for dialogs and for requests sees
no alert, no beacon fetched, and no script reaching the app's document (issue 13, items 1 and 2)."""

from __future__ import annotations

import contextlib
import http.server
import threading

import numpy as np
import pandas as pd
import pytest

from core import attention

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def recording_server(pages: dict[str, str]):
    """A localhost HTTP server serving pages by path and recording every path asked for; yields (base URL, requests)."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = pages.get(self.path, "").encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()


def test_crafted_tokens_in_the_bertviz_frame_run_no_script(offline_page):
    page, blocked = offline_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with recording_server({}) as (base, requests):
        steal = f"<img src={base}/beacon-img>"
        hijack = "<script>parent.parent.document.title='pwned';fetch('" + base + "/beacon-fetch')</script>"
        tokens = ["[CLS]", "</script><script>alert(1)</script>", steal, "</script>" + hijack, "[SEP]"]
        weights = np.full((2, 2, len(tokens), len(tokens)), 1 / len(tokens), dtype=np.float32)
        result = attention.AttentionResult(
            model_name="x", kind="encoder", tokens=tokens, attention=weights, special=np.array([True, False, False, False, True])
        )
        frame = attention.sandboxed(attention.bertviz_html(result, view="head"))
        # as st.iframe shows it: the app's origin, the page in an iframe's srcdoc
        app = "<html><head><title>app</title></head><body><iframe id=f style='width:900px;height:600px'></iframe></body></html>"
        with recording_server({"/": app}) as (app_url, _):
            page.goto(app_url + "/")
            page.eval_on_selector("#f", "(el, html) => { el.srcdoc = html; }", frame)
            inner = page.frame_locator("#f").frame_locator("iframe")
            inner.locator("svg line").first.wait_for(state="attached", timeout=60_000)  # bertviz drew
            texts = inner.locator("svg text").all_text_contents()
            page.wait_for_timeout(500)
            title = page.title()
            inner_frame = next(f for f in page.frames if f.parent_frame and f.parent_frame.parent_frame)
            reach = inner_frame.evaluate(
                "() => { try { return window.parent.parent.document.title; } catch (e) { return 'blocked'; } }"
            )
    assert dialogs == [] and requests == [] and blocked == []
    assert title == "app"
    assert any("alert(1)" in t for t in texts)  # the token is shown as text
    assert reach == "blocked"  # scripts in the frame cannot read the app's document


def test_uploaded_text_with_an_image_and_markdown_shows_literally(app_server, offline_page, tmp_path):
    url, _ = app_server
    page, blocked = offline_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with recording_server({}) as (base, requests):
        beacon = f"![b]({base}/beacon.png)"
        rows = [
            (f"{beacon} number {i}", "**bold**") if i % 2 else (f"<img src={base}/img.png> text {i}", "plain") for i in range(40)
        ]
        csv = tmp_path / "hostile.csv"
        pd.DataFrame(rows, columns=["text", "label"]).to_csv(csv, index=False)
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("Examples per class").first.wait_for(timeout=240_000)  # the sample loaded first
        page.get_by_text("File", exact=True).first.click()
        page.locator("input[type=file]").first.set_input_files(str(csv))
        page.get_by_text("hostile.csv").first.wait_for(timeout=120_000)
        page.get_by_text("**bold**").first.wait_for(timeout=120_000)  # the label, shown with its asterisks
        page.get_by_text(beacon).first.wait_for(timeout=60_000)  # the text, shown as written
        page.wait_for_timeout(1000)
    assert requests == [] and dialogs == [] and blocked == []


def test_oversized_upload_gets_one_sentence_when_the_server_limit_is_lower(offline_page, tmp_path):
    """Issue 13 item 11: PFT_MAX_UPLOAD_MB=100 but the server takes 1 MB: the uploader promises 1 MB and refuses a 2 MB
    file with its sentence, instead of sending it and showing 'AxiosError ... 413'."""
    from tests.app_server import serve_app

    page, _ = offline_page
    big = tmp_path / "big.csv"
    big.write_text("text,label\n" + "".join(f"row {i} {'x' * 60},{'ab'[i % 2]}\n" for i in range(30_000)))
    assert big.stat().st_size > 1.5 * 2**20
    with serve_app(
        tmp_path / "runs", tmp_path / "server.log", PFT_MAX_UPLOAD_MB="100", STREAMLIT_SERVER_MAX_UPLOAD_SIZE="1"
    ) as url:
        page.goto(url, wait_until="domcontentloaded")
        page.get_by_text("Examples per class").first.wait_for(timeout=240_000)
        page.get_by_text("File", exact=True).first.click()
        page.get_by_text("1MB per file").first.wait_for(timeout=60_000)
        page.locator("input[type=file]").first.set_input_files(str(big))
        page.get_by_text("File must be 1.0MB or smaller.").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        body = page.inner_text("body")
    assert "413" not in body and "AxiosError" not in body
