import pickle

import numpy as np
import pytest
import torch

from finers_ros.config import SegmenterConfig
from finers_ros.segmenters import build_segmenter
from finers_ros.segmenters.sam import SamSegmenter, TorchDecoder
from finers_ros.segmenters.sam_model import (
    SamCheckpointError,
    build_tiny_sam,
    load_sam,
    read_state_dict,
)
from finers_ros.segmenters.sam_onnx import OnnxRuntimeDecoder


def test_loader_round_trips_safetensors(tiny_sam_files):
    checkpoint, _ = tiny_sam_files
    sam = load_sam("tiny", checkpoint)
    saved = read_state_dict(checkpoint)
    for name, value in sam.state_dict().items():
        assert torch.equal(value, saved[name]), name


def test_pth_loads_weights_only(tmp_path, tiny_sam_files):
    checkpoint, _ = tiny_sam_files
    state = read_state_dict(checkpoint)
    torch.save(state, tmp_path / "sam.pth")
    sam = load_sam("tiny", tmp_path / "sam.pth")
    assert torch.equal(
        sam.state_dict()["mask_decoder.iou_token.weight"], state["mask_decoder.iou_token.weight"]
    )


class Exploit:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weights": Exploit()}, f)
    with pytest.raises(SamCheckpointError, match="safely"):
        load_sam("tiny", path)


def test_wrong_architecture_and_missing_file(tmp_path, tiny_sam_files):
    checkpoint, _ = tiny_sam_files
    with pytest.raises(SamCheckpointError, match="does not fit"):
        load_sam("vit_b", checkpoint)
    with pytest.raises(SamCheckpointError, match="not found"):
        load_sam("tiny", tmp_path / "missing.safetensors")
    with pytest.raises(SamCheckpointError, match="unknown SAM model type"):
        load_sam("vit_z", None)


@pytest.mark.parametrize("crop_hw", [(512, 512), (640, 640), (480, 512), (512, 300), (700, 900)])
def test_onnxruntime_agrees_with_torch(tiny_sam_files, crop_hw, rng):
    checkpoint, onnx_path = tiny_sam_files
    sam = load_sam("tiny", checkpoint)
    torch_segmenter = SamSegmenter(sam, TorchDecoder(sam))
    onnx_segmenter = SamSegmenter(sam, OnnxRuntimeDecoder(onnx_path))
    h, w = crop_hw
    crop = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    box = (0.3 * w, 0.25 * h, 0.6 * w, 0.7 * h)
    points = [(0.4 * w, 0.5 * h), (0.5 * w, 0.45 * h)]
    embedding = torch_segmenter.embed(crop)  # once per request, shared by both decoders
    a = torch_segmenter.decode(embedding, (h, w), box, points)
    b = onnx_segmenter.decode(embedding, (h, w), box, points)
    assert a.mask.shape == b.mask.shape == (h, w)
    assert a.mask.any()
    iou = (a.mask & b.mask).sum() / (a.mask | b.mask).sum()
    assert iou >= 0.99
    assert a.score == pytest.approx(b.score, abs=1e-4)


def test_onnx_graph_has_no_shape_tensor_inputs_and_dynamic_points(tiny_sam_files):
    import onnx

    _, onnx_path = tiny_sam_files
    model = onnx.load(str(onnx_path))
    inputs = {i.name: i for i in model.graph.input}
    assert set(inputs) == {"image_embeddings", "point_coords", "point_labels", "crop_like"}
    assert all(i.type.tensor_type.elem_type != onnx.TensorProto.INT64 for i in inputs.values())
    dims = inputs["point_coords"].type.tensor_type.shape.dim
    assert dims[1].dim_param == "num_points"


def test_segmenter_built_from_config_embeds_once_per_request(tiny_sam_files, rng, monkeypatch):
    checkpoint, onnx_path = tiny_sam_files
    segmenter = build_segmenter(
        SegmenterConfig(
            backend="sam",
            runtime="onnxruntime",
            model_type="tiny",
            checkpoint=str(checkpoint),
            decoder_onnx=str(onnx_path),
        )
    )
    calls = []
    original = segmenter.predictor.set_image
    monkeypatch.setattr(
        segmenter.predictor, "set_image", lambda *a, **k: (calls.append(1), original(*a, **k))
    )
    crop = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    result = segmenter.segment(crop, (100, 100, 300, 300), [(150, 150), (200, 200)])
    assert result.mask.shape == (512, 512) and len(calls) == 1


def test_tensorrt_runtime_fails_clearly_without_tensorrt(tiny_sam_files):
    pytest.importorskip("torch")
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed here")
    except Exception:
        pass
    from finers_ros.segmenters.sam_tensorrt import TensorRTDecoder

    _, onnx_path = tiny_sam_files
    with pytest.raises(RuntimeError, match="needs NVIDIA TensorRT"):
        TensorRTDecoder(onnx_path)


def test_tiny_sam_uses_stock_geometry():
    sam = build_tiny_sam()
    assert sam.image_encoder.img_size == 1024 and sam.prompt_encoder.image_embedding_size == (
        64,
        64,
    )


@pytest.mark.parametrize(
    "crop_hw, box, points",
    [
        ((512, 512), (120, 140, 300, 330), [(200, 220), (250, 260)]),
        ((480, 512), (10, 5, 100, 90), [(50, 40), (60, 70)]),
        ((700, 900), (400, 300, 880, 690), [(600, 500), (700, 450)]),
    ],
)
def test_segmenter_matches_stock_sam_predictor(tiny_sam_files, crop_hw, box, points, rng):
    """
    Match the reference prompting through segment_anything's own SamPredictor.predict.

    Box and both points as positive clicks, multimask output, the mask with the best
    predicted IoU.
    """
    checkpoint, onnx_path = tiny_sam_files
    sam = load_sam("tiny", checkpoint)
    h, w = crop_hw
    crop = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    crop[h // 4:h // 2, w // 4:w // 2] = (220, 30, 30)
    ours = SamSegmenter(sam, TorchDecoder(sam))
    embedding = ours.embed(crop)  # the stock predictor's set_image (one encoder run per case)
    masks, scores, _ = ours.predictor.predict(
        point_coords=np.array(points, np.float32),
        point_labels=np.ones(2),
        box=np.array(box, np.float32),
        multimask_output=True,
    )
    expected = masks[int(np.argmax(scores))]
    assert expected.any() and not expected.all()

    mine = ours.decode(embedding, crop_hw, box, points)
    assert np.array_equal(mine.mask, expected)
    assert mine.score == pytest.approx(float(scores.max()), abs=1e-5)
    onnx = SamSegmenter(sam, OnnxRuntimeDecoder(onnx_path)).decode(embedding, crop_hw, box, points)
    assert (onnx.mask & expected).sum() / (onnx.mask | expected).sum() >= 0.99
