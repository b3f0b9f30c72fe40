"""
GSE and LPR through a real vLLM server (``backend: openai``), started once per test run.

The server runs from its own venv (``make vllm-venv``) with a tiny random Qwen2.5-VL; the
same checkpoint is loaded by the local transformers backend for comparison. A machine where
the server cannot be built fails these tests with the reason; they are never skipped.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from finers_ros.config import PipelineConfig, ServerConfig, StageConfig, config_from_dict
from finers_ros.pipeline import FineRSPipeline
from finers_ros.prompts import gse_prompt, lpr_prompt
from finers_ros.segmenters.bringup import BringupSegmenter
from finers_ros.stages.openai_server import OpenAIServerModel, ServerError
from finers_ros.testing.vllm_server import (
    ServerBuildError,
    VLLMServer,
    build_checkpoint,
    free_port,
    install,
    stage_server_config,
)

pytestmark = pytest.mark.timeout(900)  # the first test pays for the server's start (30-100 s)


@pytest.fixture(scope="session")
def vllm_checkpoint(tmp_path_factory):
    return build_checkpoint(tmp_path_factory.mktemp("vllm") / "tiny-qwen")


@pytest.fixture(scope="session")
def shm_before_server():
    """Return the files in /dev/shm before this run's server first started."""
    return {str(path) for path in Path("/dev/shm").iterdir()}


@pytest.fixture(scope="session")
def session_server(vllm_checkpoint, shm_before_server):
    try:
        install(log=lambda message: None)
    except ServerBuildError as exc:
        pytest.fail(f"the vLLM server cannot be built on this machine: {exc}")
    server = VLLMServer(vllm_checkpoint, log_path=vllm_checkpoint.parent / "vllm.log")
    yield server
    server.stop()


@pytest.fixture
def vllm_server(session_server):
    """Return the session's server, running (restarted if a test stopped or reconfigured it)."""
    try:
        session_server.start(timeout_s=600)
    except ServerBuildError as exc:
        pytest.fail(f"the vLLM server does not start: {exc}")
    return session_server


def stage(server: VLLMServer, max_new_tokens: int = 16, **server_settings) -> StageConfig:
    settings = {"retries": 2, "backoff_s": 0.1, **server_settings}
    return StageConfig(
        backend="openai",
        max_new_tokens=max_new_tokens,
        server=ServerConfig(**stage_server_config(server, **settings)),
    )


