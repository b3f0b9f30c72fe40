import numpy as np
import pytest

from finers_ros.config import PipelineConfig, StageConfig
from finers_ros.pipeline import FineRSPipeline
from finers_ros.prompts import gse_prompt
from finers_ros.segmenters.bringup import BringupSegmenter
from finers_ros.stages.qwen_vl import CheckpointError, QwenVLModel
from finers_ros.stages.registry import build_stage_models


def test_loads_saved_checkpoint_and_generates(tiny_qwen_dir):
    model = QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=8))
    image = np.random.default_rng(0).integers(0, 255, (252, 448, 3), dtype=np.uint8)
    generation = model.generate(image, gse_prompt("find the red screw"))
    assert isinstance(generation.text, str)
    assert 1 <= generation.generated_tokens <= 8 and generation.seconds > 0
    # 448x252 -> 16x9 merged patches = 144 image tokens, plus the text
    assert generation.prompt_tokens > 144 + 100


def test_nominal_gse_frame_gives_the_published_token_count(tiny_qwen_dir):
    model = QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=1))
    processor = model.processor
    from PIL import Image

    inputs = processor(text=["<|vision_start|><|image_pad|><|vision_end|>"],
                       images=[Image.fromarray(np.zeros((1080, 1920, 3), np.uint8))], return_tensors="pt")
    assert int(inputs["image_grid_thw"].prod()) // 4 == 2691  # 1932x1092 after rounding


def test_greedy_generation_is_deterministic(tiny_qwen_dir):
    model = QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=6))
    image = np.full((224, 224, 3), 128, np.uint8)
    assert model.generate(image, "find it").text == model.generate(image, "find it").text


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(tmp_path / "none")))
    with pytest.raises(CheckpointError, match="no config.json"):
        QwenVLModel(StageConfig(backend="qwen2_5_vl", checkpoint=str(tmp_path)))


def test_same_checkpoint_is_loaded_once(tiny_qwen_dir):
    stage = StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir))
    gse, lpr = build_stage_models(PipelineConfig(gse=stage, lpr=StageConfig(**vars(stage))))
    assert gse is lpr


def test_pipeline_with_random_model_reports_unparsable_output(tiny_qwen_dir):
    stage = StageConfig(backend="qwen2_5_vl", checkpoint=str(tiny_qwen_dir), max_new_tokens=12)
    config = PipelineConfig(gse=stage, lpr=stage)
    config.geometry.gse_size = (448, 252)
    model = QwenVLModel(stage)
    pipeline = FineRSPipeline(model, model, BringupSegmenter(), config)
    image = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    result = pipeline.run(image, "find the red screw")
    assert not result.found and result.error_stage == "gse"
    assert "unparsable GSE output" in result.error and result.gse_text
    assert result.timings_ms["gse"] > 0
