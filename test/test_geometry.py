import numpy as np
import pytest

from finers_ros import geometry as geo

FRAMES = [
    (640, 480),
    (1280, 720),
    (1920, 1080),
    (3840, 2160),
    (4000, 3000),
    (7680, 4320),
    (2160, 3840),
    (600, 800),
]


@pytest.mark.parametrize("native", FRAMES)
def test_gse_box_round_trip_is_exact(native, rng):
    for _ in range(20):
        x1, y1 = rng.uniform(0, native[0] - 2), rng.uniform(0, native[1] - 2)
        box = (x1, y1, rng.uniform(x1, native[0] - 1), rng.uniform(y1, native[1] - 1))
        back = geo.gse_to_native_box(
            geo.native_to_gse_box(box, native, (1920, 1080)), native, (1920, 1080)
        )
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
        lpr_point = (
            (point[0] - crop.x0) * lpr[0] / crop.width,
            (point[1] - crop.y0) * lpr[1] / crop.height,
        )
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


def test_polygon_mask_is_the_ground_truth_rasterisation():
    # One rasteriser for polygons (data.annotations.gt_mask): vertices truncated, not rounded.
    from finers_ros.data.annotations import gt_mask

    polygon = [[1.6, 1.6], [5.6, 1.6], [5.6, 4.6], [1.6, 4.6]]
    assert np.array_equal(geo.polygon_to_mask(polygon, (8, 8)), gt_mask(polygon, (8, 8)))
    assert geo.mask_box(geo.polygon_to_mask(polygon, (8, 8))) == (1, 1, 5, 4)
    assert not hasattr(geo, "annotation_mask")  # gt_mask is the one for annotation fields


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


# Hand-computed cases: GSE box (1920x1080 frame) -> native region -> LPR crop -> LPR answer back.
@pytest.mark.parametrize(
    "native, gse_box, region, crop",
    [
        # 4K: x2, y2 -> native by 3840/1920 = 2160/1080 = 2; 512 region, 512 crop on its centre
        ((3840, 2160), (600, 300, 856, 556), (1200, 600, 1712, 1112), (1200, 600, 512, 512)),
        # 8K: factor 4; the 1024 region is larger than the 512 minimum, so the crop is 1024
        ((7680, 4320), (100, 50, 356, 306), (400, 200, 1424, 1224), (400, 200, 1024, 1024)),
        # 8K at the bottom-right corner: x2 = 1920 maps to 7680, one past the last pixel; the crop
        # is centred on the region as given (side 1024), not on a clipped one (side 1023)
        (
            (7680, 4320),
            (1664, 824, 1920, 1080),
            (6656, 3296, 7680, 4320),
            (6656, 3296, 1024, 1024),
        ),
        # portrait 2160x3840: x by 2160/1920 = 1.125, y by 3840/1080 = 3.5556;
        # side ceil(910.2) = 911,
        # x0 = round(1224.5625 - 455.5) = 769, y0 = round(2375.111 - 455.5) = 1920
        (
            (2160, 3840),
            (960, 540, 1217, 796),
            (1080, 1920, 1369.125, 2830.2222),
            (769, 1920, 911, 911),
        ),
        # 4K region past the bottom-right border: the 512 crop is shifted to 3840 - 512, 2160 - 512
        ((3840, 2160), (1700, 900, 1956, 1156), (3400, 1800, 3912, 2312), (3328, 1648, 512, 512)),
        # 4K region past the top-left border (negative corners): shifted to the origin
        ((3840, 2160), (-50, -20, 206, 236), (-100, -40, 412, 472), (0, 0, 512, 512)),
        # 640x480 frame: the crop is 512 wide but only the image's 480 high; x0 = round(53.33)
        (
            (640, 480),
            (800, 400, 1056, 656),
            (266.6667, 177.7778, 352, 291.5556),
            (53, 0, 512, 480),
        ),
    ],
)
def test_hand_computed_regions_and_crops(native, gse_box, region, crop):
    native_region = geo.gse_to_native_box(gse_box, native, (1920, 1080))
    assert native_region == pytest.approx(region, abs=1e-4)
    assert geo.crop_for_region(native_region, native, 512).as_list() == list(crop)


def test_hand_computed_lpr_answers_to_native():
    crop = geo.CropWindow(400, 200, 1024, 1024)  # 8K crop: the 512 LPR frame is half scale
    assert geo.lpr_to_native_box((256, 256, 511, 511), crop, (512, 512)) == (912, 712, 1422, 1222)
    assert geo.lpr_to_native_point((100, 50), crop, (512, 512)) == (600, 300)
    short = geo.CropWindow(53, 0, 512, 480)  # the 640x480 frame's crop, stretched to 512x512
    assert geo.lpr_to_native_box((0, 0, 511, 511), short, (512, 512)) == (53, 0, 564, 479.0625)
    assert geo.native_to_lpr_point((309.3333, 234.6667), short, (512, 512)) == pytest.approx(
        (256.3333, 250.3111), abs=1e-4
    )


def test_clip_point_moves_onto_the_box():
    assert geo.clip_point((5, 50), (10, 20, 30, 40)) == (10, 40)
    assert geo.clip_point((15, 25), (10, 20, 30, 40)) == (15, 25)


@pytest.mark.parametrize("region", [(float("nan"), 0, 10, 10), (0, 0, float("inf"), 10)])
def test_non_finite_region_is_a_geometry_error(region):
    with pytest.raises(geo.GeometryError, match="non-finite"):
        geo.crop_for_region(region, (3840, 2160), 512)


def test_absurd_finite_region_gives_a_crop_inside_the_frame():
    crop = geo.crop_for_region((-1e308, -1e308, 1e308, 1e308), (3840, 2160), 512)
    assert crop.as_list() == [0, 0, 3840, 2160]
    crop = geo.crop_for_region((1e307, 1e307, 1e308, 1e308), (3840, 2160), 512)
    assert crop.as_list() == [0, 0, 3840, 2160]