def frame(height: int, width: int, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def local_model(vllm_checkpoint):
    from finers_ros.stages.qwen_vl import QwenVLModel

    return QwenVLModel(
        StageConfig(
            backend="qwen2_5_vl",
            checkpoint=str(vllm_checkpoint),
            dtype="float32",
            max_new_tokens=24,
        )
    )


def local_ids(model, image: np.ndarray, prompt: str, max_new_tokens: int):
    """(prompt ids, greedy generated ids) of the local transformers model."""
    import torch
    from PIL import Image

    chat = [
        {"role": "system", "content": [{"type": "text", "text": model.config.system_prompt}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
    ]
    text = model.processor.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    inputs = model.processor(text=[text], images=[Image.fromarray(image)], return_tensors="pt")
    with torch.inference_mode():
        output = model.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    return inputs["input_ids"][0].tolist(), output[0, prompt_len:].tolist()


def server_ids(backend: OpenAIServerModel, image: np.ndarray, prompt: str):
    """(prompt ids, generated ids) of the same request the backend sends, from vLLM."""
    from finers_ros.stages.openai_server import png_data_url

    body = dict(backend.chat_request(prompt, png_data_url(image)), return_token_ids=True)
    answer = backend._post("/chat/completions", body)
    return answer["prompt_token_ids"], answer["choices"][0]["token_ids"]


def test_gse_prompt_tokens_equal_the_local_processor(vllm_server, local_model):
    backend = OpenAIServerModel(stage(vllm_server, max_new_tokens=1))
    image = frame(1080, 1920)
    prompt = gse_prompt("find the red screw")
    generation = backend.generate(image, prompt)  # the backend's own count check passes
    expected = local_model.generate(image, prompt).prompt_tokens
    assert generation.prompt_tokens == expected
    assert generation.prompt_tokens == backend.text_tokens(prompt) + 2 + 2691


@pytest.mark.parametrize(
    "size, prompt",
    [
        ((1080, 1920), gse_prompt("find the red screw")),
        ((512, 512), lpr_prompt("find the red screw")),
    ],
    ids=["gse_1920x1080", "lpr_512x512"],
)
def test_greedy_tokens_agree_with_the_local_backend(vllm_server, local_model, size, prompt):
    """
    Same prompt ids (image tokens included) and the same greedy tokens, float32 on both sides.

    The texts can differ only where the random model emits byte tokens that do not form UTF-8 (a
    trained model does not): transformers and vLLM's incremental detokenizer render such bytes with
    different numbers of U+FFFD.
    """
    backend = OpenAIServerModel(stage(vllm_server, max_new_tokens=24))
    image = frame(*size)
    local_prompt, local_new = local_ids(local_model, image, prompt, 24)
    remote_prompt, remote_new = server_ids(backend, image, prompt)
    assert remote_prompt == local_prompt
    assert remote_new == local_new, (
        f"first difference at token {_first_difference(remote_new, local_new)}"
    )
    remote_text = backend.generate(image, prompt).text
    local_text = local_model.generate(image, prompt).text
    assert remote_text.replace("\ufffd", "") == local_text.replace("\ufffd", "")


def _first_difference(a, b) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def test_pipeline_runs_both_stages_through_the_server(vllm_server, scene_4k):
    """
    GSE on the server: a random model's answer is reported as unparsable, with its text.

    LPR on the server (bring-up GSE finds the region first): the 512x512 crop goes out.
    """
    image, record = scene_4k
    remote = stage(vllm_server, max_new_tokens=12)
    pipeline = FineRSPipeline.from_config(PipelineConfig(gse=remote, lpr=StageConfig()))
    result = pipeline.run(image, record["Q"])
    assert result.error_stage == "gse" and "GSE" in result.error and result.gse_text
    assert (
        result.timings_ms["gse_request_ms"] > 0 and result.timings_ms["gse_server_prefill_ms"] > 0
    )

    pipeline = FineRSPipeline.from_config(PipelineConfig(gse=StageConfig(), lpr=remote))
    result = pipeline.run(image, record["Q"])
    assert result.region is not None and result.error_stage == "lpr" and result.lpr_text
    assert result.timings_ms["lpr_network_ms"] >= 0 and "lpr_server_decode_ms" in result.timings_ms
    pipeline.close()


def test_answer_only_opens_the_assistant_turn_as_the_local_backend(vllm_server, vllm_checkpoint):
    from finers_ros.stages.qwen_vl import QwenVLModel

    remote, local = (
        stage(vllm_server, max_new_tokens=4),
        StageConfig(
            backend="qwen2_5_vl",
            checkpoint=str(vllm_checkpoint),
            dtype="float32",
            max_new_tokens=4,
        ),
    )
    remote.answer_only = local.answer_only = True
    image, prompt = frame(512, 512), lpr_prompt("find the red screw")
    generation = OpenAIServerModel(remote).generate(image, prompt)  # the count check passes
    assert generation.text.startswith("<think> </think><answer>")
    assert generation.prompt_tokens == QwenVLModel(local).generate(image, prompt).prompt_tokens


def test_segment_and_eval_commands_run_through_the_server(vllm_server, tmp_path):
    """
    Run the segment and eval commands through the server.

    finers-segment and finers-eval with a config that puts GSE on the server: the random
    model's answer comes back through both commands as the stage failure it is.
    """
    import subprocess
    import sys

    import yaml

    bin_dir = Path(sys.executable).parent
    config = tmp_path / "pipeline_vllm.yaml"
    gse = {"backend": "openai", "max_new_tokens": 8, "server": stage_server_config(vllm_server)}
    config.write_text(yaml.safe_dump({"gse": gse}))
    scenes = tmp_path / "scenes"
    made = subprocess.run(
        [
            bin_dir / "finers-make-scenes",
            "--out",
            scenes,
            "--count",
            "2",
            "--seed",
            "3",
            "--width",
            "1920",
            "--height",
            "1080",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    record = json.loads((scenes / "annotations.json").read_text())["annotations"][0]
    image = scenes / record["image_path"]
    done = subprocess.run(
        [
            bin_dir / "finers-segment",
            image,
            record["Q"],
            "--out",
            tmp_path / "seg",
            "--config",
            config,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr
    assert "error (gse): " in done.stdout  # the random answer: cut short or unparsable
    result = json.loads((tmp_path / "seg" / "result.json").read_text())
    assert result["gse_text"] and result["timings_ms"]["gse_request_ms"] > 0

    done = subprocess.run(
        [
            bin_dir / "finers-eval",
            "--annotations",
            scenes / "annotations.json",
            "--config",
            config,
            "--out",
            tmp_path / "eval",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["samples"] == 2 and "gse" in metrics["latency_ms"]


def _node_outcome(domain, config: Path, namespace: str, status_says: str, image=None):
    """
    Run a node in its own process whose pipeline is ``config``.

    Returns (detection of one instruction, the status's last_error once it holds
    ``status_says``).
    """
    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.launcher import NodeProcess

    with NodeProcess(
        domain,
        parameters={"pipeline_config": str(config)},
        ros_args=("-r", f"__ns:=/{namespace}"),
    ) as node:
        client = PerceptionClient(
            domain_id=domain, namespace=namespace, name=f"{namespace}_client"
        )
        try:
            assert client.wait_for_node(120), node.log()[-2000:]
            if image is not None:
                client.stream(client.frame_message(image), hz=2.0)
            before = len(client.detections)
            client.send("find the red screw")
            detection = client.next_detection(before, 120)
            client.stop_stream()
            assert detection is not None, node.log()[-2000:]
            said = client.wait_until(
                lambda: client.status is not None and status_says in client.status.last_error, 10
            )
            assert said, f"status: {client.status and client.status.last_error!r}"
            return detection, client.status.last_error
        finally:
            client.close()


def test_node_serves_through_the_server_and_says_when_it_is_unreachable(
    vllm_server, domain, tmp_path, scene_4k
):
    import yaml

    config = tmp_path / "pipeline_vllm.yaml"
    gse = {"backend": "openai", "max_new_tokens": 8, "server": stage_server_config(vllm_server)}
    config.write_text(yaml.safe_dump({"gse": gse}))
    detection, last_error = _node_outcome(domain, config, "vllm_up", "[gse] ", scene_4k[0])
    assert detection.error_stage == "gse" and detection.error  # the random model's answer
    assert last_error == f"[gse] {detection.error}"

    down = tmp_path / "pipeline_down.yaml"
    url = f"http://127.0.0.1:{free_port()}/v1"
    gse = {"backend": "openai", "server": {"base_url": url, "model": "m", "retries": 0}}
    down.write_text(yaml.safe_dump({"gse": gse}))
    detection, last_error = _node_outcome(
        domain,
        down,
        "vllm_down",
        f"model server unreachable at {url}",  # on finers/status
        scene_4k[0],  # the node stays up (its warm-up failed) and tries the server per request
    )
    assert detection.error_stage == "gse"
    assert f"model server unreachable at {url}" in detection.error


def test_config_file_selects_the_server_backend(vllm_server, tmp_path):
    config = config_from_dict(
        {
            "gse": {
                "backend": "openai",
                "max_new_tokens": 4,
                "server": stage_server_config(vllm_server),
            }
        }
    )
    pipeline = FineRSPipeline.from_config(config)
    assert pipeline.gse.name == f"openai:{vllm_server.served_name}"
    assert pipeline.gse.generate(frame(1080, 1920), gse_prompt("find it")).prompt_tokens > 2691


def test_server_down_is_one_clear_error():
    port = free_port()
    config = StageConfig(
        backend="openai",
        server=ServerConfig(
            base_url=f"http://127.0.0.1:{port}/v1", model="m", retries=1, backoff_s=0.05
        ),
    )
    pipeline = FineRSPipeline(
        OpenAIServerModel(config), OpenAIServerModel(config), BringupSegmenter(), PipelineConfig()
    )
    result = pipeline.run(frame(1080, 1920), "find the red screw")
    assert result.error_stage == "gse"
    assert (
        f"model server unreachable at http://127.0.0.1:{port}/v1 after 2 attempts: cannot connect"
        in result.error
    )
    assert "\n" not in result.error


def test_unknown_model_is_refused_without_retry(vllm_server):
    backend = OpenAIServerModel(stage(vllm_server, model="no-such-model"))
    with pytest.raises(ServerError, match=r"refused the request: HTTP 404: .*no-such-model"):
        backend.generate(frame(512, 512), lpr_prompt("find it"))


def test_hung_server_times_out_and_the_next_request_works(vllm_server):
    backend = OpenAIServerModel(stage(vllm_server, max_new_tokens=4, timeout_s=2.0))
    backend.text_tokens(lpr_prompt("find it"))  # cached: the hang hits the generation request
    vllm_server.pause()
    try:
        start = time.monotonic()
        with pytest.raises(ServerError, match=r"timed out waiting for the answer \(limit 2 s"):
            backend.generate(frame(512, 512), lpr_prompt("find it"))
        assert time.monotonic() - start < 10  # a read timeout is not retried
    finally:
        vllm_server.resume()
    assert backend.generate(frame(512, 512), lpr_prompt("find it")).generated_tokens >= 1


def test_killed_server_then_down_then_restarted(vllm_server, shm_before_server):
    """
    Kill the server mid-request: the client's error, then recovery after a restart.

    The killed server's shared-memory segments (its engine queues in /dev/shm, RAM that nobody
    frees until a reboot) are removed once the wrapper has seen its processes die.
    """
    backend = OpenAIServerModel(stage(vllm_server, max_new_tokens=3000))
    image, prompt = frame(512, 512), lpr_prompt("find the red screw")
    backend.text_tokens(prompt)
    outcome = {}
    # scanned before the request: nothing slow between "it generates" and the kill
    segments = _shm_mapped_by(vllm_server.process.pid) - shm_before_server
    assert segments, "the server maps nothing in /dev/shm: nothing for the check below to see"

    def request():
        try:
            outcome["generation"] = backend.generate(image, prompt)
        except ServerError as exc:
            outcome["error"] = str(exc)

    worker = threading.Thread(target=request)
    worker.start()
    sent = time.monotonic()
    # the server's gauge says it generates; a loaded machine may update it late, so a
    # request out for a second (3000 tokens take several) is taken as generating too
    while (
        _running_requests(vllm_server) < 1
        and "generation" not in outcome
        and time.monotonic() - sent < 1.0
    ):
        time.sleep(0.05)
    said, log = [], vllm_server.log
    vllm_server.log = said.append
    try:
        vllm_server.kill()  # while the server generates (3000 tokens take seconds)
    finally:
        vllm_server.log = log
    left = sorted(path for path in segments if Path(path).exists())
    assert not left, f"the killed server left {left} in /dev/shm; the wrapper said {said}"
    cleanup = vllm_server.last_cleanup
    assert {Path(path).name for path in segments} <= set(cleanup.removed)
    assert said == [f"vLLM server on port {vllm_server.port} ended: {cleanup.line()}"], said
    worker.join(60)
    assert "generation" not in outcome, "the request finished before the server was killed"
    assert outcome["error"].startswith(
        f"model server unreachable at {vllm_server.base_url} after 3 attempts: "
        "connection lost mid-request"
    )
    with pytest.raises(ServerError, match="unreachable .* cannot connect"):
        backend.generate(image, prompt)
    vllm_server.start(timeout_s=600)
    backend.config.max_new_tokens = 2
    generation = backend.generate(image, prompt)  # the same client recovers
    assert generation.prompt_tokens == backend.text_tokens(prompt) + 2 + 324


def _shm_mapped_by(pgid: int) -> set:
    """Return the /dev/shm files the processes of group ``pgid`` map (unlinked ones left out)."""
    mapped = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:  # state ppid pgrp
                continue
            lines = (stat.parent / "maps").read_text().splitlines()
        except (OSError, ValueError):
            continue  # exited meanwhile
        fields = (line.split(maxsplit=5) for line in lines)
        mapped.update(
            f[5]
            for f in fields
            if len(f) == 6 and f[5].startswith("/dev/shm/") and not f[5].endswith(" (deleted)")
        )
    return mapped


def _running_requests(server: VLLMServer) -> float:
    """Read vLLM's own gauge of requests being generated (Prometheus text at /metrics)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server.root_url}/metrics", timeout=1) as answer:
            lines = answer.read().decode().splitlines()
    except OSError:  # a busy server answers late: not known to generate yet
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("vllm:num_requests_running")
    )


class _Misbehaving:
    """
    Serve scripted failures and answers over real HTTP.

    A real HTTP server on loopback answering every POST with ``status`` and ``body`` (or
    the next of ``bodies``): the server failures vLLM itself cannot be made to produce (5xx,
    a body that is not JSON) and scripted answers a random model does not give.
    """

    def __init__(self, status: int, body: bytes = b"", bodies: tuple = (), statuses: tuple = ()):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.requests = 0
        self.received = []
        self.paths = []
        scripted = list(bodies)
        scripted_statuses = list(statuses)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.requests += 1
                outer.paths.append(self.path)
                outer.received.append(
                    json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                )
                body = scripted.pop(0) if scripted else outer_body
                self.send_response(scripted_statuses.pop(0) if scripted_statuses else status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        outer_body = body
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def backend(self, **settings) -> OpenAIServerModel:
        settings = {"base_url": self.url, "check_prompt_tokens": False, **settings}
        server = ServerConfig(model="m", retries=2, backoff_s=0.01, **settings)
        return OpenAIServerModel(StageConfig(backend="openai", server=server))

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text: str, stop_reason, tokens: int) -> bytes:
    """Build a vLLM chat-completions answer (the fields the backend reads)."""
    choice = {"message": {"role": "assistant", "content": text}, "stop_reason": stop_reason}
    usage = {"prompt_tokens": 300, "completion_tokens": tokens}
    return json.dumps({"choices": [choice], "usage": usage}).encode()


def test_answer_quoted_inside_think_is_continued():
    """
    Continue the turn when the answer is quoted inside the thinking.

    A model that quotes ``</answer>`` while thinking hits the stop string early: the same
    assistant turn is continued until the final answer (after ``</think>``) is out.
    """
    first = "<think> the format is <answer>{...}</answer>"
    rest = " so the red one </think><answer>{'bbox': [1, 2, 3, 4]}</answer>"
    server = _Misbehaving(
        200, bodies=(_completion(first, "</answer>", 10), _completion(rest, "</answer>", 12))
    )
    try:
        generation = server.backend().generate(frame(64, 64), "find it")
    finally:
        server.close()
    assert generation.text == first + rest and generation.generated_tokens == 22
    assert generation.prompt_tokens == 300 and not generation.truncated
    again = server.received[1]
    assert again["continue_final_message"] and not again["add_generation_prompt"]
    assert again["messages"][-1] == {"role": "assistant", "content": first}
    assert again["max_tokens"] == server.received[0]["max_tokens"] - 10


def test_http_5xx_is_retried_then_reported():
    server = _Misbehaving(503, json.dumps({"error": {"message": "engine is overloaded"}}).encode())
    try:
        with pytest.raises(
            ServerError, match=r"failed after 3 attempts: HTTP 503: engine is overloaded$"
        ):
            server.backend().generate(frame(64, 64), "find it")
        assert server.requests == 3
    finally:
        server.close()


@pytest.mark.parametrize(
    "body, why",
    [
        (b"<html>oops</html>", "not JSON"),
        (json.dumps({"choices": []}).encode(), "no choices/usage"),
        (json.dumps({"usage": {}}).encode(), "no 'choices'"),
    ],
)
def test_malformed_answer_is_one_clear_error(body, why):
    server = _Misbehaving(200, body)
    try:
        with pytest.raises(
            ServerError, match=f"malformed answer from model server at {server.url}: {why}"
        ):
            server.backend().generate(frame(64, 64), "find it")
        assert server.requests == 1
    finally:
        server.close()


def test_base_url_without_the_api_root_names_the_likely_cause():
    """
    Name the likely cause of a base_url without the API root.

    vLLM answers a path it does not serve with 404 ``{"detail": "Not Found"}``: a base_url
    without ``/v1`` is the usual reason, and the line says so (not a dict's repr).
    """
    server = _Misbehaving(404, json.dumps({"detail": "Not Found"}).encode())
    root = server.url[: -len("/v1")]
    try:
        with pytest.raises(ServerError) as caught:
            server.backend(base_url=root).generate(frame(64, 64), "find it")
    finally:
        server.close()
    assert str(caught.value) == (
        f"model server at {root} refused the request: HTTP 404: Not Found (no "
        f"{root}/chat/completions: server.base_url should be the API root, e.g. "
        "http://host:8000/v1)"
    )


def test_server_without_tokenize_says_how_to_run_without_the_token_check():
    """
    Say how to run without the token check when the server has no /tokenize.

    A server (or a proxy in front of vLLM) that serves only /v1 has no /tokenize: the line
    says that the prompt-token check needs it and how to turn the check off.
    """
    server = _Misbehaving(
        200,
        bodies=(_completion("<answer>{}</answer>", "</answer>", 3), b'{"detail": "Not Found"}'),
        statuses=(200, 404),
    )
    try:
        with pytest.raises(ServerError, match=r"HTTP 404: Not Found \(no .*/tokenize: "
                           r"set server.check_prompt_tokens: false"):
            server.backend(check_prompt_tokens=True).generate(frame(64, 64), "find it")
    finally:
        server.close()
    assert server.paths == ["/v1/chat/completions", "/tokenize"]


def test_token_check_loads_its_processor_code_with_the_stage_not_on_a_request(monkeypatch):
    """
    Load the token check's processor code with the stage, not on a request.

    Importing transformers for the image-token count took 8 s on the first request (counted
    as GSE time, and by the node inside a request); it belongs to loading the stage.
    """
    import sys

    server = _Misbehaving(
        200,
        bodies=(_completion("<answer>{}</answer>", "</answer>", 3), b'{"count": 10}'),
    )
    try:
        backend = server.backend(check_prompt_tokens=True)
        monkeypatch.setitem(
            sys.modules, "transformers.models.qwen2_vl.image_processing_qwen2_vl", None
        )
        with pytest.raises(ServerError, match=r"saw 300 prompt tokens, expected 16 \(4 visual"):
            backend.generate(frame(64, 64), "find it")
    finally:
        server.close()


def test_token_mismatch_names_the_server_flag_for_the_stage_limits():
    """
    Name the server flag for the stage's limits on a token mismatch.

    The hint is the flag to paste on the server's command line, with this stage's limits
    (not the published ones when the stage sets others).
    """
    server = _Misbehaving(
        200,
        bodies=(_completion("<answer>{}</answer>", "</answer>", 3), b'{"count": 10}'),
    )
    backend = server.backend(check_prompt_tokens=True)
    backend.config.max_pixels = 200704
    try:
        with pytest.raises(ServerError) as caught:
            backend.generate(frame(1080, 1920), "find it")
    finally:
        server.close()
    assert str(caught.value).endswith(
        "expected 264 (252 visual for 1920x1080): the server resizes images; check its "
        """processor settings (--mm-processor-kwargs '{"min_pixels": 3136, "max_pixels": """
        """200704}' or the checkpoint's preprocessor_config.json)"""
    )


def test_api_key_comes_from_the_named_environment_variable(monkeypatch):
    server = _Misbehaving(401, json.dumps({"error": {"message": "bad key"}}).encode())
    try:
        with pytest.raises(ServerError, match="FINERS_TEST_KEY .* is not set"):
            server.backend(api_key_env="FINERS_TEST_KEY")
        monkeypatch.setenv("FINERS_TEST_KEY", "secret-1")
        backend = server.backend(api_key_env="FINERS_TEST_KEY")
        assert backend._client.headers["Authorization"] == "Bearer secret-1"
        with pytest.raises(ServerError, match="HTTP 401: bad key"):
            backend.generate(frame(64, 64), "find it")
    finally:
        server.close()


def test_server_that_resizes_images_is_reported(vllm_server):
    """
    Report a server that resizes images.

    Last: restarts the session server with a smaller max_pixels, as a misconfigured
    server would run (a later test restarts it as it was).
    """
    vllm_server.extra_args = ["--mm-processor-kwargs", json.dumps({"max_pixels": 1003520})]
    try:
        vllm_server.restart(timeout_s=600)
        backend = OpenAIServerModel(stage(vllm_server, max_new_tokens=1))
        with pytest.raises(
            ServerError,
            match=r"expected \d+ \(2691 visual for 1920x1080\): the server resizes "
            r"images; check its processor settings",
        ):
            backend.generate(frame(1080, 1920), gse_prompt("find the red screw"))
    finally:
        vllm_server.extra_args = []
        vllm_server.stop()
