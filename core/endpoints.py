"""Endpoint models: prompting through any OpenAI-compatible server (vLLM, Ollama, llama.cpp's server, `transformers
serve`, hosted APIs), and the options of big local models (precision, 4/8-bit, vLLM's offline engine).

A model spec `openai:MODEL@BASE_URL` (e.g. `openai:llama3@http://127.0.0.1:8000/v1`) names one; the API key is read
from the environment variable named by --api-key-env and is never written anywhere (not to the run folder, the
response cache or a log). The prompts are the local scorer's, as strings; the server scores them in one of three modes,
probed once per run when --scoring-mode is auto (the first that works wins):

    echo           completions with echo=True and prompt log-probabilities: prompt + label word is sent and the label
                   word's token log-probabilities are summed, the local scorer's exact quantity (lm-evaluation-harness's
                   local-completions does the same); calibration and probabilities as for a local model
    chat-logprobs  chat completions with top_logprobs on the answer's first token: a label's score is the log of the
                   summed probability of the listed tokens its word starts with (a label none of whose tokens is listed
                   scores one nat below the least likely listed token); labels whose words share a first token tie
    generate       chat completions, the answer parsed to a label (prompting.parse_label); an answer naming no label is
                   counted as unparsed and never mapped to one; there are no probabilities, hence no calibration

Every request goes through a response cache on disk (SQLite, keyed by base URL, model and the exact request JSON), so
a rerun, a larger grid or a run that died midway pays only for what was never answered. Requests run on
`concurrency` threads, at most `rate_limit` per second; the openai client retries 429s, 5xx, timeouts and dropped
connections with exponential backoff (`retries`). Tokens (the server's usage fields), latency and cost go into metrics.json.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sqlite3
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import UserError

PREFIX = "openai:"
GENERATE_TOKENS = 10  # the generate mode's answer length (as the page's free-text answer)
TOP_LOGPROBS = 20  # the most OpenAI's chat API lists
UNPARSED = "(unparsed)"  # pred of a generated answer that names no label
PROBE_PROMPT = "Text: the film was good\nCategory:"
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12"  # its later tokens are near-certain for any LM: an echo check
ALIGNED = -2.0  # mean log-probability of COUNTING's second half above which a server's echo is trusted
FALL_THROUGH = {400, 404, 405, 422, 501}  # a probe answered with these tries the next mode (a route or field the server lacks)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Endpoint:
    """An OpenAI-compatible server and one of its models; api_key_env names the variable holding the key."""

    model: str
    base_url: str
    api_key_env: str | None = None

    def record(self) -> dict:
        """What config.json keeps: never the key, only the name of its variable."""
        return {"model": self.model, "base_url": self.base_url, "api_key_env": self.api_key_env}


def is_endpoint(name) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def parse_spec(spec: str, api_key_env: str | None = None) -> Endpoint:
    """`openai:MODEL@BASE_URL` -> Endpoint, or one sentence on what a spec looks like."""
    model, sep, url = spec[len(PREFIX) :].rpartition("@")
    if not sep or not model.strip() or not re.match(r"https?://[^\s/]+", url):
        raise UserError(
            f"'{spec[:80]}' is not an endpoint model; write openai:MODEL@URL, e.g. openai:llama3@http://127.0.0.1:8000/v1."
        )
    if api_key_env is not None and not ENV_NAME.fullmatch(api_key_env):
        raise UserError(
            f"--api-key-env takes the NAME of an environment variable (such as OPENAI_API_KEY), not '{api_key_env[:4]}…'."
        )
    return Endpoint(model.strip(), url.rstrip("/"), api_key_env or None)


def check_config(config) -> None:
    """The endpoint settings of a PromptConfig that cannot work, in one sentence (called when the config is made)."""
    if not is_endpoint(config.model):
        return
    parse_spec(config.model, config.api_key_env)
    if config.use_chat_template:
        raise UserError(
            "An endpoint model applies its server's own chat template (in the chat-logprobs and generate modes); "
            "leave the chat template off and choose --scoring-mode instead."
        )
    if config.precision != "auto" or config.quantize or config.backend != "transformers":
        raise UserError(
            "--precision, --quantize and --backend are for local models; an endpoint's server decides how its model runs."
        )
    if config.scoring_mode == "generate" and config.calibration not in ("auto", "none"):
        raise UserError(
            "Calibration needs label probabilities, which the generate scoring mode does not give; use --calibrate none."
        )


def config_record(config) -> dict:
    """config.json's 'endpoint' entry of an endpoint run (base URL, model, the key's variable name), else nothing."""
    return {"endpoint": parse_spec(config.model, config.api_key_env).record()} if is_endpoint(config.model) else {}


# ---- big local models: what this machine can do --------------------------------------------------


def local_options(config, device: str) -> dict:
    """load_causal_lm's precision/quantize options for a local model, or one sentence on why this machine cannot."""
    if config.backend == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise UserError(
                "--backend vllm needs the vllm package, which is not installed (pip install vllm, on a machine with a CUDA GPU)."
            )
        if device != "cuda":
            raise UserError(f"--backend vllm needs a CUDA GPU; this machine scores on {device}.")
    if config.quantize:
        if device != "cuda":
            raise UserError(
                f"--quantize {config.quantize} needs a CUDA GPU (bitsandbytes kernels); this machine scores on {device}."
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise UserError(
                f"--quantize {config.quantize} needs the bitsandbytes package, which is not installed (pip install bitsandbytes)."
            )
    precision = config.precision
    if precision in ("bf16", "fp16") and device != "cuda":
        raise UserError(
            f"--precision {precision} is for a CUDA GPU; on {device} the model runs in fp32 (leave --precision auto)."
        )
    if precision == "auto":
        import torch

        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device == "cuda" else "fp32"
    options = {"precision": precision} if precision != "fp32" else {}
    return {**options, "quantize": config.quantize} if config.quantize else options


# ---- the response cache, the rate limit and the usage meter ---------------------------------------


def cache_path() -> Path:
    """The response cache: PFT_ENDPOINT_CACHE, else endpoint-cache.sqlite in the tool's cache folder."""
    from core import models

    return Path(os.environ.get("PFT_ENDPOINT_CACHE") or models.cache_dir() / "endpoint-cache.sqlite")


class Cache:
    """Answers on disk, keyed by base URL + model + the exact request JSON (never the key); one row per request,
    committed at once, so whatever a dying server answered is kept."""

    def __init__(self, path: Path):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, "
                "latency_ms REAL, created REAL)"
            )
        except (OSError, sqlite3.Error) as e:
            raise UserError(f"Could not open the endpoint response cache {path}: {e}.") from None
        self.lock = threading.Lock()

    @staticmethod
    def key(endpoint: Endpoint, route: str, body: dict) -> str:
        return hashlib.sha256(json.dumps([endpoint.base_url, endpoint.model, route, body], sort_keys=True).encode()).hexdigest()

    def get(self, key: str) -> tuple[dict, float] | None:
        with self.lock:
            row = self.db.execute("SELECT response, latency_ms FROM responses WHERE key = ?", (key,)).fetchone()
        return (json.loads(row[0]), row[1]) if row else None

    def put(self, key: str, response: dict, latency_ms: float) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", (key, json.dumps(response), latency_ms, time.time())
            )
            self.db.commit()


