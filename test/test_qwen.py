from pathlib import Path

import numpy as np
import pytest

from finers_ros.config import PipelineConfig, StageConfig
from finers_ros.pipeline import FineRSPipeline
from finers_ros.prompts import gse_prompt
from finers_ros.segmenters.bringup import BringupSegmenter
from finers_ros.stages.qwen_vl import CheckpointError, QwenVLModel
from finers_ros.stages.registry import build_stage_models


def test_loads_saved_checkpoint_and_generates(tiny_qwen_dir):
    model = QwenVLModel(
        StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=8)
    )
    image = np.random.default_rng(0).integers(0, 255, (252, 448, 3), dtype=np.uint8)
    generation = model.generate(image, gse_prompt("find the red screw"))
    assert isinstance(generation.text, str)
    assert 1 <= generation.generated_tokens <= 8 and generation.seconds > 0
    # 448x252 -> 16x9 merged patches = 144 image tokens, plus the text
    assert generation.prompt_tokens > 144 + 100


def test_nominal_gse_frame_gives_the_published_token_count(tiny_qwen_dir):
    model = QwenVLModel(
        StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=1)
    )
    processor = model.processor
    from PIL import Image

    inputs = processor(
        text=["<|vision_start|><|image_pad|><|vision_end|>"],
        images=[Image.fromarray(np.zeros((1080, 1920, 3), np.uint8))],
        return_tensors="pt",
    )
    assert int(inputs["image_grid_thw"].prod()) // 4 == 2691  # 1932x1092 after rounding


def test_greedy_generation_is_deterministic(tiny_qwen_dir):
    model = QwenVLModel(
        StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=6)
    )
    image = np.full((224, 224, 3), 128, np.uint8)
    assert model.generate(image, "find it").text == model.generate(image, "find it").text


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(tmp_path / "none")))
    with pytest.raises(CheckpointError, match="no config.json"):
        QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(tmp_path)))


def test_corrupt_weights_are_a_checkpoint_error(tmp_path, tiny_qwen_dir):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_qwen_dir, broken)
    (broken / "model.safetensors").write_bytes(b"garbage, not a safetensors header")
    with pytest.raises(CheckpointError, match="cannot load Qwen2.5-VL"):
        QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(broken)))


def test_same_checkpoint_is_loaded_once(tiny_qwen_dir):
    stage = StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir))
    gse, lpr = build_stage_models(PipelineConfig(gse=stage, lpr=StageConfig(**vars(stage))))
    assert gse is lpr


def test_pipeline_with_random_model_reports_cut_output(tiny_qwen_dir):
    stage = StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=12)
    config = PipelineConfig(gse=stage, lpr=stage)
    config.geometry.gse_size = (448, 252)
    model = QwenVLModel(stage)
    pipeline = FineRSPipeline(model, model, BringupSegmenter(), config)
    image = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    result = pipeline.run(image, "find the red screw")
    assert not result.found and result.error_stage == "gse"
    # random weights never close an answer: 12 tokens of noise are a cut answer
    assert "GSE answer cut at max_new_tokens (12 tokens)" in result.error and result.gse_text
    assert result.timings_ms["gse"] > 0


def test_pipeline_reports_a_finished_but_malformed_answer_as_unparsable(qwen):
    config = PipelineConfig()
    config.geometry.gse_size = (112, 56)
    hook, _ = scripted(qwen, "<think> x </think><answer>{'bbox': [1, 2]}</answer>")
    try:
        result = FineRSPipeline(qwen, qwen, BringupSegmenter(), config).run(
            np.zeros((224, 448, 3), np.uint8), "find the red screw"
        )
    finally:
        hook.remove()
    assert result.error_stage == "gse" and "unparsable GSE output" in result.error


def scripted(model: QwenVLModel, text: str):
    """
    Make the (random) model write ``text`` token by token, then repeat its last token.

    A forward hook on the real model's output layer replaces its logits (the only change):
    generation, stopping criteria, decoding and the pipeline run as with a trained model.
    """
    import torch

    ids = model.processor.tokenizer(text, add_special_tokens=False)["input_ids"]
    step = {"n": 0}

    def force(module, inputs, logits):
        forced = torch.full_like(logits, -1e4)
        forced[..., ids[min(step["n"], len(ids) - 1)]] = 1e4
        step["n"] += 1
        return forced

    return model.model.lm_head.register_forward_hook(force), ids


ANSWER = "{'bbox': [1, 2, 300, 400], 'response': 'The object is found.'}"
THINKING = "<think> the template says <answer>{'bbox': [5, 5, 6, 6]}</answer> so </think>"


@pytest.fixture(scope="module")
def qwen(tiny_qwen_dir):
    return QwenVLModel(
        StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=200)
    )


def test_generation_stops_at_the_final_answer_end(qwen):
    hook, _ = scripted(
        qwen, f"{THINKING}<answer>{ANSWER}</answer> and then 1 2 3 4 5 6 7 8 9 10 100 256"
    )
    try:
        generation = qwen.generate(np.zeros((56, 56, 3), np.uint8), "find it")
    finally:
        hook.remove()
    # not at the quoted </answer> inside <think>, and not at max_new_tokens either
    assert generation.text == f"{THINKING}<answer>{ANSWER}</answer>"
    assert generation.generated_tokens < 200 and not generation.truncated
    from finers_ros.parsing import parse_gse

    assert parse_gse(generation.text).bbox == (1, 2, 300, 400)


