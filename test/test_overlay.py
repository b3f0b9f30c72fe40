import numpy as np
import pytest

from finers_ros.geometry import CropWindow
from finers_ros.overlay import BOX_COLOUR, MASK_TINT, draw_overlay
from finers_ros.result import FineRSResult


def found_result(size=(3840, 2160)):
    mask = np.zeros((size[1], size[0]), bool)
    mask[1000:1040, 2000:2040] = True
    return FineRSResult(
        instruction="find the red screw",
        found=True,
        answer="The object is found.",
        box=(2000, 1000, 2039, 1039),
        points=[(2010, 1010), (2030, 1030)],
        region=(1764, 764, 2275, 1275),
        crop=CropWindow(1764, 764, 512, 512),
        mask=mask,
    )


def test_overlay_is_downscaled_and_shows_mask_box_and_inset():
    image = np.full((2160, 3840, 3), 90, np.uint8)
    overlay = draw_overlay(image, found_result(), max_width=1280, label="bring-up backend")
    assert overlay.shape == (720, 1280, 3) and overlay.dtype == np.uint8
    colours = {tuple(c) for c in overlay.reshape(-1, 3)}
    assert tuple(BOX_COLOUR) in colours and tuple(MASK_TINT) in colours
    # the magnified inset sits in the top-right corner and is not the plain background
    assert (overlay[20:200, -200:] != 90).any()


@pytest.mark.parametrize("result", [
    FineRSResult(instruction="find it"),
    FineRSResult(instruction="find it", error="unparsable GSE output", error_stage="gse"),
])
def test_overlay_without_detection(result):
    image = np.zeros((480, 640, 3), np.uint8)
    overlay = draw_overlay(image, result, max_width=1280)
    assert overlay.shape == (480, 640, 3)  # never upscaled


def test_a_one_pixel_wide_mask_is_still_tinted_on_the_shrunk_frame():
    """A wire or a scratch: each canvas pixel with any mask pixel under it is tinted."""
    image = np.full((2160, 3840, 3), 90, np.uint8)
    mask = np.zeros((2160, 3840), bool)
    mask[1000:1200, 2001] = True  # 1 px wide, shrunk 3x
    mask[1500, 3000] = True  # a single pixel
    overlay = draw_overlay(image, FineRSResult(instruction="find the wire", found=True,
                                               answer="found", mask=mask), inset=False)
    tinted = (overlay != 90).any(axis=2)
    assert tinted[333:400, 667].all() and tinted[500, 1000]
    assert tinted[333:400].sum() == 400 - 333  # the wire only: one canvas column
