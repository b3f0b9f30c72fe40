"""finers-train configuration as a user writes it: wrong types, missing inputs, bad YAML.

Each mistake must stop the run before any data is built or model loaded, with one line that
names the key (exit 2), never a traceback or a silent run on a wrong value.
"""

import json

import pytest

from finers_training.cli import main
from finers_training.config import TrainConfigError, load_config


@pytest.mark.parametrize(
    "text, key",
    [
        ('max_steps: "two"\n', "max_steps"),
        ("learning_rate: abc\n", "learning_rate"),
        ('resume: "no"\n', "resume"),
        ("lpr_size: 512\n", "lpr_size"),
        ("num_generations: 2.5\n", "num_generations"),
        ("reward_weights: [1, 2]\n", "reward_weights"),
        ("reward_weights: {lpr_iou: abc}\n", "reward_weights"),
        ("reward_weights: {lpr_iou: .nan}\n", "reward_weights"),
        ("temperature: -1\n", "temperature"),
        ("beta: -0.1\n", "beta"),
        ("lora_target_modules: q_proj\n", "lora_target_modules"),
        ("max_samples: 0\n", "max_samples"),
    ],
)
def test_wrong_value_types_are_named(tmp_path, text, key):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(TrainConfigError, match=key):
        load_config(path)


def _scenes(tmp_path):
    """A one-record FineRS-4k JSON whose image exists (no pixels needed before the checks)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"")
    record = {
        "image_path": "images/a.png",
        "Q": "find the red screw",
        "A": "",
        "Q-type": "referring",
        "points": [[1, 1], [5, 1], [5, 5]],
        "area_percent": 0.01,
    }
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"annotations": [record]}))
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("finers-train: "), err
    return err[0]


def test_missing_inputs_stop_before_any_work(tmp_path, capsys):
    ann = _scenes(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: 1\n")
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    run = tmp_path / "run"
    common = ["--config", str(config), "--annotations", str(ann), "--output-dir", str(run)]

    assert main(["lpr", *common, "--base-model", str(tmp_path / "nobase")]) == 2
    assert "base_model" in _one_error_line(capsys)
    assert main(["lpr", *common, "--base-model", str(base), "--images-dir", "/nonexistent"]) == 2
    assert "images_dir" in _one_error_line(capsys)
    online = ["--gse-reward", "online", "--online-lpr-checkpoint", str(tmp_path / "nolpr")]
    assert main(["gse", *common, "--base-model", str(base), *online]) == 2
    assert "online_lpr_checkpoint" in _one_error_line(capsys)
    assert not (run / "data").exists(), "a data set was built before the inputs were checked"


def test_invalid_yaml_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_steps: [\n")
    assert main(["lpr", "--config", str(bad)]) == 2
    assert "invalid YAML" in _one_error_line(capsys)


def test_rollouts_never_sample_vision_tokens(tiny_qwen_dir, tmp_path):
    """A sampled <|vision_start|> (or video/image pad) in a completion makes Qwen2.5-VL's
    rope index count an image that has no features: the loss forward then fails with a
    shape mismatch (seen with 512-token rollouts of the tiny model), killing the run."""
    import json as _json

    from finers_training.config import config_from_dict
    from finers_training.train import build_trainer

    model = _json.loads((tiny_qwen_dir / "config.json").read_text())
    rows = tmp_path / "data" / "rows.jsonl"
    rows.parent.mkdir()
    (rows.parent / "x.png").write_bytes(b"")
    row = {"image": "x.png", "stage": "lpr", "question": "find the red screw",
           "q_type": "referring", "options": None, "answer": "", "gt_box": [1, 1, 5, 5]}
    rows.write_text(_json.dumps(row) + "\n")
    config = config_from_dict({"base_model": str(tiny_qwen_dir), "output_dir": str(tmp_path),
                               "num_generations": 2, "per_device_train_batch_size": 2,
                               "gradient_accumulation_steps": 1})
    trainer = build_trainer(config, rows)
    suppressed = set(trainer.generation_config.suppress_tokens)
    for key in ("image_token_id", "video_token_id", "vision_start_token_id",
                "vision_end_token_id"):
        assert model[key] in suppressed, key
