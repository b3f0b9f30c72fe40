"""LPR and GSE sets, candidate windows, the search and the online reward's geometry."""

import json

import numpy as np
import pytest

from finers_ros import geometry as geo
from finers_ros.data.annotations import Record, load_annotations
from finers_ros.data.synthetic import SceneConfig, write_dataset
from finers_ros.prompts import gse_prompt, lpr_prompt
from finers_ros.stages.qwen_vl import chat_messages
from finers_training import data as D
from finers_training.config import TrainConfig, TrainConfigError, config_from_dict
from finers_training.retrospective import (
    OnlineRetrospectiveReward,
    lpr_native_box,
)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    return write_dataset(folder, 3, seed=2, config=SceneConfig(width=1280, height=720))


def _record(box, q_type="referring"):
    x1, y1, x2, y2 = box
    return Record(
        image_path=None,
        question="Find the red screw.",
        answer="The object is found.",
        q_type=q_type,
        polygon=[[x1, y1], [x2, y1], [x2, y2], [x1, y2]],
        area_percent=0.01,
    )


@pytest.mark.parametrize(
    "box",
    [(700, 300, 740, 330), (0, 0, 20, 20), (3800, 2100, 3839, 2159), (1000, 1000, 1700, 1200)],
)
def test_random_windows_hold_the_box_inside_the_image(box):
    rng = np.random.default_rng(0)
    windows = [D.random_window(box, (3840, 2160), 512, rng) for _ in range(50)]
    for w in windows:
        assert w.contains_box(box)
        assert 0 <= w.x0 and 0 <= w.y0 and w.x0 + w.width <= 3840 and w.y0 + w.height <= 2160
        side = max(512, int(np.ceil(box[2] - box[0])) + 1, int(np.ceil(box[3] - box[1])) + 1)
        assert w.height == w.width == side  # square, as the node's crops
    if box == (700, 300, 740, 330):  # room on every side: placed at random, not centred
        assert len({(w.x0, w.y0) for w in windows}) > 10


def test_lpr_sample_targets_in_crop_pixels_with_jittered_points():
    image = np.random.default_rng(0).integers(0, 255, (2160, 3840, 3), np.uint8)
    box = (700.0, 300.0, 739.0, 329.0)
    rng = np.random.default_rng(1)
    pixels, row = D.lpr_sample(_record(box), image, rng, D.DataOptions())
    assert pixels.shape == (512, 512, 3)
    x0, y0, w, h = row["window"]
    assert (w, h) == (512, 512)
    assert row["gt_box"] == [700 - x0, 300 - y0, 739 - x0, 329 - y0]
    np.testing.assert_array_equal(
        pixels, image[y0:y0 + 512, x0:x0 + 512]
    )  # native pixels, not resampled
    centre, jittered = row["gt_points"]
    assert centre == [
        (row["gt_box"][0] + row["gt_box"][2]) / 2,
        (row["gt_box"][1] + row["gt_box"][3]) / 2,
    ]
    assert (
        abs(jittered[0] - centre[0]) <= 0.1 * 39 + 0.01
        and abs(jittered[1] - centre[1]) <= 0.1 * 29 + 0.01
    )
    assert jittered != centre


def test_gse_sample_is_the_nominal_frame():
    image = np.zeros((2160, 3840, 3), np.uint8)
    record = _record((700, 300, 740, 330))
    record.extra = {"best_region": [300, 100, 556, 356]}
    pixels, row = D.gse_sample(record, image, D.DataOptions())
    assert pixels.shape == (1080, 1920, 3)
    assert row["gt_box"] == [350, 150, 370, 165] and row["gt_box_native"] == [700, 300, 740, 330]
    assert row["best_region"] == [300, 100, 556, 356] and row["native_size"] == [3840, 2160]


def test_built_sets_use_the_node_prompts_and_sizes(scenes, tmp_path):
    records = load_annotations(scenes)
    rows_path, counts = D.build_set("lpr", scenes, tmp_path / "lpr", D.DataOptions(seed=3))
    assert counts == {"samples": 3, "skipped": 0}
    dataset = D.load_dataset(rows_path, "You are a helpful assistant.")
    first = dataset[0]
    expected = chat_messages(
        lpr_prompt(records[0].question, records[0].q_type, records[0].options),
        "You are a helpful assistant.",
    )
    assert first["prompt"][1]["content"][1]["text"] == expected[1]["content"][1]["text"]
    assert first["prompt"][1]["content"][0]["type"] == "image"
    assert first["image"].size == (512, 512)
    again, _ = D.build_set("lpr", scenes, tmp_path / "lpr_again", D.DataOptions(seed=3))
    assert D.read_rows(again) == D.read_rows(rows_path)  # seeded
    gse_rows, _ = D.build_set("gse", scenes, tmp_path / "gse", D.DataOptions())
    gse = D.load_dataset(gse_rows, "You are a helpful assistant.")
    assert gse[0]["image"].size == (1920, 1080)
    assert gse[0]["prompt"][1]["content"][1]["text"] == gse_prompt(
        records[0].question, records[0].q_type, records[0].options
    )


