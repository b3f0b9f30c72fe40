"""
GSE / LPR on a remote Qwen2.5-VL served over the OpenAI-compatible API (vLLM).

Each request carries what ``QwenVLModel`` feeds the local model: the same chat (system turn,
then the image before the prompt text), the image at the stage's nominal resolution sent
losslessly as a PNG data URL, greedy decoding, the same ``max_new_tokens``, and a stop at
``</answer>`` (kept in the text, so the parser sees a closed answer).

A server that resizes images (``--mm-processor-kwargs`` with a smaller ``max_pixels``) would
silently feed the model a downscaled frame, which defeats the method; so ``usage.prompt_tokens``
is checked against the tokens the published processor gives for the image
(3136 <= pixels <= 12845056, 28x28 pixels per token: 2691 for 1920x1080, 324 for 512x512).
Every failure raises ``ServerError`` with one line that names the server; the pipeline turns
it into the stage's error outcome.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import OrderedDict
from typing import Optional, Tuple

import numpy as np

from ..config import StageConfig
from .base import Generation
from .qwen_vl import ANSWER_END, ANSWER_ONLY_PREFIX, answer_is_complete, chat_messages

STOP = ANSWER_END
MAX_ROUNDS = 4  # continuations after an ``</answer>`` quoted inside <think>
# The published Qwen2.5-VL preprocessor: patch 14, 2x2 merge, 3136 <= pixels <= 12845056.
MIN_PIXELS = 3136
MAX_PIXELS = 12845056
PIXELS_PER_TOKEN_SIDE = 28
# What Qwen2.5-VL's chat template adds around the image tokens: <|vision_start|>, <|vision_end|>.
IMAGE_MARKER_TOKENS = 2


class ServerError(RuntimeError):
    """A request the model server did not answer usefully (one line, names the server)."""


def _smart_resize():
    """
    Return Qwen2.5-VL's own resize rule.

    Importing transformers takes seconds: done when a stage loads, never inside a request.
    """
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

    return smart_resize


def expected_image_tokens(
    width: int,
    height: int,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    smart_resize=None,
) -> int:
    """
    Count the visual tokens Qwen2.5-VL's processor gives a ``width x height`` image.

    The published limits by default: 2691 for 1920x1080, 324 for 512x512.
    """
    smart_resize = smart_resize or _smart_resize()
    h, w = smart_resize(
        height, width, factor=PIXELS_PER_TOKEN_SIDE, min_pixels=min_pixels, max_pixels=max_pixels
    )
    return (h // PIXELS_PER_TOKEN_SIDE) * (w // PIXELS_PER_TOKEN_SIDE)


def png_data_url(image: np.ndarray) -> str:
    """``H x W x 3 uint8 RGB`` -> a lossless ``data:image/png;base64,...`` URL."""
    import cv2

    ok, encoded = cv2.imencode(
        ".png", np.ascontiguousarray(image[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1]
    )
    if not ok:
        raise ServerError("cannot encode the image as PNG")
    return "data:image/png;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OpenAIServerModel:
    """
    A stage whose model runs on an OpenAI-compatible server (``backend: openai``).

    Thread-safe: the node and ``finers-eval`` may call ``generate`` from several threads; at
    most ``server.max_in_flight`` requests are sent at once, the rest wait their turn (within
    ``server.timeout_s``). Connection errors and HTTP 5xx are retried with exponential backoff;
    a read timeout or HTTP 4xx is not (it would fail the same way again).
    """

    def __init__(self, config: StageConfig):
        import httpx2

        self.config = config
        self.server = config.server
        self.base_url = str(self.server.base_url).rstrip("/")
        self.name = f"openai:{self.server.model}"
        headers = {}
        if self.server.api_key_env:
            key = os.environ.get(self.server.api_key_env)
            if not key:
                raise ServerError(
                    f"environment variable {self.server.api_key_env} (server.api_key_env) "
                    "is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        self._httpx = httpx2
        self._client = httpx2.Client(
            headers=headers,
            timeout=httpx2.Timeout(self.server.timeout_s, connect=self.server.connect_timeout_s),
            limits=httpx2.Limits(max_connections=self.server.max_in_flight),
            trust_env=False,
        )
        self._slots = threading.BoundedSemaphore(self.server.max_in_flight)
        self._smart_resize = _smart_resize() if self.server.check_prompt_tokens else None
        self._text_tokens: "OrderedDict[Tuple[str, str], int]" = OrderedDict()
        self._cache_lock = threading.Lock()
        self.last_timings_ms: dict = {}

    # -- request building ---------------------------------------------------------------
    @property
    def answer_prefix(self) -> str:
        """Text the assistant turn starts with (answer-only mode), as in ``QwenVLModel``."""
        return ANSWER_ONLY_PREFIX if self.config.answer_only else ""

    def messages(self, prompt: str, image_url: Optional[str], assistant_text: str = "") -> list:
        """
        Build ``QwenVLModel``'s chat: system turn, user turn (image, then text).

        With ``assistant_text``, an open assistant turn the server continues.
        """
        messages = chat_messages(prompt, self.config.system_prompt)
        image = [{"type": "image_url", "image_url": {"url": image_url}}] if image_url else []
        user = messages[-1]
        user["content"] = [
            part
            for item in user["content"]
            for part in (image if item["type"] == "image" else [item])
        ]
        if assistant_text:
            messages.append({"role": "assistant", "content": assistant_text})
        return messages

    def chat_request(
        self,
        prompt: str,
        image_url: str,
        assistant_text: str = "",
        max_tokens: Optional[int] = None,
    ) -> dict:
        """Build the chat-completions body (greedy unless ``do_sample``, stop at ``</answer>``)."""
        body = {
            "model": self.server.model,
            "messages": self.messages(prompt, image_url, assistant_text),
            "max_tokens": max_tokens or self.config.max_new_tokens,
            "stop": [STOP],
            "include_stop_str_in_output": True,  # vLLM: the parser needs the closing tag
            "skip_special_tokens": True,
            "temperature": 1.0 if self.config.do_sample else 0.0,
        }
        if assistant_text:  # vLLM: render the assistant turn open, without a new one
            body.update(add_generation_prompt=False, continue_final_message=True)
        return body

    # -- transport ------------------------------------------------------------------------
    def _post(self, path: str, body: dict, root: Optional[str] = None) -> dict:
        """
        POST ``root + path`` (root: ``base_url``) with retries on connection errors and 5xx.

        Return the JSON answer or raise ServerError.
        """
        httpx2 = self._httpx
        root = root or self.base_url
        url = f"{root}{path}"
        attempts = self.server.retries + 1
        failures = []  # distinct, in order: "connection lost mid-request; then cannot connect"
        for attempt in range(attempts):
            if attempt:
                time.sleep(self.server.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._client.post(url, json=body)
            except httpx2.TimeoutException as exc:
                kind = (
                    "connecting"
                    if isinstance(exc, httpx2.ConnectTimeout)
                    else "waiting for the answer"
                )
                limit = (
                    self.server.connect_timeout_s
                    if kind == "connecting"
                    else self.server.timeout_s
                )
                raise ServerError(
                    f"model server at {root} timed out {kind} (limit {limit:g} s; "
                    "server overloaded or hung?)"
                ) from exc
            except httpx2.TransportError as exc:
                failures.append(_connection_failure(exc))
                continue
            if response.status_code >= 500:
                failures.append(f"HTTP {response.status_code}: {_error_detail(response)}")
                continue
            if response.status_code >= 400:
                raise ServerError(
                    f"model server at {root} refused the request: HTTP "
                    f"{response.status_code}: {_error_detail(response)}"
                    f"{_missing_route_hint(response, url, path)}"
                )
            try:
                return response.json()
            except ValueError as exc:
                raise ServerError(
                    f"malformed answer from model server at {root}: not JSON "
                    f"({_one_line(response.text, 80)!r})"
                ) from exc
        said = "; then ".join(dict.fromkeys(failures))
        if failures[-1].startswith("HTTP"):
            raise ServerError(f"model server at {root} failed after {attempts} attempts: {said}")
        raise ServerError(f"model server unreachable at {root} after {attempts} attempts: {said}")

    # -- the stage ------------------------------------------------------------------------
    def generate(self, image: np.ndarray, prompt: str) -> Generation:
        """
        Run one stage request.

        A model that quotes the prompt's ``</answer>`` inside its ``<think>`` block hits the
        stop string early; the server then continues the same assistant turn (its prefix cache
        holds the prompt) until the final answer is out.
        """
        start = time.perf_counter()
        image_url = png_data_url(image)
        timings = {"encode": (time.perf_counter() - start) * 1000.0}
        text = self.answer_prefix
        prompt_tokens, generated = None, 0
        if not self._slots.acquire(timeout=self.server.timeout_s):
            raise ServerError(
                f"{self.server.max_in_flight} requests to {self.base_url} already in flight "
                f"for {self.server.timeout_s:g} s (server.max_in_flight)"
            )
        try:
            for _ in range(MAX_ROUNDS):
                body = self.chat_request(
                    prompt, image_url, text, self.config.max_new_tokens - generated
                )
                sent = time.perf_counter()
                answer = self._post("/chat/completions", body)
                request_ms = (time.perf_counter() - sent) * 1000.0
                piece, tokens, new, stop_reason = _read_answer(answer, self.base_url)
                if prompt_tokens is None:
                    prompt_tokens = tokens
                    if self.server.check_prompt_tokens:
                        self._check_prompt_tokens(prompt, image, tokens)
                text, generated = text + piece, generated + new
                _add(timings, {"request": request_ms, **_server_timings_ms(answer, request_ms)})
                if (
                    stop_reason != STOP
                    or answer_is_complete(text)
                    or generated >= self.config.max_new_tokens
                ):
                    break
        finally:
            self._slots.release()
        self.last_timings_ms = timings
        end = time.perf_counter()
        prefill = timings.get("server_prefill")
        decode = timings.get("server_decode")
        truncated = generated >= self.config.max_new_tokens and not answer_is_complete(text)
        return Generation(
            text,
            int(prompt_tokens),
            generated,
            end - start,
            prefill_seconds=None if prefill is None else prefill / 1000.0,
            decode_seconds=None if decode is None else decode / 1000.0,
            truncated=truncated,
            timings_ms=timings,
        )

    def _check_prompt_tokens(self, prompt: str, image: np.ndarray, prompt_tokens: int) -> None:
        height, width = image.shape[:2]
        visual = expected_image_tokens(
            width,
            height,
            self.config.min_pixels,
            self.config.max_pixels,
            self._smart_resize,
        )
        expected = self.text_tokens(prompt) + IMAGE_MARKER_TOKENS + visual
        if prompt_tokens != expected:
            raise ServerError(
                f"model server at {self.base_url} saw {prompt_tokens} prompt tokens, "
                f"expected {expected} ({visual} visual for {width}x{height}): the server resizes "
                "images; check its processor settings (--mm-processor-kwargs "
                f"'{{\"min_pixels\": {self.config.min_pixels}, \"max_pixels\": "
                f"{self.config.max_pixels}}}' or the checkpoint's preprocessor_config.json)"
            )

    def text_tokens(self, prompt: str) -> int:
        """Tokens of the chat without the image (the server's /tokenize), cached per prompt."""
        key = (self.config.system_prompt, self.answer_prefix, prompt)
        with self._cache_lock:
            if key in self._text_tokens:
                self._text_tokens.move_to_end(key)
                return self._text_tokens[key]
        root = self.base_url[:-3] if self.base_url.endswith("/v1") else self.base_url
        body = {
            "model": self.server.model,
            "messages": self.messages(prompt, None, self.answer_prefix),
        }
        body.update(
            {"add_generation_prompt": False, "continue_final_message": True}
            if self.answer_prefix
            else {"add_generation_prompt": True}
        )
        answer = self._post("/tokenize", body, root)
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, int):
            raise ServerError(
                f"malformed /tokenize answer from {root} (no count); set "
                "server.check_prompt_tokens: false for servers without it"
            )
        with self._cache_lock:
            self._text_tokens[key] = count
            while len(self._text_tokens) > 256:
                self._text_tokens.popitem(last=False)
        return count

    def close(self) -> None:
        self._client.close()


