"""
The streaming SAM2 tracker on the CPU with random weights: shapes, crop, memory, loss path.

Random weights say nothing about accuracy; what is checked here is the tracker around the
model: the seed mask survives the trip native -> crop -> SAM2 -> native, only crop-sized
windows are read, the memory bank stays bounded, the object score drives searching -> lost
(forced by setting the score head's output), and bad input is refused.
"""
from __future__ import annotations

import contextlib
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from finers_ros.tracking import build_tracker, FrameView, TrackerConfig, TrackerError
from finers_ros.tracking import TrackState
from finers_ros.tracking.config import Sam2Config
from finers_ros.tracking.sam2_tracker import input_side, Sam2Tracker

FRAME = (640, 480)  # (W, H): larger than the crop, not square
CROP = 128  # the smallest crop: a fraction of a second per SAM2 step on a CPU


def make_config(crop_size=CROP, memory_frames=7, lost_after=2, threshold=0.0, **sam2):
    return TrackerConfig(backend="sam2", lost_after=lost_after, sam2=Sam2Config(
        device="cpu", crop_size=crop_size, memory_frames=memory_frames,
        object_score_threshold=threshold, **sam2))


def scene(size=FRAME, centre=(561, 397), axes=(23, 14), seed=0):
    """Draw a red ellipse (not a circle, at odd offsets) on noise; return pixels and mask."""
    width, height = size
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    ys, xs = np.mgrid[0:height, 0:width]
    mask = ((xs - centre[0]) / axes[0]) ** 2 + ((ys - centre[1]) / axes[1]) ** 2 <= 1.0
    pixels[mask] = (220, 30, 30)
    return pixels, mask


def tight_box(mask):
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))


@contextlib.contextmanager
def object_score(tracker, logit):
    """Make SAM2's object score exactly ``logit`` on every frame (the head's last layer)."""
    head = tracker.model.sam_mask_decoder.pred_obj_score_head.layers[-1]
    saved = (head.weight.detach().clone(), head.bias.detach().clone())
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(logit)
    try:
        yield
    finally:
        with torch.no_grad():
            head.weight.copy_(saved[0])
            head.bias.copy_(saved[1])


class RecordingView(FrameView):
    """A FrameView that records the windows a tracker reads."""

    def __init__(self, pixels):
        super().__init__(pixels)
        self.windows = []

    def window(self, x0, y0, x1, y1):
        self.windows.append((x0, y0, x1, y1))
        return super().window(x0, y0, x1, y1)


def check_update(update, size):
    """Check that a tracking update's box, ROI and mask agree, inside the ``(W, H)`` frame."""
    assert update.state is TrackState.TRACKING, update.reason
    x0, y0, w, h = update.mask_roi
    assert update.mask.dtype == bool and update.mask.shape == (h, w)
    assert 0 <= x0 and 0 <= y0 and x0 + w <= size[0] and y0 + h <= size[1]
    assert update.box == (x0, y0, x0 + w - 1, y0 + h - 1)
    mask = update.mask  # tight: every border row and column holds a pixel
    assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def centroid_gap(a, b):
    """Return ``(dx, dy)`` between two masks' centroids (a shift of the mapping shows here)."""
    (ya, xa), (yb, xb) = np.nonzero(a), np.nonzero(b)
    return abs(xa.mean() - xb.mean()), abs(ya.mean() - yb.mean())


@pytest.mark.parametrize("crop_size", [CROP, 200])
def test_seed_mask_comes_back_in_native_pixels(crop_size):
    """Near the frame's corner the crop is shifted inside; 200 px is resized to 192 for SAM2."""
    pixels, mask = scene()
    tracker = build_tracker(make_config(crop_size=crop_size))
    assert isinstance(tracker, Sam2Tracker) and tracker.side == input_side(crop_size)
    view = RecordingView(pixels)
    update = tracker.seed(view, tight_box(mask), mask)
    check_update(update, FRAME)
    assert iou(update.full_mask(FRAME), mask) >= 0.9
    assert max(centroid_gap(update.full_mask(FRAME), mask)) < 0.5
    assert all(max(x1 - x0, y1 - y0) <= crop_size for x0, y0, x1, y1 in view.windows)
    assert update.confidence > 0.99  # a seed mask is SAM2's certain input (logit 10)
    assert tracker.memory_entries == 1


