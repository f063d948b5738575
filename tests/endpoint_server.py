"""Real OpenAI-compatible servers for the endpoint tests, started on 127.0.0.1 at a free port inside the test run:
llama-cpp-python's server on the bundled SmolLM2 GGUF (echo and chat log-probabilities: scoring modes 1 and 2),
`transformers serve` on the same model's converted folder (no log-probabilities: mode 3), and a tiny stdlib server
for the two faults a real server will not produce on demand (a 429 storm, malformed JSON)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

START_TIMEOUT = 180  # seconds for a server to answer /v1/models (loading a 135M model takes a few)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on 127.0.0.1:port; base_url ends in /v1."""

    def __init__(self, argv: list[str], port: int, log: Path, env: dict | None = None, api_key: str | None = None):
        self.port, self.api_key, self.log = port, api_key, log
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.process = subprocess.Popen(
            argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: {log.read_text()[-2000:]}")
            try:
                request = urllib.request.Request(self.base_url + "/models", headers={"Authorization": f"Bearer {api_key or 'x'}"})
                urllib.request.urlopen(request, timeout=2).read()
                return
            except urllib.error.HTTPError:
                return  # it answers (401 without the right key)
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the server did not answer within {START_TIMEOUT} s: {log.read_text()[-2000:]}")

    def spec(self, model: str = "smollm2") -> str:
        return f"openai:{model}@{self.base_url}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def gguf_path() -> Path:
    from core import models

    info = models.BUNDLED["smollm2"]
    return models.bundled_path(info) / info.gguf_file


def llama_available() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("uvicorn") is not None


def start_llama(tmp: Path, api_key: str | None = None, port: int | None = None, bos: bool = True) -> Server:
    """llama-cpp-python's server on the bundled GGUF, with every position's logits kept (echo log-probabilities)."""
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf_path()),
        "--model_alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--logits_all",
        "true",
        "--n_ctx",
        "2048",
        "--n_threads",
        "2",
        "--verbose",
        "false",
        # llama-cpp-python 0.3 misaligns echoed log-probabilities by one token when the model adds no BOS (SmolLM2's
        # GGUF says not to; core.endpoints.echo_aligned catches it): with a BOS first they are each token's own
        "--kv_overrides",
        "tokenizer.ggml.add_bos_token=bool:true",
    ]
    if not bos:  # as llama-cpp-python serves SmolLM2 by default: echo log-probabilities one token off
        argv = argv[:-2]
    if api_key:
        argv += ["--api_key", api_key]
    return Server(argv, port, tmp / f"llama-{port}.log", api_key=api_key)


def start_transformers_serve(tmp: Path) -> Server:
    """`transformers serve` on the converted SmolLM2 folder (it ignores logprobs and echo: generation only)."""
    from core import models

    folder = models._converted(models.resolve("smollm2")).path
    port = free_port()
    exe = Path(sys.executable).parent / "transformers"
    argv = [str(exe), "serve", folder, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "warning"]
    return Server(argv, port, tmp / f"serve-{port}.log", env={"HF_HUB_OFFLINE": "1"})


def transformers_serve_available() -> bool:
    try:
        from transformers.utils.import_utils import is_serve_available

        return bool(is_serve_available()) and importlib.util.find_spec("openai") is not None
    except ImportError:
        return False


def _served(available: bool, reason: str, start, tmp: Path):
    """A session fixture's server: skipped with the reason when its package is missing, stopped at the end."""
    if not available:
        pytest.skip(reason)
    server = start(tmp)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    yield from _served(
        llama_available(),
        "llama-cpp-python[server] is not installed (pip install 'llama-cpp-python[server]')",
        start_llama,
        tmp_path_factory.mktemp("llama"),
    )


@pytest.fixture(scope="session")
def transformers_server(tmp_path_factory):
    yield from _served(
        transformers_serve_available(),
        "`transformers serve` needs fastapi, uvicorn, pydantic and openai installed",
        start_transformers_serve,
        tmp_path_factory.mktemp("serve"),
    )


class FakeServer:
    """A stdlib HTTP server on 127.0.0.1 that answers every POST with one fault: 'rate' (429 with Retry-After: 0) or
    'malformed' (HTTP 200 whose body is not JSON). hits counts the requests it got."""

    def __init__(self, fault: str):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.hits += 1
                if fault == "rate":
                    body, status, extra = (
                        json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode(),
                        429,
                        {"Retry-After": "0"},
                    )
                else:
                    body, status, extra = b'{"id": "x", "choices": [ {"text": "trunc', 200, {}
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.hits = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def spec(self, model: str = "smollm2") -> str:
        return f"openai:{model}@{self.base_url}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