def _connection_failure(exc) -> str:
    """Describe a refused / lost-mid-request connection in words."""
    import httpx2

    if isinstance(exc, httpx2.ConnectError):
        return f"cannot connect ({_one_line(exc, 120) or 'connection refused'})"
    if isinstance(exc, (httpx2.RemoteProtocolError, httpx2.ReadError)):
        return f"connection lost mid-request ({_one_line(exc, 120) or type(exc).__name__})"
    return f"{type(exc).__name__}: {_one_line(exc, 120)}"


def _error_detail(response) -> str:
    """
    Return the server's own error message, else the start of the body.

    The message is the OpenAI error JSON, or FastAPI's ``detail`` for a path it does not serve.
    """
    try:
        data = response.json()
        error = data.get("error", data) if isinstance(data, dict) else data
        if isinstance(error, dict):
            error = error.get("message", error.get("detail", error))
        return _one_line(error, 200)
    except ValueError:
        return _one_line(response.text, 200) or response.reason_phrase


def _missing_route_hint(response, url: str, path: str) -> str:
    """
    Say what to change when a 404 names a path the server does not serve.

    A 404 without an OpenAI error object is such a path (vLLM's refusals, an unknown model
    included, carry ``{"error": {...}}``).
    """
    if response.status_code != 404:
        return ""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and "error" in data:
        return ""
    if path == "/tokenize":
        return (
            f" (no {url}: set server.check_prompt_tokens: false for a server without vLLM's "
            "/tokenize, or expose it next to /v1)"
        )
    return f" (no {url}: server.base_url should be the API root, e.g. http://host:8000/v1)"


