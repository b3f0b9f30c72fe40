"""
finers-train configuration as a user writes it: wrong types, missing inputs, bad YAML.

Each mistake must stop the run before any data is built or model loaded, with one line that
names the key (exit 2), never a traceback or a silent run on a wrong value.
"""

import importlib.util
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
    """Write a one-record FineRS-4k JSON whose image exists (no pixels needed before checks)."""
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


def test_prompts_of_different_lengths_train_in_one_batch(tiny_qwen_dir, tmp_path, monkeypatch):
    """
    Train prompts of different lengths in one generation batch.

    Two prompts of different lengths share a generation batch (the recipe's 8 x 2 per
    device does): TRL left-pads the prompt ids, so the processor must pad on the left too,
    or the image token types shift against the ids: the shorter prompt's image gets text
    positions (wrong log-probs, silently), or, when the shift cuts into the image, the loss
    forward fails with a rope-index shape mismatch (seen with the default recipe).
    """
    import json as _json

    import cv2
    import numpy as np
    from transformers.models.qwen2_5_vl import modeling_qwen2_5_vl as qwen

    from finers_training.config import config_from_dict
    from finers_training.train import build_trainer

    rope_index = qwen.Qwen2_5_VLModel.get_rope_index
    aligned = []

    def checked(self, input_ids, *args, attention_mask=None, mm_token_type_ids=None, **kw):
        if attention_mask is not None and mm_token_type_ids is not None:
            for ids, types, mask in zip(input_ids, mm_token_type_ids, attention_mask.bool()):
                is_image = ids[mask] == self.config.image_token_id
                aligned.append(bool(((types[mask] == 1) == is_image).all()))
        return rope_index(self, input_ids, *args, attention_mask=attention_mask,
                          mm_token_type_ids=mm_token_type_ids, **kw)

    monkeypatch.setattr(qwen.Qwen2_5_VLModel, "get_rope_index", checked)
    rows = tmp_path / "data" / "rows.jsonl"
    rows.parent.mkdir()
    cv2.imwrite(str(rows.parent / "x.png"), np.full((56, 56, 3), 90, np.uint8))
    short = {"image": "x.png", "stage": "lpr", "question": "find the screw",
             "q_type": "referring", "options": None, "answer": "", "gt_box": [1, 1, 5, 5]}
    long = {**short, "question": "what colour is the smallest diamond object in the picture?",
            "q_type": "option", "options": ["A. red", "B. blue", "C. brown", "D. yellow"],
            "answer": "A"}
    rows.write_text(_json.dumps(short) + "\n" + _json.dumps(long) + "\n")
    config = config_from_dict({"base_model": str(tiny_qwen_dir), "output_dir": str(tmp_path),
                               "num_generations": 2, "per_device_train_batch_size": 2,
                               "gradient_accumulation_steps": 2, "max_steps": 1,
                               "max_completion_length": 4, "save_steps": 10})
    trainer = build_trainer(config, rows, disable_tqdm=True, save_strategy="no")
    trainer.train()
    assert trainer.state.global_step == 1
    assert aligned and all(aligned), f"image token types off the image tokens: {aligned}"


def test_rerun_on_other_data_is_refused_not_mixed(tmp_path):
    """
    Refuse a rerun on other data rather than mix the sets.

    A rerun into an existing run directory resumes on the set built there; pointed at other
    annotations (or other crop settings) it must say so, not train on the old set while the
    hashes file names the new annotations.
    """
    from finers_ros.data.synthetic import SceneConfig, write_dataset

    from finers_training.config import config_from_dict
    from finers_training.train import prepare_data

    scenes = SceneConfig(width=640, height=480)
    first = write_dataset(tmp_path / "a", 2, seed=1, config=scenes)
    second = write_dataset(tmp_path / "b", 2, seed=2, config=scenes)
    run = {"output_dir": str(tmp_path / "run"), "crop_size": 128, "lpr_size": [128, 128]}
    rows = prepare_data(config_from_dict({**run, "annotations": str(first)}))
    assert prepare_data(config_from_dict({**run, "annotations": str(first)})) == rows
    with pytest.raises(TrainConfigError, match="other data"):
        prepare_data(config_from_dict({**run, "annotations": str(second)}))
    with pytest.raises(TrainConfigError, match="other data"):
        prepare_data(config_from_dict({**run, "annotations": str(first), "data_seed": 3}))


