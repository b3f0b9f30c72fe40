import numpy as np
import pytest

from finers_ros import geometry as geo

FRAMES = [(640, 480), (1280, 720), (1920, 1080), (3840, 2160), (4000, 3000), (7680, 4320), (2160, 3840), (600, 800)]


@pytest.mark.parametrize("native", FRAMES)
def test_gse_box_round_trip_is_exact(native, rng):
    for _ in range(20):
        x1, y1 = rng.uniform(0, native[0] - 2), rng.uniform(0, native[1] - 2)
        box = (x1, y1, rng.uniform(x1, native[0] - 1), rng.uniform(y1, native[1] - 1))
        back = geo.gse_to_native_box(geo.native_to_gse_box(box, native, (1920, 1080)), native, (1920, 1080))
        assert np.allclose(back, box, atol=1e-9)


def test_gse_scaling_ignores_aspect():
    # 4000x3000 frame: x scales by 4000/1920, y by 3000/1080 independently.
    box = geo.gse_to_native_box((960, 540, 1919, 1079), (4000, 3000), (1920, 1080))
    assert box == pytest.approx((2000, 1500, 1919 * 4000 / 1920, 1079 * 3000 / 1080))


@pytest.mark.parametrize("native", FRAMES)
def test_crop_is_shifted_inside_never_shrunk(native, rng):
    for _ in range(50):
        cx, cy = rng.uniform(0, native[0]), rng.uniform(0, native[1])
        region = (cx - 100, cy - 100, cx + 100, cy + 100)
        crop = geo.crop_for_region(region, native, 512)
        assert crop.width == min(512, native[0]) and crop.height == min(512, native[1])
        assert 0 <= crop.x0 and crop.x0 + crop.width <= native[0]
        assert 0 <= crop.y0 and crop.y0 + crop.height <= native[1]


def test_crop_centred_on_region_when_room():
    crop = geo.crop_for_region((1000, 800, 1255, 1055), (3840, 2160), 512)
    assert (crop.x0, crop.y0, crop.width, crop.height) == (872, 672, 512, 512)


def test_crop_grows_to_large_region_and_stays_square():
    crop = geo.crop_for_region((100, 100, 900, 499), (3840, 2160), 512)
    assert crop.width == crop.height == 800
    assert crop.contains_box((100, 100, 899, 499))


def test_nominal_256_region_of_4k_frame_gives_512_crop():
    region = geo.gse_to_native_box((600, 300, 856, 556), (3840, 2160), (1920, 1080))
    crop = geo.crop_for_region(region, (3840, 2160), 512)
    assert (crop.width, crop.height) == (512, 512) and (crop.x0, crop.y0) == (1200, 600)
    assert crop.x0 + crop.width == region[2] and crop.y0 + crop.height == region[3]


def test_border_region_is_shifted_not_clamped():
    crop = geo.crop_for_region((3700, 2050, 3839, 2159), (3840, 2160), 512)
    assert (crop.x0, crop.y0, crop.width, crop.height) == (3328, 1648, 512, 512)


@pytest.mark.parametrize("native", FRAMES)
def test_lpr_round_trip_maps_back_exactly(native, rng):
    lpr = (512, 512)
    for _ in range(20):
        region = (rng.uniform(0, native[0] - 300), rng.uniform(0, native[1] - 300))
        region = (*region, region[0] + 256, region[1] + 256)
        crop = geo.crop_for_region(region, native, 512)
        box = (crop.x0 + 10.5, crop.y0 + 20, crop.x0 + crop.width - 30, crop.y0 + crop.height - 1)
        back = geo.lpr_to_native_box(geo.native_to_lpr_box(box, crop, lpr), crop, lpr)
        assert np.allclose(back, box, atol=1e-9)
        point = (box[0], box[3])
        lpr_point = ((point[0] - crop.x0) * lpr[0] / crop.width, (point[1] - crop.y0) * lpr[1] / crop.height)
        assert np.allclose(geo.lpr_to_native_point(lpr_point, crop, lpr), point)


def test_iou_uses_inclusive_areas():
    assert geo.box_area((0, 0, 0, 0)) == 1
    assert geo.box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert geo.box_iou((0, 0, 9, 9), (10, 10, 19, 19)) == 0.0
    assert geo.box_iou((0, 0, 9, 9), (5, 0, 14, 9)) == pytest.approx(50 / 150)


def test_polygon_mask_and_boxes():
    mask = geo.polygon_to_mask([[10, 10], [19, 10], [19, 19], [10, 19]], (40, 30))
    assert mask.shape == (30, 40) and mask.sum() == 100
    assert geo.mask_box(mask) == (10, 10, 19, 19)
    assert geo.polygon_box([[10, 12], [19, 10], [15, 25]]) == (10, 10, 19, 25)
    assert geo.mask_box(np.zeros((5, 5), bool)) is None
    two = geo.annotation_mask([[[0, 0], [4, 0], [4, 4], [0, 4]], [[10, 10], [14, 10], [14, 14], [10, 14]]], (20, 20))
    assert two.sum() == 50


def test_paste_mask_lands_at_crop_origin():
    crop = geo.CropWindow(30, 20, 8, 6)
    small = np.zeros((6, 8), bool)
    small[2, 3] = True
    full = geo.paste_mask(small, crop, (64, 48))
    assert full.shape == (48, 64) and np.argwhere(full).tolist() == [[22, 33]]


def test_resize_image_to_nominal_frame():
    image = np.zeros((2160, 3840, 3), np.uint8)
    assert geo.resize_image(image, (1920, 1080)).shape == (1080, 1920, 3)
    assert geo.resize_image(image, (3840, 2160)) is image