def test_unreadable_image_is_skipped_and_counted(scenes, tmp_path):
    data = json.loads(scenes.read_text())
    data["annotations"][1]["image_path"] = "images/missing.png"
    broken = scenes.parent / "broken.json"
    broken.write_text(json.dumps(data))
    _, counts = D.build_set("lpr", broken, tmp_path / "lpr", D.DataOptions())
    assert counts == {"samples": 2, "skipped": 1}


def test_lpr_answer_maps_back_to_native_pixels():
    window = geo.CropWindow(1000, 500, 512, 512)
    text = (
        "<think>x</think><answer>{'bbox': [10, 20, 50, 60], 'points_1': [30, 40], "
        "'points_2': [31, 41], 'response': 'The object is found.'}</answer>"
    )
    assert lpr_native_box(text, window, (512, 512)) == ((1010, 520, 1050, 560), "ok")
    assert lpr_native_box("garbage", window, (512, 512)) == (None, "unparsable")
    not_found = text.replace("[10, 20, 50, 60]", "[0, 0, 0, 0]")
    assert lpr_native_box(not_found, window, (512, 512)) == (None, "not_found")


def test_online_reward_crops_the_region_as_the_node_does():
    reward = OnlineRetrospectiveReward(TrainConfig(stage="gse"))
    text = (
        "<think>x</think><answer>{'bbox': [100, 200, 356, 456], "
        "'response': 'The object is found.'}</answer>"
    )
    window = reward.region_window(text, (3840, 2160))
    assert window == geo.crop_for_region((200, 400, 712, 912), (3840, 2160), 512)
    assert reward.region_window("no answer", (3840, 2160)) is None
    assert reward.region_window(text.replace("356", "NaN"), (3840, 2160)) is None


def test_config_rejects_what_cannot_work():
    with pytest.raises(TrainConfigError, match="unknown key"):
        config_from_dict({"learning_rat": 1})
    with pytest.raises(TrainConfigError, match="online_lpr_checkpoint"):
        config_from_dict({"stage": "gse", "gse_reward": "online"})
    with pytest.raises(TrainConfigError, match="multiple of num_generations"):
        config_from_dict({"per_device_train_batch_size": 3, "gradient_accumulation_steps": 1})
    recipe = TrainConfig()
    assert (
        recipe.num_generations,
        recipe.temperature,
        recipe.beta,
        recipe.learning_rate,
        recipe.epsilon,
        recipe.max_grad_norm,
    ) == (8, 1.0, 5e-3, 1e-6, 0.2, 1.0)


def test_search_counts_unparsable_output_and_resumes(scenes, tiny_qwen_dir, tmp_path):
    from finers_training.retrospective import search

    config = TrainConfig(
        stage="gse",
        annotations=str(scenes),
        search_checkpoint=str(tiny_qwen_dir),
        search_max_new_tokens=6,
        search_batch_size=2,
        max_samples=2,
        device="cpu",
    )
    out = tmp_path / "searched" / "annotations.json"
    counts = search(config, out, progress=False)
    # a random model's text never parses: counted, and the centred window is kept
    assert counts["windows"] == 10 and counts["unparsable"] + counts["not_found"] == 10
    first = json.loads(out.read_text())["annotations"]
    records = load_annotations(out)  # image paths still resolve next to the new JSON
    for record, item in zip(records, first):
        native = (1280, 720)
        gt = D.gse_gt_box(D.gt_box(record), native, (1920, 1080))
        centred = geo.crop_for_region(gt, (1920, 1080), 257)  # the 256 region centred on it
        assert item["best_region"] == [float(v) for v in centred.box]
    partial = out.with_name(out.name + ".partial.jsonl")
    partial.write_text(partial.read_text().splitlines()[0] + "\n")  # interrupted after one sample
    out.unlink()
    again = search(config, out, progress=False)
    assert again["resumed"] == 1 and again["windows"] == 5
    assert json.loads(out.read_text())["annotations"] == first


@pytest.mark.parametrize("name", ["lpr.yaml", "gse.yaml", "smoke_lpr.yaml", "smoke_gse.yaml"])
def test_shipped_configs_load(name):
    from pathlib import Path

    from finers_training.config import load_config

    config = load_config(Path(__file__).parents[1] / "training" / "configs" / name)
    assert config.stage in name or name.startswith("smoke")


