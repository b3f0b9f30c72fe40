"""
The openai stage backend against a real HTTP server on loopback that plays a model server.

What a deployment relies on, checked as it crosses the wire: the request body vLLM receives
(greedy decoding, the stop string kept in the output, the image as a lossless PNG), retries
spaced by the configured backoff, timeouts and refusals reported without retrying, a
generation that ends exactly at ``max_new_tokens``, and one clear line for every failure.
"""

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from finers_ros.config import ServerConfig, StageConfig
from finers_ros.stages.openai_server import OpenAIServerModel, ServerError

PROMPT = "Please find the red screw."
ANSWER = "<think>left</think><answer>{'bbox': [1, 2, 3, 4]}</answer>"


def completion(text, stop_reason="</answer>", tokens=12, prompt_tokens=300, **extra) -> dict:
    """Build a vLLM chat-completions answer (the fields the backend reads)."""
    choice = {"message": {"role": "assistant", "content": text}, "stop_reason": stop_reason}
    return {"choices": [choice], "usage": {"prompt_tokens": prompt_tokens,
                                           "completion_tokens": tokens}, **extra}


class ScriptedServer:
    """
    A real HTTP server on 127.0.0.1 answering each POST with the next scripted reply.

    A reply is ``(status, body)`` (bytes as they are, anything else as JSON), ``"drop"`` (close the
    connection without answering), ``("slow", seconds, reply)``, ``("trickle", seconds,
    reply)`` (the body a byte at a time over ``seconds``) or ``"close"`` (answer 503 and
    stop listening, so later connections are refused). The last reply repeats.
    Every request is kept: (arrival time, path, headers, JSON body).
    """

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                outer.requests.append((time.monotonic(), self.path, dict(self.headers), body))
                reply = outer.replies.pop(0) if len(outer.replies) > 1 else outer.replies[0]
                if reply == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if reply == "close":  # stop listening first: the next attempt is refused
                    outer.stop_listening()
                    reply = (503, {"error": {"message": "shutting down"}})
                trickle = 0.0
                if reply[0] == "slow":
                    time.sleep(reply[1])
                    reply = reply[2]
                elif reply[0] == "trickle":
                    trickle, reply = reply[1], reply[2]
                status, payload = reply
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if trickle:
                    for index in range(len(data)):
                        self.wfile.write(data[index:index + 1])
                        self.wfile.flush()
                        time.sleep(trickle / len(data))
                else:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True  # a slow reply does not hold up closing the server
        self.httpd.block_on_close = False
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.url = self.root + "/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.01,),
                                       daemon=True)
        self.thread.start()
        self.listening = True

    def backend(self, max_new_tokens=64, do_sample=False, answer_only=False, **server):
        settings = {"base_url": self.url, "model": "served-qwen", "retries": 2,
                    "backoff_s": 0.01, "check_prompt_tokens": False, **server}
        return OpenAIServerModel(StageConfig(
            backend="openai", max_new_tokens=max_new_tokens, do_sample=do_sample,
            answer_only=answer_only, server=ServerConfig(**settings)))

    def bodies(self, path="/v1/chat/completions"):
        return [body for _, p, _, body in self.requests if p == path]

    def stop_listening(self):
        if self.listening:
            self.listening = False
            self.httpd.shutdown()
            self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(*replies):
        servers.append(ScriptedServer(*replies))
        return servers[-1]

    yield start
    for server in servers:
        server.stop_listening()


def frame(height=48, width=64):
    return np.random.default_rng(5).integers(0, 255, (height, width, 3), dtype=np.uint8)


def test_request_body_is_vllms_greedy_chat_with_the_image_first(serve):
    server = serve((200, completion(ANSWER)))
    image = frame()
    generation = server.backend(max_new_tokens=64).generate(image, PROMPT)
    assert generation.text == ANSWER
    [(_, path, headers, body)] = server.requests
    assert path == "/v1/chat/completions"
    assert headers["Content-Type"] == "application/json"
    url = body["messages"][1]["content"][0]["image_url"]["url"]
    assert body == {
        "model": "served-qwen",
        "messages": [
            {"role": "system", "content": [{"type": "text",
                                            "text": "You are a helpful assistant."}]},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                         {"type": "text", "text": PROMPT}]},
        ],
        "max_tokens": 64,
        "stop": ["</answer>"],
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
        "temperature": 0.0,
    }
    prefix = "data:image/png;base64,"
    assert url.startswith(prefix)
    png = np.frombuffer(base64.b64decode(url[len(prefix):]), np.uint8)
    decoded = cv2.imdecode(png, cv2.IMREAD_COLOR)[:, :, ::-1]  # OpenCV decodes BGR
    np.testing.assert_array_equal(decoded, image)  # lossless, RGB as given