def test_answer_cut_at_max_new_tokens_is_reported_as_such(tiny_qwen_dir):
    stage = StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=30)
    model = QwenVLModel(stage)
    config = PipelineConfig(gse=stage, lpr=stage)
    config.geometry.gse_size = (112, 56)
    hook, _ = scripted(model, f"{THINKING}<answer>{ANSWER}</answer>")
    try:
        generation = model.generate(np.zeros((56, 112, 3), np.uint8), "find it")
    finally:
        hook.remove()
    hook, _ = scripted(model, f"{THINKING}<answer>{ANSWER}</answer>")
    try:
        result = FineRSPipeline(model, model, BringupSegmenter(), config).run(
            np.zeros((224, 448, 3), np.uint8), "find the red screw"
        )
    finally:
        hook.remove()
    assert generation.truncated and generation.generated_tokens == 30
    assert (
        result.error_stage == "gse" and "answer cut at max_new_tokens (30 tokens)" in result.error
    )


def test_answer_only_mode_starts_the_answer_for_the_model(tiny_qwen_dir, qwen):
    fast = QwenVLModel(
        StageConfig(
            backend="qwen2_5_vl",
            checkpoint=str(tiny_qwen_dir),
            max_new_tokens=200,
            answer_only=True,
        )
    )
    assert fast.chat_text("find it") == qwen.chat_text("find it") + "<think> </think><answer>"
    hook, ids = scripted(fast, f"{ANSWER}</answer> trailing 1 2 3")
    try:
        generation = fast.generate(np.zeros((56, 56, 3), np.uint8), "find it")
    finally:
        hook.remove()
    assert generation.text == f"<think> </think><answer>{ANSWER}</answer>"
    assert generation.generated_tokens == len(
        fast.processor.tokenizer(f"{ANSWER}</answer>")["input_ids"]
    )


@pytest.mark.parametrize("shape, visual_tokens", [((1080, 1920), 2691), ((512, 512), 324)])
def test_resolution_is_fixed_by_the_stage_not_the_checkpoint(
    tiny_qwen_dir, tmp_path, shape, visual_tokens
):
    # A checkpoint whose processor config caps images at 200704 pixels (256 visual tokens).
    import json
    import shutil

    from finers_ros.parsing import parse_gse  # noqa: F401  (the stage's text goes to the parser)

    copy = Path(shutil.copytree(tiny_qwen_dir, tmp_path / "capped"))
    settings = json.loads((copy / "processor_config.json").read_text())
    settings["image_processor"]["size"] = {"shortest_edge": 3136, "longest_edge": 200704}
    (copy / "processor_config.json").write_text(json.dumps(settings))
    model = QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(copy), max_new_tokens=4))
    prompt = gse_prompt("find the red screw")
    generation = model.generate(np.zeros((*shape, 3), np.uint8), prompt)
    text_tokens = len(model.processor.tokenizer(model.chat_text(prompt))["input_ids"])
    assert generation.prompt_tokens == text_tokens - 1 + visual_tokens  # one <|image_pad|> expands
    assert prompt[:40] not in generation.text and "<|im_start|>" not in generation.text
    assert 1 <= generation.generated_tokens <= 4


def test_prefill_and_decode_times_are_measured(qwen):
    hook, _ = scripted(qwen, f"<answer>{ANSWER}</answer>")
    try:
        generation = qwen.generate(np.zeros((56, 56, 3), np.uint8), "find it")
    finally:
        hook.remove()
    assert generation.prefill_seconds > 0 and generation.decode_seconds > 0
    assert generation.prefill_seconds + generation.decode_seconds == pytest.approx(
        generation.seconds
    )


def test_pipeline_reports_prompt_tokens_prefill_and_decode(qwen):
    config = PipelineConfig()
    config.geometry.gse_size = (112, 56)
    hook, _ = scripted(
        qwen, "<answer>{'bbox': [0, 0, 0, 0], 'response': 'No object founded'}</answer>"
    )
    try:
        result = FineRSPipeline(qwen, qwen, BringupSegmenter(), config).run(
            np.zeros((224, 448, 3), np.uint8), "find the red screw"
        )
    finally:
        hook.remove()
    assert result.ok and not result.found
    assert result.timings_ms["gse_prompt_tokens"] > 8  # 112x56 -> 8 visual tokens, plus the text
    assert result.timings_ms["gse_prefill_ms"] > 0 and result.timings_ms["gse_decode_ms"] >= 0


@pytest.mark.parametrize(
    "text, complete",
    [
        ("<think> a </think><answer>{}</answer>", True),
        ("<think> quoting <answer>{}</answer>", False),  # still thinking
        ("<think> quoting <answer>{}</answer> </think><answer>{'bbox'", False),
        ("<answer>{}</answer>", True),  # no reasoning block at all (answer-only mode)
        ("<think> a </think>", False),
        # The parser reads neither of these answers (a later thought is still open; tags are
        # case-insensitive): generation must not stop there either.
        ("<think> a </think><think> b <answer>{}</answer>", False),
        ("<Think> quoting <answer>{}</answer>", False),
        ("<think> a </think><ANSWER>{}</ANSWER>", True),
    ],
)
def test_answer_is_complete_only_after_the_reasoning(text, complete):
    from finers_ros.stages.qwen_vl import answer_is_complete

    assert answer_is_complete(text) is complete
