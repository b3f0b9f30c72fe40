"""
FineRS-4k records to COCO and back, field by field, and every COCO entry that is skipped.

What an annotation tool gets (ids, bbox, area, attributes) and what comes back from a
corrected file: polygons clipped to the frame, the largest of several parts, options in
the forms tools write, file names resolved, and a count for every entry left out.
"""
import json
from collections import Counter

import cv2
import numpy as np
import pytest

from finers_ros.data.annotations import DatasetError
from finers_training.coco import (
    area_percent, finers_question_type, from_coco, mask_polygon, to_coco)

SQUARE = [[10, 20], [40, 20], [40, 50], [10, 50]]


def records():
    return [
        {"image_path": "a.png", "Q": "find the screw", "A": "It is found.", "Q-type": "referring",
         "points": SQUARE, "area_percent": 1.2345},
        {"image_path": "b.png", "Q": "which colour", "A": "A", "Q-type": "option",
         "points": [[1, 2], [9, 2], [5, 8]], "area_percent": 0.5, "options": ["A. red", "B. x"]},
        {"image_path": "a.png", "Q": "what shape", "Q-type": "reasoning",
         "points": [[50, 60], [70, 60], [60, 75]], "area_percent": 0.25},
    ]


def test_to_coco_gives_each_image_one_entry_and_each_record_one_annotation():
    document = to_coco(records(), {"a.png": (200, 100), "b.png": (64, 48)})
    assert document["images"] == [
        {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
        {"id": 2, "file_name": "b.png", "width": 64, "height": 48}]
    first, second, third = document["annotations"]
    assert [a["id"] for a in document["annotations"]] == [1, 2, 3]
    assert [a["image_id"] for a in document["annotations"]] == [1, 2, 1]
    # pixel centres 10..40 are pixel edges 10..41 in COCO (test_coco_pixels)
    assert first["segmentation"] == [[10.0, 20.0, 41.0, 20.0, 41.0, 51.0, 10.0, 51.0]]
    assert first["bbox"] == [10, 20, 31, 31] and first["iscrowd"] == 0
    assert first["category_id"] == 1
    assert first["area"] == 246.9  # 1.2345 % of 200 x 100, to a tenth
    assert first["attributes"] == {"question": "find the screw", "answer": "It is found.",
                                   "question_type": "referring", "options": ""}
    assert json.loads(second["attributes"]["options"]) == ["A. red", "B. x"]
    assert third["attributes"]["answer"] == ""
    assert document["categories"] == [{"id": 1, "name": "target", "supercategory": "finers"}]


@pytest.fixture
def frames(tmp_path):
    (tmp_path / "images").mkdir()
    for name, size in (("a.png", (100, 200)), ("b.png", (48, 64))):
        cv2.imwrite(str(tmp_path / "images" / name), np.zeros((*size, 3), np.uint8))
    return tmp_path


def test_a_document_comes_back_as_the_records_it_was_made_of(frames):
    document = to_coco(records(), {"a.png": (200, 100), "b.png": (64, 48)})
    back, counts = from_coco(document, frames, frames)
    assert counts == Counter()
    assert [r["image_path"] for r in back] == ["images/a.png", "images/b.png", "images/a.png"]
    assert back[0]["points"] == [[10.0, 20.0], [40.0, 20.0], [40.0, 50.0], [10.0, 50.0]]
    assert [r["Q-type"] for r in back] == ["referring", "option", "reasoning"]
    assert back[1]["options"] == ["A. red", "B. x"] and "options" not in back[0]
    assert back[0]["A"] == "It is found." and back[2]["A"] == ""
    assert back[0]["area_percent"] == area_percent(back[0]["points"], (200, 100))
    assert back[0]["attribute"] == ""


def annotation(image_id=1, segmentation=None, **attributes):
    attributes = {"question": "find it", "question_type": "referring", **attributes}
    return {"id": 1, "image_id": image_id, "category_id": 1,
            "segmentation": [[10, 20, 40, 20, 40, 50, 10, 50]] if segmentation is None
            else segmentation, "attributes": attributes}


def document(*annotations, images=None):
    images = images if images is not None else [
        {"id": 1, "file_name": "a.png", "width": 200, "height": 100},
        {"id": "b", "file_name": "elsewhere/b.png", "width": 64.0, "height": 48}]
    return {"images": images, "annotations": list(annotations)}


@pytest.mark.parametrize(
    "entry, problem",
    [
        (annotation(segmentation={"counts": "abc", "size": [100, 200]}),
         "no polygon segmentation"),
        (annotation(segmentation=[[1, 2, 3, 4]]), "no polygon segmentation"),
        (annotation(segmentation=[[1, 2, 3, 4, 5, 6, 7]]), "no polygon segmentation"),
        (annotation(segmentation=[[1, 2, 3, float("nan"), 5, 6]]), "no polygon segmentation"),
        (annotation(segmentation=[[1, 1, 5, 5, 9, 9]]), "no polygon segmentation"),  # no area
        (annotation(segmentation=[["x", 1, 5, 5, 9, 1]]), "no polygon segmentation"),
        (annotation(question=" "), "no question attribute"),
        (annotation(question_type="poem"), "unknown question type"),
        (annotation(question_type="option"), "option question without options"),
        (annotation(image_id=7), "unknown image"),
        (annotation(image_id=[1]), "unknown image"),
        ("not an annotation", "malformed entry"),
    ],
)
def test_each_unusable_annotation_is_counted_by_its_problem(frames, entry, problem):
    records, counts = from_coco(document(entry, annotation(image_id="b")), frames, frames)
    assert len(records) == 1 and records[0]["image_path"] == "images/b.png"
    assert counts == Counter({problem: 1, "image without annotation": 1})


def test_an_annotation_whose_image_file_is_missing_is_counted(frames):
    images = [{"id": 1, "file_name": "gone.png", "width": 200, "height": 100}]
    records, counts = from_coco(document(annotation(), images=images), frames, frames)
    assert records == [] and counts == Counter({"image file not found": 1,
                                                "image without annotation": 1})


@pytest.mark.parametrize(
    "image",
    [{"id": 1, "file_name": "a.png", "width": 0, "height": 100},
     {"id": 1, "file_name": "a.png", "width": 200.5, "height": 100},
     {"id": 1, "file_name": "a.png", "width": True, "height": 100},
     {"id": 1, "file_name": "a.png", "height": 100},
     {"id": 1.5, "file_name": "a.png", "width": 200, "height": 100},
     "a.png"],
)
def test_an_image_entry_without_a_usable_size_or_id_is_malformed(frames, image):
    records, counts = from_coco(document(annotation(), images=[image]), frames, frames)
    assert records == [] and counts == Counter({"malformed entry": 1, "unknown image": 1})


def test_several_parts_keep_the_largest_clipped_to_the_frame(frames):
    parts = [[1, 1, 5, 1, 5, 5], [150, 60, 260, 60, 260, 130, 150, 130], [1, 2, 3]]
    records, counts = from_coco(document(annotation(segmentation=parts)), frames, frames)
    assert records[0]["points"] == [[150.0, 60.0], [199.0, 60.0], [199.0, 99.0], [150.0, 99.0]]
    assert counts == Counter({"polygon parts dropped, the largest kept": 1,
                              "image without annotation": 1})


@pytest.mark.parametrize(
    "options, kept",
    [
        (["A. red", 2], ["A. red", "2"]),
        ('["A. red", "B. blue"]', ["A. red", "B. blue"]),
        ("A. red; B. blue ;", ["A. red", "B. blue"]),
        ('{"A": "red"}', None),
        ("  ", None),
    ],
)
def test_options_in_every_form_tools_write(frames, options, kept):
    entry = annotation(question_type="option", options=options)
    records, counts = from_coco(document(entry), frames, frames)
    if kept is None:
        assert records == [] and counts["option question without options"] == 1
    else:
        assert records[0]["options"] == kept and records[0]["Q-type"] == "option"


def test_file_names_are_found_as_written_or_by_name_and_written_relative(frames, tmp_path):
    (frames / "sub").mkdir()
    cv2.imwrite(str(frames / "sub" / "c.png"), np.zeros((100, 200, 3), np.uint8))
    images = [{"id": 1, "file_name": "sub/c.png", "width": 200, "height": 100},
              {"id": 2, "file_name": "/somewhere/else/a.png", "width": 200, "height": 100}]
    entries = (annotation(image_id=1), annotation(image_id=2))
    records, _ = from_coco(document(*entries, images=images), frames, frames)
    assert [r["image_path"] for r in records] == ["sub/c.png", "images/a.png"]
    outside = tmp_path.parent / "other-output"
    records, _ = from_coco(document(*entries, images=images), frames, outside)
    assert records[0]["image_path"] == str((frames / "sub" / "c.png").resolve())


def test_a_document_whose_images_are_not_a_list_is_refused(tmp_path):
    with pytest.raises(DatasetError) as caught:
        from_coco({"images": {"id": 1}}, tmp_path, tmp_path)
    assert str(caught.value) == "not a COCO document: 'images' is not a list"


def test_mask_polygon_is_the_largest_parts_outline_with_the_number_of_parts():
    mask = np.zeros((40, 60), bool)
    mask[5:10, 5:10] = True
    mask[20:35, 30:50] = True
    polygon, parts = mask_polygon(mask)
    assert parts == 2 and sorted(map(tuple, polygon)) == [(30, 20), (30, 34), (49, 20), (49, 34)]
    line = np.zeros((10, 10), bool)
    line[4, 2:7] = True
    assert mask_polygon(line) == (None, 1)
    assert mask_polygon(np.zeros((10, 10), bool)) == (None, 0)
    triangle = np.tril(np.ones((5, 5), bool))  # outlined by exactly 3 corners
    assert mask_polygon(np.pad(triangle, 2)) == ([[2, 2], [2, 6], [6, 6]], 1)


def test_question_types_and_area_in_finers_4k_terms():
    assert [finers_question_type(t) for t in ("referring", "open", "reasoning", "option")] == [
        "referring", "reasoning", "reasoning", "option"]
    assert area_percent(SQUARE, (200, 100)) == pytest.approx(31 * 31 * 100 / 20000)


def test_each_dropped_annotation_is_named_with_its_id_image_and_reason(frames):
    said = []
    entry = {**annotation(segmentation={"counts": "abc", "size": [100, 200]}), "id": 7}
    records, counts = from_coco(document(entry, annotation(image_id="b"), "junk"), frames,
                                frames, say=said.append)
    assert len(records) == 1 and counts["no polygon segmentation"] == 1
    assert said == ["skipped annotation 7 on a.png: no polygon segmentation",
                    "skipped annotation #3: not a COCO annotation"]


@pytest.mark.parametrize("segmentation", [[], [[]], None])
def test_a_rectangle_without_a_polygon_is_read_as_its_four_corners(frames, segmentation):
    polygon = annotation(segmentation=[[10, 20, 40, 20, 40, 50, 10, 50]])
    rectangle = {**annotation(segmentation=segmentation), "bbox": [10, 20, 30, 30]}
    if segmentation is None:
        del rectangle["segmentation"]
    (expected,), _ = from_coco(document(polygon), frames, frames)
    (record,), counts = from_coco(document(rectangle), frames, frames)
    assert record == expected and counts["rectangle read as a 4-corner polygon"] == 1


def test_an_annotation_without_its_question_on_a_frame_of_two_says_so(frames):
    said = []
    entry = annotation(question="")
    exported = [{"Q": q, "Q-type": "referring", "status": "to label"} for q in ("a", "b")]
    _, counts = from_coco(document(entry), frames, frames, {"a.png": exported}, say=said.append)
    assert counts["no question attribute"] == 1
    assert said == ["skipped annotation 1 on a.png: no question attribute (its frame was "
                    "exported with 2 questions)"]


OPTION_EPISODE = {"Q": "which colour is the bolt", "Q-type": "option", "A": "B",
                  "options": ["A. red", "B. blue"], "status": "pre-annotated",
                  "source": {"bag": "/rec/bag0", "stamp_ns": 7, "frame_id": "cam"}}


@pytest.mark.parametrize("status, own_answer, answer", [
    ("pre-annotated", None, "B"),  # the node's answer comes with the node's question
    ("to label", None, ""),  # the node did not answer it: no answer to keep
    ("pre-annotated", "A", "A"),  # a person's answer wins
])
def test_a_polygon_drawn_without_a_question_takes_its_frames_one_exported_question(
        frames, status, own_answer, answer):
    entry = annotation()
    entry["attributes"] = {} if own_answer is None else {"answer": own_answer}
    episode = {**OPTION_EPISODE, "status": status}
    (record,), counts = from_coco(document(entry), frames, frames, {"a.png": [episode]})
    assert (record["Q"], record["Q-type"], record["options"], record["A"]) == (
        "which colour is the bolt", "option", ["A. red", "B. blue"], answer)
    assert record["source"] == OPTION_EPISODE["source"]
    assert counts["question taken from the exported episode"] == 1


def test_a_polygon_with_its_own_question_keeps_it_and_the_source_of_that_question(frames):
    other = {**OPTION_EPISODE, "Q": "find it", "Q-type": "referring", "source": {"bag": "b1"}}
    unsourced = {"Q": "find it too", "Q-type": "referring", "status": "to label"}
    episodes = {"a.png": [OPTION_EPISODE, other, unsourced]}
    first, second = annotation(), annotation(question="find it too")
    records, counts = from_coco(document(first, second), frames, frames, episodes)
    assert [r["Q"] for r in records] == ["find it", "find it too"]
    assert records[0]["source"] == {"bag": "b1"} and "source" not in records[1]
    assert "question taken from the exported episode" not in counts
    # the frame's questions are matched by the file's name, wherever the tool put it
    moved = document(annotation(question=""), annotation(question=""), images=[
        {"id": 1, "file_name": "task_3/a.png", "width": 200, "height": 100}])
    (record, _), counts = from_coco(moved, frames, frames, {"a.png": [OPTION_EPISODE]})
    assert record["Q"] == "which colour is the bolt" and record["source"]["stamp_ns"] == 7
    assert counts["question taken from the exported episode"] == 2


def test_each_exported_frame_lists_its_questions_for_the_person_labelling_it():
    episodes = {"a.png": [OPTION_EPISODE, {"Q": "find it", "Q-type": "referring",
                                           "status": "to label"}],
                "c.png": []}
    sizes = {"a.png": (200, 100), "b.png": (64, 48), "c.png": (32, 32)}
    document = to_coco(records()[1:2], sizes, episodes)
    assert [image["file_name"] for image in document["images"]] == ["a.png", "c.png", "b.png"]
    assert document["images"][0]["finers_episodes"] == [
        {"question": "which colour is the bolt", "question_type": "option",
         "options": ["A. red", "B. blue"], "status": "pre-annotated"},
        {"question": "find it", "question_type": "referring", "options": None,
         "status": "to label"}]
    assert document["images"][1]["finers_episodes"] == []
    assert document["images"][2]["finers_episodes"] == []  # a record's frame the export lacks
    assert "finers_episodes" not in to_coco(records(), {"a.png": (2, 2), "b.png": (2, 2)})[
        "images"][0]
    fine = to_coco([{**records()[0], "area_percent": 0.123456}], {"a.png": (200, 100)})
    assert fine["annotations"][0]["area"] == 24.7  # 24.6912 px, to a tenth
    assert document["info"] == {
        "description": "FineRS-4k records for correction (finers-dataset export)"}