def test_sampling_stage_asks_for_temperature_one(serve):
    server = serve((200, completion(ANSWER)))
    server.backend(do_sample=True).generate(frame(), PROMPT)
    assert server.bodies()[0]["temperature"] == 1.0


def test_answer_only_stage_continues_an_open_assistant_turn(serve):
    server = serve((200, completion("{'bbox': [1, 2, 3, 4]}</answer>", tokens=9)))
    generation = server.backend(answer_only=True).generate(frame(), PROMPT)
    assert generation.text == "<think> </think><answer>{'bbox': [1, 2, 3, 4]}</answer>"
    body = server.bodies()[0]
    assert body["messages"][-1] == {"role": "assistant", "content": "<think> </think><answer>"}
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False


def test_a_stop_string_the_server_dropped_is_put_back(serve):
    dropped = ANSWER[: -len("</answer>")]
    server = serve((200, completion(dropped, stop_reason="</answer>")),
                   (200, completion(dropped, stop_reason=None)))
    backend = server.backend()
    assert backend.generate(frame(), PROMPT).text == ANSWER
    # stopped for another reason (length): the text stays as the server sent it
    assert backend.generate(frame(), PROMPT).text == dropped


@pytest.mark.parametrize("tokens, truncated", [(15, False), (16, True)])
def test_truncated_exactly_when_max_new_tokens_are_spent_without_an_answer(
        serve, tokens, truncated):
    server = serve((200, completion("<think>still thinking", stop_reason=None, tokens=tokens)))
    generation = server.backend(max_new_tokens=16).generate(frame(), PROMPT)
    assert generation.generated_tokens == tokens and generation.truncated is truncated
    assert len(server.requests) == 1


def test_a_complete_answer_at_exactly_max_new_tokens_is_not_truncated(serve):
    server = serve((200, completion(ANSWER, tokens=16)))
    assert server.backend(max_new_tokens=16).generate(frame(), PROMPT).truncated is False


def test_continuation_asks_only_for_the_tokens_left_and_stops_after_four_rounds(serve):
    quoted = "<think> the format is <answer>{...}</answer>"
    server = serve((200, completion(quoted, tokens=5)))
    generation = server.backend(max_new_tokens=100).generate(frame(), PROMPT)
    bodies = server.bodies()
    assert [body["max_tokens"] for body in bodies] == [100, 95, 90, 85]
    assert generation.text == quoted * 4 and generation.generated_tokens == 20
    assert not generation.truncated  # stopped by the round limit, tokens were left
    assert "continue_final_message" not in bodies[0]
    assert bodies[3]["messages"][-1] == {"role": "assistant", "content": quoted * 3}


def test_continuation_ends_when_max_new_tokens_are_spent(serve):
    quoted = "<think> the format is <answer>{...}</answer>"
    server = serve((200, completion(quoted, tokens=8)))
    generation = server.backend(max_new_tokens=16).generate(frame(), PROMPT)
    assert len(server.requests) == 2 and generation.generated_tokens == 16
    assert generation.truncated


def test_server_timings_are_summed_over_rounds_and_split_from_the_network(serve):
    metrics = {"queue_time_ms": 0.001, "time_to_first_token_ms": 0.002,
               "generation_time_ms": 0.004}
    quoted = "<think> the format is <answer>{...}</answer>"
    server = serve((200, completion(quoted, tokens=4, metrics=metrics)),
                   (200, completion(" done </think>" + ANSWER, tokens=6, metrics=metrics)))
    backend = server.backend()
    generation = backend.generate(frame(), PROMPT)
    timings = generation.timings_ms
    assert len(server.requests) == 2
    assert timings["server_queue"] == pytest.approx(0.002)
    assert timings["server_prefill"] == pytest.approx(0.004)
    assert timings["server_decode"] == pytest.approx(0.008)
    assert generation.prefill_seconds == pytest.approx(0.004e-3)
    assert generation.decode_seconds == pytest.approx(0.008e-3)
    # the rest of each round trip (microseconds of server time here) is the network's
    assert timings["network"] == pytest.approx(timings["request"] - 0.014)
    assert timings["encode"] > 0 and backend.last_timings_ms is timings


def test_network_time_is_never_below_zero(serve):
    metrics = {"queue_time_ms": 1e6, "time_to_first_token_ms": 1e6, "generation_time_ms": 1e6}
    server = serve((200, completion(ANSWER, metrics=metrics)))
    assert server.backend().generate(frame(), PROMPT).timings_ms["network"] == 0.0


