import pytest

from finers_ros.config import ConfigError, PipelineConfig, config_from_dict, load_config


def test_defaults_are_bringup():
    config = load_config(None)
    assert config.gse.backend == config.lpr.backend == config.segmenter.backend == "bringup"
    assert config.geometry.gse_size == (1920, 1080) and config.geometry.crop_size == 512
    assert config.is_bringup


def test_shipped_yaml_matches_defaults():
    from pathlib import Path

    shipped = load_config(Path(__file__).resolve().parents[1] / "config" / "pipeline.yaml")
    assert shipped.to_dict() == PipelineConfig().to_dict()


def test_paths_relative_to_file(tmp_path):
    (tmp_path / "ckpt").mkdir()
    path = tmp_path / "p.yaml"
    path.write_text("gse: {backend: qwen2_5_vl, checkpoint: ckpt}\n")
    config = load_config(path)
    assert config.gse.checkpoint == str((tmp_path / "ckpt").resolve())


@pytest.mark.parametrize(
    "data, message",
    [
        ({"gse": {"backend": "gpt"}}, "gse.backend='gpt'"),
        ({"gse": {"backend": "qwen2_5_vl"}}, "needs gse.checkpoint"),
        ({"segmenter": {"backend": "sam"}}, "needs segmenter.checkpoint"),
        (
            {"segmenter": {"backend": "sam", "checkpoint": "x", "runtime": "onnxruntime"}},
            "needs segmenter.decoder_onnx",
        ),
        ({"geometry": {"crop_size": 0}}, "crop_size=0"),
        # Sizes no camera needs: a 100000^2 LPR frame is 30 GB per request (and at warm-up).
        ({"geometry": {"lpr_size": [100000, 100000]}}, "geometry.lpr_size=[100000, 100000]"),
        ({"geometry": {"gse_size": [1920, 20000]}}, "geometry.gse_size=[1920, 20000]"),
        ({"geometry": {"crop_size": 50000}}, "geometry.crop_size=50000"),
        ({"max_instruction_chars": 0}, "max_instruction_chars=0"),
        ({"lpr": {"max_new_tokens": -1}}, "max_new_tokens=-1"),
        ({"gse": {"temperature": 1}}, "unknown key(s) ['temperature'] in gse"),
        ({"gse": "qwen"}, "expected a mapping"),
    ],
)
def test_invalid_values_name_key_and_value(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("gse: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(bad)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"geometry": {"crop_size": "512"}}, "geometry.crop_size='512': expected an integer"),
        (
            {"geometry": {"gse_size": ["a", "b"]}},
            "geometry.gse_size=['a', 'b']: expected a list of 2 integers",
        ),
        ({"geometry": {"lpr_size": 512}}, "geometry.lpr_size=512: expected a list of 2 integers"),
        ({"geometry": {"gse_size": [1920, 1080, 3]}}, "geometry.gse_size=[1920, 1080, 3]"),
        ({"gse": {"max_new_tokens": 1.5}}, "gse.max_new_tokens=1.5: expected an integer"),
        ({"lpr": {"do_sample": "no"}}, "lpr.do_sample='no': expected true or false"),
        ({"lpr": {"answer_only": 1}}, "lpr.answer_only=1: expected true or false"),
        ({"gse": {"checkpoint": 7}}, "gse.checkpoint=7: expected a string"),
        ({"max_instruction_chars": None}, "max_instruction_chars=None: expected an integer"),
        (
            {"gse": {"min_pixels": 5000, "max_pixels": 4000}},
            "expected 0 < min_pixels <= max_pixels",
        ),
    ],
)
def test_wrong_types_are_config_errors_naming_the_key(data, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert message in str(info.value)


def test_types_are_checked_for_configs_built_in_python():
    config = PipelineConfig()
    config.geometry.crop_size = "512"
    with pytest.raises(ConfigError, match="geometry.crop_size"):
        config.validate()


def test_stage_defaults_follow_the_reference_evaluation():
    stage = load_config(None).gse
    assert stage.max_new_tokens == 1024 and not stage.answer_only
    assert (stage.min_pixels, stage.max_pixels) == (3136, 12845056)
