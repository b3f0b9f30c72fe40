"""
Building the LPR and GSE training sets from hand-made records, checked value by value.

A 300x200 image with a target whose polygon touches the image's edges, windows for boxes
wider than the crop, the rows' rounding, the pixels written, the hash of a built set, and
the dataset rows GRPOTrainer reads.
"""
import json

import cv2
import numpy as np
import pytest

from finers_ros import geometry as geo
from finers_ros.data.annotations import DatasetError, Record, read_rgb
from finers_training import data as D


def record(polygon):
    return Record(image_path="frame.png", question="find it", answer="It is found.",
                  q_type="referring", polygon=polygon, area_percent=0.01)


@pytest.mark.parametrize(
    "polygon, inside",
    [
        ([[-10, 5], [0, 5], [0, 9]], True), ([[-10, 5], [-1, 5], [-1, 9]], False),  # left
        ([[5, -10], [9, -10], [9, 0]], True), ([[5, -10], [9, -10], [9, -1]], False),  # top
        ([[299, 5], [320, 5], [320, 9]], True), ([[300, 5], [320, 5], [320, 9]], False),
        ([[5, 199], [9, 199], [9, 220]], True), ([[5, 200], [9, 200], [9, 220]], False),
    ],
)
def test_a_polygon_touching_the_image_edge_is_clipped_one_past_it_is_refused(polygon, inside):
    box = geo.polygon_box(polygon)
    if inside:
        assert D.gt_box(record(polygon), (300, 200)) == geo.clip_box(box, (300, 200))
    else:
        with pytest.raises(DatasetError) as caught:
            D.gt_box(record(polygon), (300, 200))
        assert str(caught.value) == f"polygon {box} lies outside the 300x200 image"


def starts(box, native, side, draws=300):
    rng = np.random.default_rng(0)
    windows = [D.random_window(box, native, side, rng) for _ in range(draws)]
    return {w.x0 for w in windows}, {w.y0 for w in windows}, windows


def test_random_windows_take_every_position_that_holds_the_box():
    xs, ys, windows = starts((150, 100, 160, 105), (400, 300), 20)
    assert xs == set(range(141, 151)) and ys == set(range(86, 101))
    assert all(w.contains_box((150, 100, 160, 105)) for w in windows)
    xs, ys, _ = starts((3, 2, 8, 6), (400, 300), 20)  # near the top-left corner
    assert xs == {0, 1, 2, 3} and ys == {0, 1, 2}


def test_a_box_larger_than_the_window_gets_a_square_window_of_its_longer_side():
    # Square as the node's LPR crops (side max(512, w, h)): the LPR learns the aspect it gets.
    _, ys, windows = starts((100, 40, 399, 49), (1000, 600), 100, draws=200)
    assert {(w.width, w.height) for w in windows} == {(300, 300)}
    assert {w.x0 for w in windows} == {100} and ys == set(range(0, 41))
    assert all(w.contains_box((100, 40, 399, 49)) for w in windows)
    _, _, windows = starts((40, 100, 49, 399), (600, 1000), 100, draws=20)
    assert {(w.width, w.height) for w in windows} == {(300, 300)}
    _, _, windows = starts((40, 10, 399, 49), (600, 200), 100, draws=20)  # image too short
    assert {(w.width, w.height) for w in windows} == {(360, 200)}


@pytest.mark.parametrize(
    "box, native, window",
    [
        ((10.5, 20, 260.2, 30), (600, 400), (10, 0, 251, 100)),  # fractional: centred
        ((0.5, 20, 250.2, 30), (600, 400), (0, 0, 251, 100)),
        ((340.5, 20, 590.2, 30), (600, 400), (340, 0, 251, 100)),
        ((349.6, 20, 599.4, 30), (600, 400), (349, 0, 251, 100)),  # flush with the right
        ((0.0, 0.0, 599.5, 30), (600, 400), (0, 0, 600, 100)),  # as wide as the image
    ],
)
def test_a_box_with_fractional_edges_wider_than_the_window_is_centred(box, native, window):
    got = D.random_window(box, native, 100, np.random.default_rng(0))
    assert (got.x0, got.width) == (window[0], window[2])
    assert got.height == min(window[2], native[1])  # square unless the image is shorter
    assert got.contains_box((int(np.ceil(box[0])), box[1], int(np.floor(box[2])), box[3]))


def test_the_second_point_is_jittered_both_ways_within_the_box_fraction():
    rng = np.random.default_rng(1)
    box = (100, 200, 140, 220)
    seconds = np.array([D.gt_points(box, rng, 0.1)[1] for _ in range(400)])
    centre = (120, 210)
    assert D.gt_points(box, rng, 0.1)[0] == [120.0, 210.0]
    dx, dy = seconds[:, 0] - centre[0], seconds[:, 1] - centre[1]
    assert dx.min() < -3 and dx.max() > 3 and np.abs(dx).max() <= 4
    assert dy.min() < -1.5 and dy.max() > 1.5 and np.abs(dy).max() <= 2


@pytest.fixture
def annotated(tmp_path):
    """Three records: a target on a 300x200 image, one without its image, one off the image."""
    image = np.random.default_rng(2).integers(0, 255, (200, 300, 3), dtype=np.uint8)
    image[:, :, 0] = 250  # red-heavy: RGB and BGR differ
    cv2.imwrite(str(tmp_path / "frame.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    common = {"image_path": "frame.png", "Q": "find it", "A": "It is found.",
              "Q-type": "referring", "area_percent": 0.01}
    items = [
        {**common, "points": [[101.3, 50.7], [140.9, 50.7], [140.9, 81.2], [101.3, 81.2]],
         "best_region": [10, 20, 266, 276]},
        {**common, "image_path": "missing.png", "points": [[1, 1], [5, 5], [1, 5]]},
        {**common, "points": [[400, 5], [420, 5], [420, 9]]},
    ]
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps({"annotations": items}))
    return path, image