def test_without_server_metrics_only_the_round_trip_is_timed(serve):
    server = serve((200, completion(ANSWER, metrics={"queue_time_ms": "soon"})))
    generation = server.backend().generate(frame(), PROMPT)
    assert set(generation.timings_ms) == {"encode", "request"}
    assert generation.prefill_seconds is None and generation.decode_seconds is None


def test_retries_wait_the_backoff_then_twice_as_long(serve):
    server = serve((503, {"error": {"message": "engine is overloaded"}}))
    with pytest.raises(ServerError) as caught:
        server.backend(backoff_s=0.25).generate(frame(), PROMPT)
    assert str(caught.value) == (f"model server at {server.url} failed after 3 attempts: "
                                 "HTTP 503: engine is overloaded")
    arrivals = [arrival for arrival, *_ in server.requests]
    first, second = arrivals[1] - arrivals[0], arrivals[2] - arrivals[1]
    assert 0.25 <= first < 0.45 and 0.5 <= second < 0.7


def test_no_retries_means_one_attempt(serve):
    server = serve((503, {"error": {"message": "busy"}}))
    with pytest.raises(ServerError, match="failed after 1 attempts: HTTP 503: busy$"):
        server.backend(retries=0).generate(frame(), PROMPT)
    assert len(server.requests) == 1


def test_a_read_timeout_is_reported_at_once_not_retried(serve):
    server = serve(("slow", 0.8, (200, completion(ANSWER))))
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        server.backend(timeout_s=0.2).generate(frame(), PROMPT)
    assert str(caught.value) == (f"model server at {server.url} timed out waiting for the "
                                 "answer (limit 0.2 s; server overloaded or hung?)")
    assert len(server.requests) == 1 and time.monotonic() - started < 0.7


def test_a_refusal_is_reported_at_once_not_retried(serve):
    server = serve((400, {"error": {"message": "max_tokens is too large"}}))
    with pytest.raises(ServerError) as caught:
        server.backend().generate(frame(), PROMPT)
    assert str(caught.value) == (f"model server at {server.url} refused the request: HTTP 400: "
                                 "max_tokens is too large")
    assert len(server.requests) == 1


def test_a_404_with_an_error_object_is_a_refusal_not_a_wrong_path(serve):
    server = serve((404, {"error": {"message": "The model `m` does not exist."}}))
    with pytest.raises(ServerError) as caught:
        server.backend().generate(frame(), PROMPT)
    assert str(caught.value).endswith("HTTP 404: The model `m` does not exist.")


def test_failures_are_named_in_order_and_classified_by_the_last(serve):
    lost_then_busy = serve("drop", (503, {"error": {"message": "busy"}}))
    with pytest.raises(ServerError) as caught:
        lost_then_busy.backend().generate(frame(), PROMPT)
    said = str(caught.value)
    assert said.startswith(f"model server at {lost_then_busy.url} failed after 3 attempts: "
                           "connection lost mid-request (")
    assert said.endswith("); then HTTP 503: busy")

    busy_then_gone = serve("close")
    with pytest.raises(ServerError) as caught:
        busy_then_gone.backend().generate(frame(), PROMPT)
    said = str(caught.value)
    assert said.startswith(f"model server unreachable at {busy_then_gone.url} after 3 attempts: "
                           "HTTP 503: shutting down; then cannot connect (")
    assert said.count("cannot connect") == 1  # the same failure twice is said once


@pytest.mark.parametrize(
    "status, body, detail",
    [
        (503, b"upstream unavailable\n\n", "upstream unavailable"),
        (503, b"", "Service Unavailable"),
        (502, {"error": "bad gateway"}, "bad gateway"),
        (500, {"detail": "Internal failure"}, "Internal failure"),
        (500, {"error": {"detail": "engine dead"}}, "engine dead"),
        (500, ["a", "list"], "['a', 'list']"),
        (500, b"x" * 500, "x" * 197 + "..."),
    ],
)
def test_the_servers_own_error_text_is_in_the_line(serve, status, body, detail):
    server = serve((status, body))
    with pytest.raises(ServerError) as caught:
        server.backend(retries=0).generate(frame(), PROMPT)
    assert str(caught.value).endswith(f"HTTP {status}: {detail}")


@pytest.mark.parametrize(
    "answer, why",
    [
        ({"choices": [{"message": {"content": None}}],
          "usage": {"prompt_tokens": 1, "completion_tokens": 1}}, "content is not text"),
        ({"choices": [{"message": {"content": "x"}}]}, "no 'usage' in {\"choices\": "),
        ({"choices": [{"message": {"content": "x"}}],
          "usage": {"prompt_tokens": "many", "completion_tokens": 1}}, "no choices/usage in "),
    ],
)
def test_a_malformed_answer_says_what_is_missing(serve, answer, why):
    server = serve((200, answer))
    with pytest.raises(ServerError) as caught:
        server.backend().generate(frame(), PROMPT)
    assert str(caught.value).startswith(
        f"malformed answer from model server at {server.url}: {why}")
    assert len(server.requests) == 1


