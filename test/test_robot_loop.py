"""
The robot-data loop on a bag the running node recorded, every step through its command line.

Node (own process, real topics, record_dir) -> finers-dataset export (the answered episode
pre-annotated, the one the node found nothing for left to label) -> a person labels it ->
import -> split by episode -> finers-train lpr with evaluation on the val split ->
TensorBoard events and the best checkpoint, which the node's pipeline loads.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_record_export_label_import_split_train_and_evaluate_on_val(tmp_path, domain, scene_4k,
                                                                    tiny_qwen_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from finers_ros.config import PipelineConfig, StageConfig
    from finers_ros.data.annotations import load_annotations
    from finers_ros.pipeline import FineRSPipeline
    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.launcher import NodeProcess
    from finers_training.cli import main as train_main
    from finers_training.dataset_cli import main as dataset_main

    image, scene = scene_4k
    node = NodeProcess(domain, parameters={"record_dir": str(tmp_path / "episodes")})
    client = PerceptionClient(domain_id=domain)
    asked = [scene["Q"], "locate the part the robot should pick next"]
    answers = []
    try:
        assert client.wait_for_node(60.0), node.log()[-3000:]
        client.stream(client.frame_message(image, frame_id="camera_optical_frame"), hz=3.0)
        for text in asked:
            before = len(client.detections)
            client.send(text)
            answers.append(client.next_detection(before, 60.0))
            assert answers[-1] is not None, node.log()[-3000:]
    finally:
        client.close()
        assert node.stop() == 0, node.log()[-3000:]
    assert [a.found for a in answers] == [True, False]  # the bring-up grounds colours only

    # export: the found episode pre-annotated, the other a frame to label
    export = tmp_path / "export"
    assert dataset_main(["export", str(tmp_path / "episodes"), "--out", str(export)]) == 0
    episodes = json.loads((export / "episodes.json").read_text())["episodes"]
    assert [(e["Q"], e["status"]) for e in episodes] == [
        (asked[0], "pre-annotated"), (asked[1], "to label")]
    assert episodes[1]["reason"] == "the node found nothing"

    # a person draws the target on the frame left to label, in a tool that keeps no attributes
    coco = json.loads((export / "coco.json").read_text())
    (todo,) = [i for i in coco["images"]
               if [e["status"] for e in i["finers_episodes"]] == ["to label"]]
    coco["annotations"].append({"id": 99, "image_id": todo["id"], "category_id": 1,
                                "segmentation": [[float(v) for p in scene["points"] for v in p]]})
    for annotation in coco["annotations"]:
        annotation.pop("attributes", None)
    (export / "labelled_coco.json").write_text(json.dumps(coco))
    labelled = export / "labelled.json"
    assert dataset_main(["import", str(export / "labelled_coco.json"), "--out",
                         str(labelled)]) == 0
    assert [r.question for r in load_annotations(labelled)] == asked

    # split by episode: one frame each side
    split = tmp_path / "split"
    assert dataset_main(["split", str(labelled), "--by", "episode", "--val-fraction", "0.5",
                         "--out", str(split)]) == 0
    train, val = (load_annotations(split / f"{s}.json") for s in ("train", "val"))
    assert len(train) == len(val) == 1 and train[0].image_path != val[0].image_path

    config = tmp_path / "lpr.yaml"
    config.write_text(
        "num_generations: 2\nper_device_train_batch_size: 2\ngradient_accumulation_steps: 1\n"
        "max_steps: 2\nmax_completion_length: 6\nsave_steps: 2\neval_steps: 1\n"
        "report_to: [tensorboard]\n")
    run = tmp_path / "run"
    assert train_main(["lpr", "--config", str(config), "--base-model", str(tiny_qwen_dir),
                       "--annotations", str(split / "train.json"),
                       "--eval-annotations", str(split / "val.json"),
                       "--output-dir", str(run)]) == 0
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert "train/rewards/lpr_iou/mean" in events.Tags()["scalars"]
    assert [e.step for e in events.Scalars("eval/gIoU")] == [1, 2]
    metrics = json.loads((run / "eval" / "step-2" / "metrics.json").read_text())
    assert metrics["samples"] == 1  # the val frame, which no training sample came from
    best = json.loads((run / "best" / "finers_best.json").read_text())
    assert best["metric"] == "gIoU" and best["step"] in (1, 2)

    pipeline = FineRSPipeline.from_config(PipelineConfig(lpr=StageConfig(
        backend="qwen2_5_vl", checkpoint=str(run / "best"), max_new_tokens=3)))
    assert isinstance(pipeline.run(np.asarray(image), asked[0]).lpr_text, str)