def test_build_set_writes_the_rows_and_pixels_and_counts_what_it_skipped(
        annotated, tmp_path, capsys):
    path, image = annotated
    options = D.DataOptions(crop_size=64, lpr_size=(128, 96), gse_size=(480, 270))
    for build in range(2):  # into the same folder twice
        rows_path, counts = D.build_set("gse", path, tmp_path / "gse", options)
    assert counts == {"samples": 1, "skipped": 2}
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("skipped record 1 (missing.png): ")
    assert out[1] == ("skipped record 2 (frame.png): polygon (400.0, 5.0, 420.0, 9.0) lies "
                      "outside the 300x200 image")
    (row,) = D.read_rows(rows_path)
    assert row["stage"] == "gse" and row["image"] == "images/gse_000000.png"
    assert row["source_image"] == str(tmp_path / "frame.png")
    assert row["answer"] == "It is found." and row["question"] == "find it"
    assert row["native_size"] == [300, 200] and row["best_region"] == [10.0, 20.0, 266.0, 276.0]
    assert row["gt_box_native"] == [101.3, 50.7, 140.9, 81.2]
    assert row["gt_box"] == [round(v, 2) for v in geo.native_to_gse_box(
        (101.3, 50.7, 140.9, 81.2), (300, 200), (480, 270))]
    assert row["gt_box"] == [162.08, 68.45, 225.44, 109.62]
    written = read_rgb(tmp_path / "gse" / row["image"])
    np.testing.assert_array_equal(written, geo.resize_image(image, (480, 270)))


def test_lpr_rows_are_rounded_to_the_hundredth(annotated, tmp_path):
    path, image = annotated
    options = D.DataOptions(crop_size=64, lpr_size=(128, 96), max_samples=1)
    rows_path, counts = D.build_set("lpr", path, tmp_path / "lpr", options)
    assert counts == {"samples": 1, "skipped": 0}
    (row,) = D.read_rows(rows_path)
    x0, y0, width, height = row["window"]
    window = geo.CropWindow(x0, y0, width, height)
    expected = geo.native_to_lpr_box((101.3, 50.7, 140.9, 81.2), window, (128, 96))
    assert row["gt_box"] == [round(v, 2) for v in expected]
    assert all(round(v, 2) == v for point in row["gt_points"] for v in point)
    written = read_rgb(tmp_path / "lpr" / row["image"])
    crop = np.ascontiguousarray(window.cut(image))
    np.testing.assert_array_equal(written, geo.resize_image(crop, (128, 96)))


def test_images_are_found_in_the_given_folder(annotated, tmp_path):
    path, _ = annotated
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "frame.png").rename(elsewhere / "frame.png")
    _, counts = D.build_set("gse", path, tmp_path / "out", D.DataOptions(max_samples=1),
                            images_dir=elsewhere)
    assert counts == {"samples": 1, "skipped": 0}


def test_the_set_hash_follows_its_rows_and_images(annotated, tmp_path):
    path, _ = annotated
    rows_path, _ = D.build_set("gse", path, tmp_path / "a", D.DataOptions(max_samples=1))
    first = D.set_hash(rows_path)
    assert first == D.set_hash(tmp_path / "a" / "rows.jsonl") and len(first) == 64
    image = tmp_path / "a" / D.read_rows(rows_path)[0]["image"]
    image.write_bytes(image.read_bytes() + b"\0")
    assert D.set_hash(rows_path) != first
    one, two = tmp_path / "one.bin", tmp_path / "two.bin"
    one.write_bytes(b"x")
    two.write_bytes(b"x")
    assert D.files_hash([one]) != D.files_hash([two])  # names count
    assert D.files_hash([one, two]) != D.files_hash([two, one])  # and their order


def test_dataset_rows_carry_the_prompt_the_options_and_the_gse_region(tmp_path):
    rows = [
        {"image": "images/a.png", "stage": "gse", "question": "which colour", "q_type": "option",
         "options": ["A. red", "B. blue"], "answer": "A", "gt_box": [1, 2, 3, 4],
         "best_region": [0, 0, 256, 256]},
        {"image": "images/b.png", "stage": "lpr", "question": "find it", "q_type": "referring",
         "options": None, "answer": "", "gt_box": [5, 6, 7, 8], "gt_points": [[1, 1], [2, 2]]},
    ]
    (tmp_path / "images").mkdir()
    for row in rows:
        cv2.imwrite(str(tmp_path / row["image"]), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    dataset = D.load_dataset(tmp_path / "rows.jsonl", "You are a helpful assistant.")
    gse, lpr = dataset[0], dataset[1]
    assert json.loads(gse["options_json"]) == ["A. red", "B. blue"]
    assert json.loads(lpr["options_json"]) is None
    assert gse["best_region"] == [0, 0, 256, 256] and lpr["best_region"] is None
    assert "options" not in dataset.column_names
    assert gse["image"].size == (8, 8) and gse["gt_box"] == [1, 2, 3, 4]
    prompt = gse["prompt"][1]["content"][1]["text"]
    assert prompt == D.stage_prompt(rows[0]) and "['A. red', 'B. blue']" in prompt
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DatasetError) as caught:
        D.load_dataset(empty, "s")
    assert str(caught.value) == f"{empty}: no samples"