def test_a_non_json_answer_shows_its_start_on_one_line(serve):
    server = serve((200, b"<html>\n  <body>" + b"y" * 200 + b"</body>\n</html>"))
    with pytest.raises(ServerError) as caught:
        server.backend().generate(frame(), PROMPT)
    assert str(caught.value) == (f"malformed answer from model server at {server.url}: not "
                                 "JSON ('<html> <body>" + "y" * 64 + "...')")


def test_prompt_tokens_are_checked_against_the_servers_tokenizer_once_per_prompt(serve):
    # 512x512 is 324 visual tokens, plus the two image markers
    server = serve((200, completion(ANSWER, prompt_tokens=40 + 2 + 324)), (200, {"count": 40}),
                   (200, completion(ANSWER, prompt_tokens=40 + 2 + 324)))
    backend = server.backend(check_prompt_tokens=True)
    for _ in range(2):
        assert backend.generate(frame(512, 512), PROMPT).prompt_tokens == 366
    assert [path for _, path, _, _ in server.requests] == [
        "/v1/chat/completions", "/tokenize", "/v1/chat/completions"]
    assert server.bodies("/tokenize") == [{
        "model": "served-qwen",
        "messages": [
            {"role": "system", "content": [{"type": "text",
                                            "text": "You are a helpful assistant."}]},
            {"role": "user", "content": [{"type": "text", "text": PROMPT}]},
        ],
        "add_generation_prompt": True,
    }]


def test_answer_only_prompt_tokens_are_counted_with_the_open_assistant_turn(serve):
    server = serve((200, completion("{}</answer>", prompt_tokens=50 + 2 + 324)),
                   (200, {"count": 50}))
    backend = server.backend(check_prompt_tokens=True, answer_only=True)
    backend.generate(frame(512, 512), PROMPT)
    [body] = server.bodies("/tokenize")
    assert body["messages"][-1] == {"role": "assistant", "content": "<think> </think><answer>"}
    assert body["add_generation_prompt"] is False and body["continue_final_message"] is True


@pytest.mark.parametrize("answer", [{"count": "40"}, {"total": 40}, ["count", 40]])
def test_a_tokenize_answer_without_a_count_says_how_to_turn_the_check_off(serve, answer):
    server = serve((200, completion(ANSWER)), (200, answer))
    with pytest.raises(ServerError) as caught:
        server.backend(check_prompt_tokens=True).generate(frame(512, 512), PROMPT)
    assert str(caught.value) == (f"malformed /tokenize answer from {server.root} (no count); "
                                 "set server.check_prompt_tokens: false for servers without it")


def test_a_lost_or_refused_connection_says_so_with_the_systems_reason(serve):
    server = serve("drop")
    with pytest.raises(ServerError) as caught:
        server.backend(retries=0).generate(frame(), PROMPT)
    assert str(caught.value) == (f"model server unreachable at {server.url} after 1 attempts: "
                                 "connection lost mid-request (Server disconnected without "
                                 "sending a response.)")
    server.stop_listening()
    with pytest.raises(ServerError) as caught:
        server.backend(retries=0).generate(frame(), PROMPT)
    assert str(caught.value) == (f"model server unreachable at {server.url} after 1 attempts: "
                                 "cannot connect ([Errno 111] Connection refused)")


@pytest.mark.parametrize(
    "body, detail",
    [
        ({"error": {"code": 5}}, "{'code': 5}"),  # an error object without a message
        ({"error": {"message": "m" * 300}}, "m" * 197 + "..."),
        (b"y" * 200, "y" * 200),  # exactly at the limit: shown whole
    ],
)
def test_long_or_unusual_error_bodies_stay_one_short_line(serve, body, detail):
    server = serve((500, body))
    with pytest.raises(ServerError) as caught:
        server.backend(retries=0).generate(frame(), PROMPT)
    assert str(caught.value).endswith(f"HTTP 500: {detail}")


def test_a_malformed_answer_shows_at_most_120_characters_of_it(serve):
    answer = {"choices": [{"message": {"content": "z" * 300}}]}
    server = serve((200, answer))
    with pytest.raises(ServerError) as caught:
        server.backend().generate(frame(), PROMPT)
    assert str(caught.value) == (f"malformed answer from model server at {server.url}: no "
                                 f"'usage' in {json.dumps(answer)[:120]}")