class RateLimit:
    """At most `per_second` request starts per second across threads (None: no limit)."""

    def __init__(self, per_second: float | None):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        time.sleep(max(0.0, start - now))


@dataclass
class Meter:
    """Requests, tokens and latencies of one run (cached answers count with the usage and latency they had)."""

    requests: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latencies: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, response: dict, latency_ms: float, cached: bool) -> None:
        usage = response.get("usage") or {}
        with self.lock:
            self.requests += 1
            self.cached += int(cached)
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
            self.latencies.append(float(latency_ms or 0.0))

    def metrics(self, price_input: float | None, price_output: float | None) -> dict:
        priced = price_input is not None or price_output is not None
        cost = (self.prompt_tokens * (price_input or 0) + self.completion_tokens * (price_output or 0)) / 1e6 if priced else None
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(cost, 6) if cost is not None else None,
            "latency_ms": round(float(np.median(self.latencies)), 2) if self.latencies else None,
            "requests": self.requests,
            "cached_requests": self.cached,
        }


METERS: list[Meter] = []  # the meter of the run in progress (auto's slice runs add to their run's meter)


# ---- the client ---------------------------------------------------------------------------------


class Client:
    """The openai client for one endpoint with the cache, rate limit, meter and one-sentence errors."""

    def __init__(self, endpoint: Endpoint, config, meter: Meter):
        import openai

        key = os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""
        if endpoint.api_key_env and not key:
            raise UserError(
                f"The environment variable {endpoint.api_key_env} (--api-key-env) is not set; put the endpoint's API key in it."
            )
        self.endpoint, self.config, self.meter = endpoint, config, meter
        self.openai = openai.OpenAI(
            base_url=endpoint.base_url, api_key=key or "no-key", timeout=config.timeout, max_retries=config.retries
        )
        self.cache = Cache(cache_path())
        self.rate = RateLimit(config.rate_limit)

    def request(self, route: str, body: dict) -> dict:
        """The answer to one request (route: 'completions' or 'chat'), from the cache when it was asked before."""
        body = {"model": self.endpoint.model, **body}
        key = Cache.key(self.endpoint, route, body)
        hit = self.cache.get(key)
        if hit is not None:
            self.meter.add(hit[0], hit[1], cached=True)
            return hit[0]
        self.rate.wait()
        started = time.perf_counter()
        try:
            api = self.openai.completions if route == "completions" else self.openai.chat.completions
            response = api.create(**body).model_dump(mode="json")
        except Exception as e:  # noqa: BLE001 - every failure becomes one sentence
            error = self.explain(e)
            error.status = getattr(e, "status_code", None)
            raise error from None
        latency = (time.perf_counter() - started) * 1000
        if not isinstance(response.get("choices"), list) or not response["choices"]:
            raise UserError(
                f"The endpoint at {self.endpoint.base_url} answered without any choices, which no OpenAI-compatible server does."
            )
        self.cache.put(key, response, latency)
        self.meter.add(response, latency, cached=False)
        return response

    def explain(self, e: Exception) -> UserError:
        """One sentence for a failed request (answers received before it stay in the cache)."""
        import openai

        url, kept = self.endpoint.base_url, "answers received so far are cached, so a rerun continues from there"
        tries = f"after {self.config.retries} retries"
        status = getattr(e, "status_code", None)
        body = getattr(e, "body", None)
        if isinstance(body, dict):  # the server's own words: {"error": {"message": ...}}, {"detail": ...} or {"message": ...}
            body = body.get("error", body)
            body = body.get("message") or body.get("detail") or body if isinstance(body, dict) else body
        detail = " ".join(str(body or getattr(e, "message", "") or e).split())[:200]
        if isinstance(e, openai.AuthenticationError | openai.PermissionDeniedError):
            fix = (
                f"check the key in {self.endpoint.api_key_env}"
                if self.endpoint.api_key_env
                else "it needs an API key: put it in an environment variable and name it with --api-key-env"
            )
            return UserError(f"The endpoint at {url} refused the request as unauthorised (HTTP {status}); {fix}.")
        if isinstance(e, openai.NotFoundError):
            return UserError(
                f"The endpoint at {url} answered 404 for model '{self.endpoint.model}': the server has no such model "
                f"or no such route (check the model name and that the URL ends in /v1)."
            )
        if isinstance(e, openai.RateLimitError):
            return UserError(
                f"The endpoint at {url} still answered 429 (rate limited) {tries}; lower --concurrency or set "
                f"--rate-limit, then rerun ({kept})."
            )
        if isinstance(e, openai.APITimeoutError):
            return UserError(f"The endpoint at {url} did not answer within {self.config.timeout:g} s {tries} ({kept}).")
        if isinstance(e, openai.APIConnectionError):
            return UserError(f"Nothing answered at {url} {tries} (is the server running and the URL right?); {kept}.")
        if isinstance(e, openai.APIStatusError):
            return UserError(f"The endpoint at {url} failed with HTTP {status} ({detail}); {kept}.")
        if isinstance(e, openai.APIResponseValidationError | ValueError | KeyError | TypeError):
            return UserError(
                f"The endpoint at {url} answered with something that is not an OpenAI-compatible JSON response; {kept}."
            )
        return UserError(f"The request to the endpoint at {url} failed ({type(e).__name__}: {detail}); {kept}.")