def test_sizes_of_sam2_inputs():
    assert [input_side(s) for s in (128, 200, 256, 500, 512, 1000, 2048)] == \
        [128, 192, 256, 512, 512, 992, 2048]


def test_update_follows_the_target_in_a_crop():
    pixels, mask = scene()
    tracker = build_tracker(make_config())
    tracker.seed(FrameView(pixels), tight_box(mask), mask)
    moved, _ = scene(centre=(120, 63), seed=1)  # near the other corner: clipped to the frame
    view = RecordingView(moved)
    with object_score(tracker, 3.0):
        update = tracker.update(view)
    check_update(update, FRAME)
    assert update.confidence == pytest.approx(1 / (1 + math.exp(-3.0)), abs=1e-6)
    assert view.windows and all(x1 - x0 <= CROP and y1 - y0 <= CROP
                                for x0, y0, x1, y1 in view.windows)
    # the next crop is centred on this frame's box (shifted to stay inside the frame)
    box = update.box
    view = RecordingView(moved)
    with object_score(tracker, 3.0):
        tracker.update(view)
    x0, y0, x1, y1 = view.windows[0]
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    assert (x1 - x0, y1 - y0) == (CROP, CROP)
    for lo, hi, c, extent in ((x0, x1, centre[0], FRAME[0]), (y0, y1, centre[1], FRAME[1])):
        assert lo == int(np.clip(round(c - CROP / 2), 0, extent - CROP))


def test_frame_smaller_than_the_crop_is_padded():
    pixels, mask = scene(size=(180, 150), centre=(131, 52), axes=(17, 9))
    tracker = build_tracker(make_config())
    update = tracker.seed(FrameView(pixels), tight_box(mask), mask)
    check_update(update, (180, 150))
    assert iou(update.full_mask((180, 150)), mask) >= 0.9
    assert max(centroid_gap(update.full_mask((180, 150)), mask)) < 0.5
    with object_score(tracker, 2.0):
        check_update(tracker.update(FrameView(pixels)), (180, 150))


def test_memory_bank_keeps_the_seed_and_the_newest_frames():
    pixels, mask = scene()
    tracker = build_tracker(make_config(memory_frames=2))
    tracker.seed(FrameView(pixels), tight_box(mask), mask)
    sizes = []
    with object_score(tracker, 2.0):
        for step in range(1, 4):
            assert tracker.update(FrameView(pixels)).tracking
            assert tracker.memory_entries == 1 + min(step, 2)
            sizes.append(tracker.memory_bytes)
    assert sizes[1] == sizes[2] > sizes[0]
    assert list(tracker._recent) == [2, 3] and list(tracker._cond) == [0]
    tracker.close()
    assert tracker.memory_entries == 0
    with pytest.raises(TrackerError, match="before seed"):
        tracker.update(FrameView(pixels))


def test_low_object_score_searches_then_loses_then_reacquires():
    pixels, mask = scene()
    tracker = build_tracker(make_config(lost_after=2, threshold=1.5))
    seeded = tracker.seed(FrameView(pixels), tight_box(mask), mask)
    states = []
    with object_score(tracker, 1.0):  # above SAM2's own 0, below our threshold
        for _ in range(2):
            update = tracker.update(FrameView(pixels))
            assert update.box == seeded.box and update.mask is None
            assert update.confidence == pytest.approx(1 / (1 + math.exp(-1.0)), abs=1e-6)
            assert "object score 1.00 < 1.50" in update.reason
            states.append(update.state)
    assert states == [TrackState.SEARCHING, TrackState.LOST]
    assert tracker.memory_entries == 1  # nothing written to memory while not seen
    with object_score(tracker, -8.0):  # SAM2's own "not present": also the reason given
        assert tracker.update(FrameView(pixels)).state is TrackState.LOST
    with object_score(tracker, 1.5):  # exactly on the threshold: seen
        update = tracker.update(FrameView(pixels))
    check_update(update, FRAME)
    assert tracker.memory_entries == 2
    with object_score(tracker, 1.0):  # one miss after a re-acquisition: searching again
        assert tracker.update(FrameView(pixels)).state is TrackState.SEARCHING