def test_resume_skips_a_checkpoint_cut_off_while_saving(tmp_path):
    """
    Skip a checkpoint cut off while saving when resuming.

    A run killed while writing checkpoint-N leaves it without trainer_state.json (written
    last); the rerun must resume from the newest complete checkpoint, not fail on that one.
    """
    from finers_training.train import last_checkpoint

    assert last_checkpoint(tmp_path / "none") is None
    for step in (1, 2, 3):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"x")
    assert last_checkpoint(tmp_path) is None
    for step in (1, 2):
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")


def test_resumed_log_drops_the_steps_it_will_redo(tmp_path):
    """
    Drop the log lines of the steps a resumed run redoes.

    Steps logged after the checkpoint a run resumes from are run (and logged) again: the
    old lines go, so log.jsonl has each step once.
    """
    from finers_training.train import trim_log

    log = tmp_path / "log.jsonl"
    trim_log(log, 2)  # no log yet: nothing to do
    log.write_text("".join(json.dumps({"step": s, "reward": s}) + "\n" for s in (1, 2, 3, 4)))
    trim_log(log, 2)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_interrupt_is_one_line_naming_the_checkpoint_to_resume(tmp_path, capsys, monkeypatch):
    """
    End an interrupted run with one line naming the checkpoint to resume.

    Ctrl-C in a run ends with one line saying where a rerun resumes (exit 130), not a
    library traceback.
    """
    import finers_training.train as train_module

    ann = _scenes(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    run = tmp_path / "run"
    (run / "checkpoint-2").mkdir(parents=True)
    (run / "checkpoint-2" / "trainer_state.json").write_text("{}")
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: 1\n")

    def interrupted(config):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "train", interrupted)
    args = ["lpr", "--config", str(config), "--annotations", str(ann), "--base-model", str(base),
            "--output-dir", str(run)]
    assert main(args) == 130
    line = _one_error_line(capsys)
    assert "interrupted" in line and str(run / "checkpoint-2") in line


def test_python_api_checks_the_inputs_too(tmp_path):
    from finers_training.config import config_from_dict
    from finers_training.train import train

    ann = _scenes(tmp_path)
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    config = config_from_dict({"stage": "gse", "base_model": str(base), "annotations": str(ann),
                               "output_dir": str(tmp_path / "run"), "gse_reward": "online",
                               "online_lpr_checkpoint": str(tmp_path / "nolpr")})
    with pytest.raises(TrainConfigError, match="online_lpr_checkpoint"):
        train(config)
    assert not (tmp_path / "run" / "data").exists()


@pytest.mark.parametrize("text, value", [("bf16: true\n", "true"), ("bf16: false\n", "false"),
                                         ('bf16: "true"\n', "true"), ("bf16: auto\n", "auto")])
def test_bf16_is_read_from_a_yaml_boolean_as_well_as_a_word(tmp_path, text, value):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    assert load_config(path).bf16 == value


def test_a_config_stage_other_than_the_command_is_refused(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("stage: gse\nmax_steps: 1\n")
    assert main(["lpr", "--config", str(config), "--annotations", str(_scenes(tmp_path)),
                 "--output-dir", str(tmp_path / "run")]) == 2
    said = _one_error_line(capsys)
    assert "stage" in said and "gse" in said and "lpr" in said
    assert not (tmp_path / "run").exists()
    config.write_text("stage: lpr\n")
    assert load_config(config, stage="lpr").stage == "lpr"


@pytest.mark.parametrize("targets, named", [("[wandb]", "wandb is not installed"),
                                            ("[tensorbord]", "tensorbord")])
def test_report_to_is_checked_before_any_data_is_built(tmp_path, capsys, targets, named):
    if "wandb" in targets and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    config = tmp_path / "run.yaml"
    config.write_text(f"max_steps: 1\nreport_to: {targets}\n")
    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    assert main(["lpr", "--config", str(config), "--annotations", str(_scenes(tmp_path)),
                 "--base-model", str(base), "--output-dir", str(tmp_path / "run")]) == 2
    said = _one_error_line(capsys)
    assert "report_to" in said and named in said
    assert not (tmp_path / "run" / "data").exists()
