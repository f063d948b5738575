"""Benchmark: endpoint throughput at 1, 4 and 16 concurrent requests against a local OpenAI-compatible server
(llama-cpp-python's server on the bundled SmolLM2 GGUF, started here on 127.0.0.1), through the product's client
(core.endpoints: thread pool, cache, meter). Every level sends the same echo requests (each row of the reviews test
split with each label word, as a run in the echo mode does) with a cache of its own, so nothing is answered from disk;
prints requests per second and the ratio against concurrency 1, measured in the same process.

    .venv/bin/python -m bench.endpoint [--rows 8] [--levels 1 4 16] [--server-threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8, help="test rows of reviews (each sent once per label)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16], help="concurrent requests")
    args = parser.parse_args()

    from core import data, endpoints, prompting
    from tests.endpoint_server import llama_available, start_llama

    if not llama_available():
        print("llama-cpp-python[server] is not installed (pip install 'llama-cpp-python[server]'); nothing to measure.")
        return 2
    ds = data.load_sample("reviews")
    texts = ds.splits["test"]["text"].astype(str).tolist()[: args.rows]
    base = prompting.PromptConfig(calibration="none")
    words = prompting.verbalizer(base, ds.label_names)
    rows = [prompting.fill(base.query_template, t) for t in texts]
    prefix = prompting.render_prefix(base, words, ds.splits["train"].iloc[:0], ds.label_names)
    requests = [("completions", endpoints.echo_body(prefix + r, prompting.continuation(r, w))) for r in rows for w in words]
    tmp = Path(tempfile.mkdtemp(prefix="bench-endpoint-"))
    server = start_llama(tmp)
    print(f"{len(requests)} echo requests ({len(rows)} rows x {len(words)} labels) per level; server: {server.base_url}")
    try:
        rates = {}
        for level in args.levels:
            os.environ["PFT_ENDPOINT_CACHE"] = str(tmp / f"cache-{level}.sqlite")  # a cold cache per level
            config = prompting.PromptConfig(model=server.spec(), concurrency=level, calibration="none")
            client = endpoints.Client(endpoints.parse_spec(config.model), config, endpoints.Meter())
            started = time.perf_counter()
            endpoints.run_requests(client, requests, [None] * len(requests), 0, None)
            seconds = time.perf_counter() - started
            rates[level] = len(requests) / seconds
            usage = client.meter.metrics(None, None)
            print(
                f"concurrency {level:>2}: {rates[level]:.3g} requests/s ({seconds:.1f} s), "
                f"median latency {usage['latency_ms']:.0f} ms, "
                f"ratio vs concurrency {args.levels[0]}: {rates[level] / rates[args.levels[0]]:.2f}x"
            )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