def test_bad_input_is_refused():
    pixels, mask = scene()
    tracker = build_tracker(make_config())
    with pytest.raises(TrackerError, match="before seed"):
        tracker.update(FrameView(pixels))
    with pytest.raises(TrackerError, match="does not match the frame"):
        tracker.seed(FrameView(pixels), tight_box(mask), mask[:-1])
    with pytest.raises(TrackerError, match="no pixel"):
        tracker.seed(FrameView(pixels), (10.0, 10.0, 40.0, 30.0), mask)  # mask far off
    with pytest.raises(TrackerError, match="off the"):
        tracker.seed(FrameView(pixels), (700.0, 10.0, 720.0, 30.0), None)
    with pytest.raises(TrackerError, match="cannot track"):
        tracker.seed(FrameView(pixels), (40.0, 10.0, 20.0, 30.0), None)
    tracker.seed(FrameView(pixels), tight_box(mask), mask)
    smaller = np.ascontiguousarray(pixels[:, :600])
    with pytest.raises(TrackerError, match="frame size changed from 640x480 to 600x480"):
        tracker.update(FrameView(smaller))


def test_box_seed_prompts_sam2_with_the_box():
    """Without a mask the box is SAM2's prompt: a mask or a clear error, never a crash."""
    pixels, mask = scene()
    tracker = build_tracker(make_config())
    with object_score(tracker, 2.0):
        update = tracker.seed(FrameView(pixels), tight_box(mask), None)
    check_update(update, FRAME)
    with object_score(tracker, -5.0):  # SAM2 blanks the mask of an absent object
        with pytest.raises(TrackerError, match="found no target in the seed box"):
            tracker.seed(FrameView(pixels), tight_box(mask), None)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_cuda_device_without_cuda_is_refused():
    config = make_config()
    config.sam2.device = "cuda"
    with pytest.raises(TrackerError, match="sam2.device='cuda'.*no CUDA"):
        Sam2Tracker(config)


def test_importing_tracking_needs_no_sam2_and_building_says_how():
    code = (
        "import sys\n"
        "sys.modules['sam2'] = None  # as if not installed\n"
        "import finers_ros.tracking as tracking\n"
        "tracking.build_tracker(tracking.TrackerConfig())  # the CPU default\n"
        "try:\n"
        "    tracking.build_tracker(tracking.TrackerConfig(backend='sam2'))\n"
        "except tracking.TrackerError as exc:\n"
        "    print('refused:', exc)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "refused: tracker backend 'sam2' needs Meta's sam2 package" in result.stdout
    assert "SAM2_BUILD_CUDA=0 pip install --no-build-isolation" in result.stdout


class NotATensor:
    """Pickled code in a checkpoint: ``weights_only`` loading must refuse it."""


def test_checkpoint_loads_tensors_only(tmp_path):
    """A checkpoint saved from a 128-px model loads into a 512-px one (no size in weights)."""
    pixels, mask = scene()
    source = build_tracker(make_config())
    state = {k: v.clone() for k, v in source.model.state_dict().items()}
    key = "sam_mask_decoder.pred_obj_score_head.layers.2.bias"
    state[key] = torch.full_like(state[key], 0.25)  # differs from the random weights
    path = tmp_path / "sam2.pt"
    torch.save({"model": state}, path)
    loaded = build_tracker(make_config(crop_size=512, checkpoint=str(path)))
    assert loaded.side == 512
    assert torch.equal(loaded.model.state_dict()[key], state[key])
    assert not torch.equal(source.model.state_dict()[key], state[key])

    pickled = tmp_path / "pickled.pt"
    torch.save({"model": state, "extra": NotATensor()}, pickled)
    with pytest.raises(TrackerError, match="weights_only"):
        build_tracker(make_config(checkpoint=str(pickled)))
    partial = tmp_path / "partial.pt"
    torch.save({"model": {k: v for k, v in state.items() if k != key}}, partial)
    with pytest.raises(TrackerError, match="1 missing keys"):
        build_tracker(make_config(checkpoint=str(partial)))
    with pytest.raises(TrackerError, match="cannot read"):
        build_tracker(make_config(checkpoint=str(tmp_path / "absent.pt")))