# ---- the three scoring modes ---------------------------------------------------------------------


def echo_body(prompt: str, continuation: str) -> dict:
    return {"prompt": prompt + continuation, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}


def echo_score(response: dict, prompt: str, continuation: str) -> tuple[float, int]:
    """(summed log-probability, token count) of the continuation's tokens in an echoed completion."""
    logprobs = (response["choices"][0] or {}).get("logprobs") or {}
    tokens, values = logprobs.get("tokens") or [], logprobs.get("token_logprobs") or []
    offsets = logprobs.get("text_offset") or list(np.cumsum([0] + [len(t) for t in tokens])[:-1])
    start, end = len(prompt), len(prompt) + len(continuation)
    picked = [v for t, v, o in zip(tokens, values, offsets) if o < end and o + max(len(t), 1) > start]
    if not picked or any(v is None for v in picked):
        raise ValueError("no prompt log-probabilities for the label word")
    return float(sum(picked)), len(picked)


def echo_aligned(response: dict) -> bool:
    """Whether an echo's prompt log-probabilities are each token's own given the tokens before it: the second half of
    COUNTING is near-certain then. (llama-cpp-python 0.3 pairs each token with the next position's distribution when
    the model adds no BOS token, as SmolLM2's GGUF; those numbers are no likelihood, so such a server is not scored by echo.)"""
    values = [v for v in ((response["choices"][0] or {}).get("logprobs") or {}).get("token_logprobs") or [] if v is not None]
    half = values[len(values) // 2 :]
    return len(half) >= 3 and float(np.mean(half)) > ALIGNED


def chat_body(prompt: str, mode: str) -> dict:
    body = {"messages": [{"role": "user", "content": prompt}], "temperature": 0}
    if mode == "chat-logprobs":
        return {**body, "max_tokens": 1, "logprobs": True, "top_logprobs": TOP_LOGPROBS}
    return {**body, "max_tokens": GENERATE_TOKENS}


def top_logprobs(response: dict) -> list[dict]:
    content = ((response["choices"][0] or {}).get("logprobs") or {}).get("content") or []
    return (content[0] or {}).get("top_logprobs") or [] if content else []


def chat_scores(response: dict, words: list[str]) -> np.ndarray:
    """(C,) label scores from the answer's first-token top log-probabilities (see the module docstring)."""
    listed = [(str(t.get("token", "")).strip().lower(), float(t["logprob"])) for t in top_logprobs(response)]
    if not listed:
        raise ValueError("no top log-probabilities in the answer")
    floor = min(v for _, v in listed) - 1.0
    out = []
    for word in words:
        matching = [v for t, v in listed if t and word.lower().startswith(t)]
        out.append(float(np.logaddexp.reduce(matching)) if matching else floor)
    return np.array(out)


def answer_text(response: dict) -> str:
    return str(((response["choices"][0] or {}).get("message") or {}).get("content") or "")


def probe(client: Client) -> str:
    """The first scoring mode this endpoint supports: echo, then chat-logprobs, then generate (its failure is the run's error)."""
    try:
        response = client.request("completions", echo_body(COUNTING, ""))
        if str(response["choices"][0].get("text", "")).startswith(COUNTING) and echo_aligned(response):
            return "echo"
    except UserError as e:
        if getattr(e, "status", None) not in FALL_THROUGH:
            raise
    except (ValueError, KeyError, TypeError, IndexError):  # an echo without prompt log-probabilities
        pass
    try:
        if top_logprobs(client.request("chat", chat_body(PROBE_PROMPT, "chat-logprobs"))):
            return "chat-logprobs"
    except UserError as e:
        if getattr(e, "status", None) not in FALL_THROUGH:
            raise
    client.request("chat", chat_body(PROBE_PROMPT, "generate"))
    return "generate"


def run_requests(
    client: Client, requests: list[tuple[str, dict]], owners: list[int | None], n_examples: int, progress
) -> list[dict]:
    """Answers to every request, `concurrency` at a time; progress gets (examples whose requests are all answered,
    n_examples). Ctrl-C / a cancelled job stops at once (requests in flight finish into the cache)."""
    pending = np.zeros(n_examples, dtype=int)
    for o in owners:
        if o is not None:
            pending[o] += 1
    results: list = [None] * len(requests)
    pool = ThreadPoolExecutor(max_workers=client.config.concurrency, thread_name_prefix="endpoint")
    try:
        futures = {pool.submit(client.request, route, body): i for i, (route, body) in enumerate(requests)}
        left, last = set(futures), 0.0
        while left:
            done, left = wait(left, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in done:
                i = futures[f]
                results[i] = f.result()  # a failure's sentence ends the run (the cache keeps the others' answers)
                if owners[i] is not None:
                    pending[owners[i]] -= 1
            if progress and (time.monotonic() - last > 0.5 or not left):
                last = time.monotonic()
                progress(int((pending == 0).sum()), n_examples)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return results


def describe_usage(metrics: dict) -> str:
    """One line: scoring mode, requests (cached), tokens, cost, median latency, unparsed answers."""
    cost = f"${metrics['cost_usd']:.4f}" if metrics.get("cost_usd") is not None else "no price given"
    latency = f"{metrics['latency_ms']:.0f} ms" if metrics.get("latency_ms") is not None else "n/a"
    line = (
        f"scoring mode {metrics.get('scoring_mode')}, {metrics.get('requests', 0)} requests ({metrics.get('cached_requests', 0)} "
        f"from the cache), {metrics.get('prompt_tokens', 0):,} prompt + "
        f"{metrics.get('completion_tokens', 0):,} completion tokens, "
        f"cost {cost}, median latency {latency}"
    )
    return line + (f", {metrics['unparsed']} unparsed answers" if metrics.get("unparsed") else "")


def missing_views(metrics: dict) -> list[str]:
    """What the Prompting and Compare pages cannot show for a run scored in its mode, each with the reason."""
    if metrics.get("scoring_mode") == "generate":
        return [
            "label probabilities, confidence and calibration: the generate mode reads only the answer's text, "
            "so there is no probability to show or to calibrate (the server gives no log-probabilities)"
        ]
    if metrics.get("scoring_mode") == "chat-logprobs":
        return [
            "multi-token label words are scored on their first token only: the chat API lists log-probabilities "
            "of the answer's first token, not of a given continuation"
        ]
    return []
