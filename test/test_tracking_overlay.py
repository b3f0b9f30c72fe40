"""The tracked-frame overlay: what a person sees of each track on a downscaled 4K frame."""
from __future__ import annotations

import numpy as np
import pytest

from finers_ros.overlay import MASK_TINT
from finers_ros.tracking.base import TrackState, TrackUpdate
from finers_ros.tracking.frames import FrameView
from finers_ros.tracking.overlay import STATE_COLOURS, draw_tracked_frame

WIDTH, HEIGHT = 3840, 2160


def grey_frame() -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), 90, np.uint8)


def tracking_update(x0=2000, y0=1000, side=12) -> TrackUpdate:
    """Return a 12 px target's update: 4 px once the frame is shrunk 3x."""
    mask = np.ones((side, side), bool)
    return TrackUpdate(TrackState.TRACKING, (x0, y0, x0 + side - 1, y0 + side - 1), 0.9,
                       mask, (x0, y0, side, side))


def test_a_small_tracked_mask_is_tinted_on_the_shrunk_frame_and_boxed():
    canvas = draw_tracked_frame(FrameView(grey_frame()), [("track-1", tracking_update())])
    assert canvas.shape == (720, 1280, 3) and canvas.dtype == np.uint8
    inside = canvas[334:337, 668:671].reshape(-1, 3).astype(int)  # (2000..2011)/3
    expected = (0.45 * 90 + 0.55 * np.array(MASK_TINT)).astype(int)
    assert np.abs(inside - expected).max() <= 1
    outside = canvas[100:200, 100:200]
    assert (outside == 90).all()
    green = (canvas == np.array(STATE_COLOURS[TrackState.TRACKING], np.uint8)).all(axis=2)
    assert green[320:350, 650:690].any()  # the box around it


def test_a_one_pixel_mask_still_shows_when_shrunk():
    mask = np.zeros((12, 12), bool)
    mask[5, 5] = True
    update = TrackUpdate(TrackState.TRACKING, (2005, 1005, 2005, 1005), 0.9, mask,
                         (2000, 1000, 12, 12))
    canvas = draw_tracked_frame(FrameView(grey_frame()), [("t", update)])
    tinted = (canvas[:, :, 0] > 150) & (canvas[:, :, 1] < 60)
    assert tinted.sum() >= 1


def test_bgr_frames_are_drawn_in_rgb():
    rgb = grey_frame()
    rgb[:, :, 0] = 200  # red
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    tracks = [("t", tracking_update())]
    assert np.array_equal(draw_tracked_frame(FrameView(rgb), tracks),
                          draw_tracked_frame(FrameView(bgr, "bgr"), tracks))


def test_a_lost_track_shows_its_last_box_in_its_colour_and_no_mask():
    lost = TrackUpdate(TrackState.LOST, (600, 300, 640, 340), 0.1, reason="target not seen")
    canvas = draw_tracked_frame(FrameView(grey_frame()), [("t", lost)], max_width=1920)
    assert canvas.shape == (1080, 1920, 3)
    red = (canvas == np.array(STATE_COLOURS[TrackState.LOST], np.uint8)).all(axis=2)
    assert red[140:180, 290:330].any()
    assert not (canvas[155:165, 305:315] != 90).any()  # inside the box: no tint


def test_the_frame_buffer_is_not_modified():
    frame = grey_frame()
    draw_tracked_frame(FrameView(frame), [("t", tracking_update())])
    assert (frame == 90).all()


def test_the_service_hands_each_live_frame_once_with_every_tracks_report():
    """Two tracks: one call per live frame after both reports, catch-up frames not shown."""
    from test_tracking import Reports, header, track_frame

    from finers_ros.data.moving import moving_sequence
    from finers_ros.tracking.service import TrackingService

    sequence = moving_sequence("pan", seed=0, frames=5)
    frames = [frame for frame, _ in sequence]
    reports, shown = Reports(), []
    service = TrackingService(reports, on_frame=lambda frame, rs: shown.append(
        (frame.seq, sorted(r.track_id for r in rs))))
    service.start_worker()
    try:
        ids = sorted(service.start(f"r{n}", "find it", sequence.seed_frame, 0, header(0),
                                   sequence.seed_box, sequence.seed_mask) for n in range(2))
        for seq, image in enumerate(frames[1:], start=1):
            service.put_frame(track_frame(image, seq))
            assert reports.wait(lambda items: sum(r.frame.seq == seq for r in items) == 2)
    finally:
        service.stop_worker()
    assert shown and all(track_ids == ids for _, track_ids in shown)
    seqs = [seq for seq, _ in shown]
    assert seqs == sorted(set(seqs))  # each frame at most once, in order
    assert seqs[-1] == len(frames) - 1


def test_sam2_node_parameters_reach_the_tracker_settings():
    from dataclasses import replace

    from finers_ros.ros.params import NodeSettings, parameter_defaults
    from finers_ros.ros.tracks import tracker_config

    settings = NodeSettings(**parameter_defaults()).validate()
    default = tracker_config(settings)
    assert default.backend == "template" and default.sam2.checkpoint is None
    settings = replace(settings, tracker_backend="sam2", track_sam2_checkpoint="/w/sam2.pt",
                       track_sam2_device="cuda:1", track_sam2_crop_px=1024,
                       track_sam2_memory_frames=3,
                       track_sam2_model_config="configs/sam2.1/sam2.1_hiera_l.yaml")
    config = tracker_config(settings).validate()
    assert (config.backend, config.sam2.checkpoint, config.sam2.device, config.sam2.crop_size,
            config.sam2.memory_frames, config.sam2.model_config) == (
        "sam2", "/w/sam2.pt", "cuda:1", 1024, 3, "configs/sam2.1/sam2.1_hiera_l.yaml")


def test_the_label_of_a_target_at_the_top_edge_is_drawn_under_its_box():
    update = tracking_update(x0=2000, y0=0, side=30)  # canvas rows 0..10
    canvas = draw_tracked_frame(FrameView(grey_frame()), [("track-1", update)])
    green = (canvas == np.array(STATE_COLOURS[TrackState.TRACKING], np.uint8)).all(axis=2)
    columns = slice(700, 900)  # right of the box: only the label's text is there
    rows = np.nonzero(green[:, columns].any(axis=1))[0]
    assert rows.size and rows.min() > 14  # all of it below the box (10 px + padding)


def test_the_track_node_parameters_reach_the_tracking_service():
    """A camera slower than 0.5 Hz must not read as stopped: the stall bound is a parameter."""
    from dataclasses import replace

    from finers_ros.ros.params import NodeSettings, parameter_defaults
    from finers_ros.ros.tracks import service_options

    settings = NodeSettings(**parameter_defaults()).validate()
    assert service_options(settings)["stall_s"] == 2.0
    settings = replace(settings, track_stall_s=10.0, track_max_tracks=3, track_max_age_s=60.0,
                       track_reacquire="cascade", track_ring_frames=5, track_ring_mb=64.0)
    assert service_options(settings) == {
        "max_tracks": 3, "max_age_s": 60.0, "reacquire": "cascade", "ring_frames": 5,
        "ring_bytes": 64 * 2 ** 20, "stall_s": 10.0}
    with pytest.raises(ValueError, match="track_stall_s"):
        replace(settings, track_stall_s=0.0).validate()