def test_a_base_url_with_a_trailing_slash_is_the_same_server(serve):
    server = serve((200, completion(ANSWER)), (500, {"error": {"message": "busy"}}))
    backend = server.backend(base_url=server.url + "/", retries=0)
    backend.generate(frame(), PROMPT)
    assert server.requests[0][1] == "/v1/chat/completions"
    with pytest.raises(ServerError, match=rf"^model server at {server.url} failed after"):
        backend.generate(frame(), PROMPT)


def test_the_tokenizer_of_a_server_behind_another_api_root_is_next_to_it(serve):
    server = serve((200, {"count": 40}))
    backend = server.backend(base_url=server.root + "/proxy", check_prompt_tokens=True)
    assert backend.text_tokens(PROMPT) == 40
    assert [path for _, path, _, _ in server.requests] == ["/proxy/tokenize"]


def test_a_server_without_tokenize_gets_the_exact_hint(serve):
    server = serve((404, {"detail": "Not Found"}))
    with pytest.raises(ServerError) as caught:
        server.backend(check_prompt_tokens=True).text_tokens(PROMPT)
    assert str(caught.value) == (
        f"model server at {server.root} refused the request: HTTP 404: Not Found (no "
        f"{server.root}/tokenize: set server.check_prompt_tokens: false for a server without "
        "vLLM's /tokenize, or expose it next to /v1)")


def test_prompt_token_counts_are_kept_for_the_256_most_recent_prompts(serve):
    server = serve((200, {"count": 40}))
    backend = server.backend(check_prompt_tokens=True)

    def asked(prompt):
        before = len(server.requests)
        backend.text_tokens(prompt)
        return len(server.requests) - before

    assert [asked(f"prompt {n}") for n in range(256)] == [1] * 256
    assert asked("prompt 0") == 0  # cached, and now the most recent
    assert asked("prompt 256") == 1  # the 257th evicts the least recent: prompt 1
    assert asked("prompt 0") == 0 and asked("prompt 2") == 0 and asked("prompt 256") == 0
    assert asked("prompt 1") == 1


def test_expected_image_tokens_follow_the_stages_pixel_limits():
    from finers_ros.stages.openai_server import expected_image_tokens

    assert expected_image_tokens(1920, 1080) == 2691
    assert expected_image_tokens(512, 512) == 324
    assert expected_image_tokens(64, 64) == 4  # raised to the 3136-pixel minimum
    assert expected_image_tokens(64, 64, min_pixels=112 * 112) == 16
    assert expected_image_tokens(1920, 1080, max_pixels=200704) == 252


def test_requests_past_max_in_flight_wait_their_turn_then_give_up_with_one_line(serve):
    body = json.dumps(completion(ANSWER)).encode()
    server = serve(("trickle", 1.5, (200, body)))  # each read well inside the timeout
    backend = server.backend(max_in_flight=1, timeout_s=0.5)
    outcome = {}
    first = threading.Thread(target=lambda: outcome.update(first=backend.generate(frame(),
                                                                                  PROMPT)))
    first.start()
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(ServerError) as caught:
        backend.generate(frame(), PROMPT)
    waited = time.monotonic() - started
    first.join(10)
    assert str(caught.value) == (f"1 requests to {server.url} already in flight for 0.5 s "
                                 "(server.max_in_flight)")
    assert 0.5 <= waited < 1.2 and outcome["first"].text == ANSWER
    assert len(server.requests) == 1


def test_a_proxy_in_the_environment_is_not_used_for_the_model_server(serve, monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens there
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    server = serve((200, completion(ANSWER)))
    assert server.backend(retries=0).generate(frame(), PROMPT).text == ANSWER


def test_a_generation_reports_its_own_duration_and_a_new_backend_no_timings(serve):
    server = serve(("slow", 0.2, (200, completion(ANSWER))))
    backend = server.backend()
    assert backend.last_timings_ms == {}
    generation = backend.generate(frame(), PROMPT)
    assert 0.2 <= generation.seconds < 5.0
    assert 0.0 < generation.timings_ms["encode"] < 1000.0


def test_a_chat_request_without_assistant_text_opens_no_assistant_turn(serve):
    backend = serve((200, completion(ANSWER))).backend()
    body = backend.chat_request(PROMPT, "data:image/png;base64,AA==")
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "continue_final_message" not in body
    assert [m["role"] for m in backend.messages(PROMPT, None)] == ["system", "user"]
    assert backend.messages(PROMPT, None)[1]["content"] == [{"type": "text", "text": PROMPT}]
