import numpy as np
import pytest

from finers_ros.metrics import (Sample, ciou, giou, intersection_union, open_correct, option_correct, size_bucket,
                                summarize)


def square(size, x0, y0, side):
    mask = np.zeros((size, size), bool)
    mask[y0:y0 + side, x0:x0 + side] = True
    return mask


def test_intersection_union_on_hand_made_masks():
    gt = square(20, 0, 0, 10)  # 100 px
    pred = square(20, 5, 0, 10)  # overlaps 50 px
    assert intersection_union(pred, gt) == (50, 150)
    assert intersection_union(None, gt) == (0, 100)
    with pytest.raises(ValueError):
        intersection_union(np.zeros((3, 3), bool), gt)


def test_giou_and_ciou_differ_as_defined():
    pairs = [(50, 150), (10, 10), (0, 0)]  # 1/3, 1, empty/empty counts 1
    assert giou(pairs) == pytest.approx((1 / 3 + 1 + 1) / 3)
    assert ciou(pairs) == pytest.approx(60 / 160)
    assert giou([]) is None and ciou([]) is None


def test_size_buckets():
    assert size_bucket(0.06) == "S" and size_bucket(0.055) == "XS"
    assert size_bucket(0.017) == "XS" and size_bucket(0.0169) == "XXS"


def test_option_and_open_answers():
    assert option_correct("B", "B") and option_correct("The answer is (B).", "B")
    assert not option_correct("a red one", "A")  # the article is not an option
    assert not option_correct("A or B", "A")
    assert not option_correct("C", "B")
    assert open_correct("The object is White.", "white")  # case-insensitive
    assert open_correct("It is a triangl", "triangle")
    assert not open_correct("It is a circle", "triangle")


def test_summary_buckets_vqa_and_empty_subsets():
    samples = [
        Sample("referring", 0.01, 50, 100, True, None, "colors", timings_ms={"gse": 10, "total": 20}, grounding="colour"),
        Sample("referring", 0.03, 0, 80, False, None, "colors", failed=True, timings_ms={"total": 5}),
        Sample("option", 0.03, 0, 40, True, True, "colors"),
        Sample("reasoning", 0.01, 0, 40, False, False, "shape"),
    ]
    metrics = summarize(samples)
    seg = metrics["segmentation"]
    assert seg["all"]["count"] == 4 and seg["all"]["gIoU"] == pytest.approx(0.5 / 4)
    assert seg["S"] == {"gIoU": None, "cIoU": None, "count": 0}
    assert seg["XXS"]["count"] == 2 and seg["XS"]["count"] == 2
    assert metrics["region_recall"] == 0.5 and metrics["failed"] == 1
    assert metrics["MVQA"]["accuracy"] == 1.0 and metrics["OVQA"]["accuracy"] == 0.0
    assert metrics["MVQA"]["per_attribute"]["colors"]["count"] == 1
    assert metrics["latency_ms"]["total"]["count"] == 2 and metrics["latency_ms"]["gse"]["median"] == 10
    assert metrics["referring_by_grounding"]["colour"]["gIoU"] == 0.5
    empty = summarize([])
    assert empty["segmentation"]["all"]["gIoU"] is None and empty["MVQA"]["accuracy"] is None
