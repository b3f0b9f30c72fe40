"""
The recipe's numbers as the reference trains: weight decay, token budgets, batch checks.

Reference (JiazuoYu/Fines training_scripts): AdamW weight decay 1e-2, responses up to 820
tokens for LPR and 3155 for GSE. The frozen LPR of the search and of the online reward
must be allowed to write as much as it was trained to (a cut answer scores 0 and biases
the search towards the centred window). TRL generates per step
``per_device_train_batch_size x processes x gradient_accumulation_steps`` completions,
which must hold whole groups: the check counts the processes of the launch.
"""

from pathlib import Path

import pytest
import yaml

from finers_training.config import TrainConfig, TrainConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "training" / "configs"


def test_weight_decay_is_the_reference_one_and_reaches_adamw():
    from finers_training.train import grpo_args

    config = TrainConfig(output_dir="/tmp/unused")
    assert config.weight_decay == pytest.approx(1e-2)
    assert grpo_args(config, [1.0]).weight_decay == pytest.approx(1e-2)
    assert grpo_args(TrainConfig(weight_decay=0.0), [1.0]).weight_decay == 0.0
    with pytest.raises(TrainConfigError, match="weight_decay"):
        TrainConfig(weight_decay=-1e-3).validate()


@pytest.mark.parametrize("stage, tokens", [("lpr", 820), ("gse", 3155)])
def test_completions_get_the_reference_token_budget(stage, tokens):
    from finers_training.train import grpo_args

    assert TrainConfig(stage=stage).max_completion_length == tokens
    assert load_config(CONFIGS / f"{stage}.yaml").max_completion_length == tokens
    assert grpo_args(TrainConfig(stage=stage), [1.0]).max_completion_length == tokens
    assert TrainConfig(stage=stage, max_completion_length=40).max_completion_length == 40


def _lpr_run(tmp_path, tiny_qwen_dir, trained_tokens):
    """Return a copy of the tiny checkpoint that says it was trained to write that many tokens."""
    import shutil

    run = tmp_path / "lpr_run"
    shutil.copytree(tiny_qwen_dir, run)
    config = TrainConfig(stage="lpr", max_completion_length=trained_tokens)
    (run / "finers_train.yaml").write_text(yaml.safe_dump(config.to_dict()))
    return run


def test_the_frozen_lpr_may_write_as_much_as_it_was_trained_to(tmp_path, tiny_qwen_dir, capsys):
    from finers_training.generation import lpr_token_budget

    run = _lpr_run(tmp_path, tiny_qwen_dir, 820)
    assert lpr_token_budget(run, None) == 820  # unset: what the LPR run allowed itself
    assert lpr_token_budget(tiny_qwen_dir, None) == 820  # not ours: the reference LPR's
    assert lpr_token_budget(_lpr_run(tmp_path / "b", tiny_qwen_dir, 900), None) == 900
    assert lpr_token_budget(run, 1000) == 1000
    assert capsys.readouterr().err == ""
    assert lpr_token_budget(run, 128) == 128  # kept, but said
    err = capsys.readouterr().err
    assert "128" in err and "820" in err and "score 0" in err
    for key in ("online_lpr_max_new_tokens", "search_max_new_tokens"):
        assert getattr(TrainConfig(), key) is None
        assert getattr(load_config(CONFIGS / "gse.yaml"), key) is None


def test_the_online_reward_and_the_search_load_the_lpr_with_its_budget(tmp_path, tiny_qwen_dir):
    from finers_training.retrospective import OnlineRetrospectiveReward, search_model

    run = _lpr_run(tmp_path, tiny_qwen_dir, 820)
    config = TrainConfig(
        stage="gse", gse_reward="online", online_lpr_checkpoint=str(run),
        search_checkpoint=str(run), device="cpu",
    )
    assert OnlineRetrospectiveReward(config).model.max_new_tokens == 820
    assert search_model(config).max_new_tokens == 820


@pytest.mark.parametrize(
    "processes, per_device, accumulation, generations, ok",
    [
        (8, 1, 1, 8, True),  # 8 GPUs x 1 completion: one group of 8 per step
        (2, 2, 1, 4, True),
        (1, 2, 1, 4, False),
        (8, 1, 2, 8, True),
        (4, 1, 1, 8, False),
        (3, 1, 1, 2, False),
        (3, 2, 2, 4, True),
    ],
)
def test_batches_hold_whole_groups_over_all_processes(
    monkeypatch, processes, per_device, accumulation, generations, ok
):
    monkeypatch.setenv("WORLD_SIZE", str(processes))
    config = TrainConfig(
        num_generations=generations,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=accumulation,
    )
    if ok:
        config.validate()
    else:
        with pytest.raises(TrainConfigError, match=f"{processes} process"):
            config.validate()