def test_cli_bad_configuration_is_one_line_exit_2(tmp_path, capsys):
    from finers_training.cli import main

    assert main(["lpr", "--config", str(tmp_path / "missing.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("stage: lpr\nlearning_rat: 1\n")
    assert main(["lpr", "--config", str(bad)]) == 2
    weights = tmp_path / "weights.yaml"
    weights.write_text("reward_weights: {lpr_iouu: 2}\n")
    assert (
        main(
            [
                "lpr",
                "--config",
                str(weights),
                "--base-model",
                str(tmp_path),
                "--annotations",
                str(tmp_path / "none.json"),
                "--output-dir",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    lines = [
        line for line in capsys.readouterr().err.splitlines() if line.startswith("finers-train:")
    ]
    assert (
        len(lines) == 3
        and "config file not found" in lines[0]
        and "learning_rat" in lines[1]
        and "lpr_iouu" in lines[2]
    )


def _online_columns(tmp_path, count):
    import cv2

    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), np.zeros((1080, 1920, 3), np.uint8))
    sample = {
        "source_image": str(frame),
        "gt_box_native": [600.0, 500.0, 649.0, 539.0],
        "q_type": "referring",
        "question": "find the red screw",
        "options_json": "null",
    }
    return {k: [v] * count for k, v in sample.items()}


GSE_ANSWER = (
    "<think>x</think><answer>{'bbox': [500, 400, 756, 656], "
    "'response': 'The object is found.'}</answer>"
)


def test_online_reward_is_the_iou_of_the_frozen_lpr_box(tmp_path):
    class ScriptedLPR:
        """Stands in for the frozen model to pin its answer; the real one runs below."""

        def __init__(self):
            self.images = []

        def answer(self, images, prompts):
            self.images += images
            assert prompts == [lpr_prompt("find the red screw")] * len(images)
            return [
                "<answer>{'bbox': [100, 100, 149, 139], 'points_1': [120, 120], "
                "'points_2': [121, 121], 'response': 'The object is found.'}</answer>"
            ] * len(images)

    reward = OnlineRetrospectiveReward(TrainConfig(stage="gse"))
    reward._model = ScriptedLPR()
    metrics = {}
    scores = reward(
        prompts=None,
        completions=[GSE_ANSWER, "garbage"],
        log_metric=metrics.__setitem__,
        **_online_columns(tmp_path, 2),
    )
    window = geo.crop_for_region(
        (500, 400, 756, 656), (1920, 1080), 512
    )  # 1920 wide: GSE = native
    native_box = (window.x0 + 100, window.y0 + 100, window.x0 + 149, window.y0 + 139)
    assert scores == [pytest.approx(geo.box_iou(native_box, (600, 500, 649, 539))), 0.0]
    assert reward._model.images[0].shape == (512, 512, 3)
    assert metrics == {"online_retro/gse_region_usable": 0.5, "online_retro/lpr_box_usable": 0.5}


def test_online_reward_with_a_real_frozen_model(tiny_qwen_dir, tmp_path):
    config = TrainConfig(
        stage="gse",
        online_lpr_checkpoint=str(tiny_qwen_dir),
        online_lpr_max_new_tokens=4,
        device="cpu",
    )
    reward = OnlineRetrospectiveReward(config)
    scores = reward(
        prompts=None,
        completions=[[{"role": "assistant", "content": GSE_ANSWER}]] * 2,
        **_online_columns(tmp_path, 2),
    )
    assert scores == [0.0, 0.0]  # 4 random tokens are no LPR answer: counted, not raised
    assert reward.counts == {"rollouts": 2, "gse_unusable": 0, "lpr_unusable": 2}


def test_training_requests_are_the_node_requests(scenes, tiny_qwen_dir, tmp_path):
    """
    Check that TRL's processor input renders as QwenVLModel.generate's does.

    What TRL feeds the processor (dataset row -> chat with the image filled in) renders to the
    same text as QwenVLModel.generate, and the images have the node's grids (504^2, 1932x1092).
    """
    from transformers import AutoProcessor
    from trl.data_utils import prepare_multimodal_messages

    processor = AutoProcessor.from_pretrained(str(tiny_qwen_dir))
    records = load_annotations(scenes)
    for stage, grid in (("lpr", [1, 36, 36]), ("gse", [1, 78, 138])):
        rows_path, _ = D.build_set(stage, scenes, tmp_path / stage, D.DataOptions())
        row = D.load_dataset(rows_path, "You are a helpful assistant.")[0]
        trained = processor.apply_chat_template(
            prepare_multimodal_messages(row["prompt"], images=[row["image"]]),
            tokenize=False,
            add_generation_prompt=True,
        )
        build = lpr_prompt if stage == "lpr" else gse_prompt
        sent = processor.apply_chat_template(
            chat_messages(
                build(records[0].question, records[0].q_type, records[0].options),
                "You are a helpful assistant.",
            ),
            tokenize=False,
            add_generation_prompt=True,
        )
        assert trained == sent
        inputs = processor(text=[trained], images=[row["image"]], return_tensors="pt")
        assert inputs["image_grid_thw"].tolist() == [grid]


def test_frozen_models_go_to_this_process_gpu(monkeypatch):
    import torch

    from finers_training.generation import resolve_device

    assert resolve_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "3")
    assert resolve_device("auto") == "cuda:3"  # not every rank's copy on GPU 0
