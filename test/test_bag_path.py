"""
Test the bag path end to end.

Episodes recorded by the running node (its own process, real
topics) -> finers-dataset export -> corrected COCO -> import -> the LPR and GSE sets.
"""
from __future__ import annotations

import json

import numpy as np


def test_bag_path_from_the_running_node_to_both_training_sets(tmp_path, domain, scene_4k):
    """Follow node (record_dir) -> bag -> export -> corrected COCO -> import -> training sets."""
    from finers_ros.data.annotations import load_annotations, read_rgb
    from finers_ros.data.annotations import gt_mask
    from finers_ros.geometry import box_iou, polygon_box
    from finers_ros.ros.client import PerceptionClient
    from finers_ros.ros.launcher import NodeProcess
    from finers_ros.ros.messages import detection_mask
    from finers_training.data import DataOptions, build_set
    from finers_training.coco import coco_polygon
    from finers_training.dataset_cli import main as dataset_main

    image, scene = scene_4k
    node = NodeProcess(domain, parameters={"record_dir": str(tmp_path / "episodes")})
    client = PerceptionClient(domain_id=domain)
    answers = []
    try:
        assert client.wait_for_node(60.0), node.log()[-3000:]
        client.stream(client.frame_message(image, frame_id="camera_optical_frame"), hz=3.0)
        for text in (json.dumps({"instruction": scene["Q"], "id": "job-1"}),
                     "find the purple unicorn"):
            before = len(client.detections)
            client.send(text)
            answers.append(client.next_detection(before, 60.0))
            assert answers[-1] is not None, node.log()[-3000:]
    finally:
        client.close()
        code = node.stop()
    assert code == 0, node.log()[-3000:]
    found = answers[0]
    assert found.found and found.request_id == "job-1", found.error

    # the node's bag: the answered frames, commands and Detections (the pings had no frame)
    (bag,) = (tmp_path / "episodes").glob("*/metadata.yaml")
    out = tmp_path / "export"
    assert dataset_main(["export", str(tmp_path / "episodes"), "--out", str(out)]) == 0
    records = load_annotations(out / "annotations.json")
    assert len(records) == sum(a.found for a in answers)
    record = records[0]
    assert record.question == scene["Q"] and record.extra["source"]["request_id"] == "job-1"
    stamp = found.header.stamp.sec * 1_000_000_000 + found.header.stamp.nanosec
    assert record.extra["source"]["stamp_ns"] == stamp
    assert np.array_equal(read_rgb(record.image_path), image)  # the answered frame, lossless
    recorded = detection_mask(found)
    drawn = gt_mask(record.polygon, (image.shape[1], image.shape[0]))
    assert (recorded & drawn).sum() / (recorded | drawn).sum() > 0.9

    # a person replaces the node's polygon by the true outline (COCO pixel edges), imports it
    coco = json.loads((out / "coco.json").read_text())
    coco["annotations"][0]["segmentation"] = [coco_polygon(scene["points"])]
    (out / "corrected.json").write_text(json.dumps(coco))
    fixed = out / "fixed.json"
    assert dataset_main(["import", str(out / "corrected.json"), "--out", str(fixed)]) == 0
    (corrected,) = load_annotations(fixed)
    assert box_iou(polygon_box(corrected.polygon), polygon_box(scene["points"])) > 0.99
    assert corrected.image_path == record.image_path

    for stage in ("lpr", "gse"):
        rows, counts = build_set(stage, fixed, tmp_path / stage, DataOptions(seed=0))
        assert counts == {"samples": 1, "skipped": 0}
        (row,) = [json.loads(line) for line in rows.read_text().splitlines()]
        assert row["question"] == scene["Q"] and (tmp_path / stage / row["image"]).is_file()