def _read_answer(answer, base_url: str) -> Tuple[str, int, int, object]:
    """(text with the closing ``</answer>``, prompt tokens, generated tokens, stop reason)."""
    try:
        choice = answer["choices"][0]
        text = choice["message"]["content"]
        usage = answer["usage"]
        prompt_tokens, generated = int(usage["prompt_tokens"]), int(usage["completion_tokens"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        shown = _one_line(json.dumps(answer)[:120], 120)
        raise ServerError(
            f"malformed answer from model server at {base_url}: no "
            f"{exc if isinstance(exc, KeyError) else 'choices/usage'} in {shown}"
        ) from exc
    if not isinstance(text, str):
        raise ServerError(f"malformed answer from model server at {base_url}: content is not text")
    # A server that drops the matched stop string still says which one it stopped at.
    stop_reason = choice.get("stop_reason")
    if stop_reason == STOP and not text.endswith(STOP):
        text += STOP
    return text, prompt_tokens, generated, stop_reason


def _add(total: dict, more: dict) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0.0) + value


def _server_timings_ms(answer: dict, request_ms: float) -> dict:
    """
    Return the server's own times for this request where it reports them.

    vLLM with ``--enable-per-request-metrics``: queue, prefill, decode; ``network`` is the rest
    of the round trip (transfer, image decoding and preprocessing on the server).
    """
    metrics = answer.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    names = {
        "queue_time_ms": "server_queue",
        "time_to_first_token_ms": "server_prefill",
        "generation_time_ms": "server_decode",
    }
    timings = {
        name: float(metrics[key])
        for key, name in names.items()
        if isinstance(metrics.get(key), (int, float))
    }
    if timings:
        timings["network"] = max(0.0, request_ms - sum(timings.values()))
    return timings
