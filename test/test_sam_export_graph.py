"""
The exported SAM graphs against PyTorch, exported here (not shared through a fixture).

The decoder graph must give the stock decoder's masks for any crop size and number of
points (its axes are dynamic), the encoder graph the stock embedding, and the int8 graph
must quantise the matrix products only.
"""
import numpy as np
import pytest
import torch

from finers_ros.segmenters.sam import SamSegmenter, TorchDecoder, prompt_arrays
from finers_ros.segmenters.sam_encoder import OnnxRuntimeEncoder, TorchEncoder
from finers_ros.segmenters.sam_export import export_decoder, export_encoder, quantize_int8
from finers_ros.segmenters.sam_model import build_tiny_sam
from finers_ros.segmenters.sam_onnx import OnnxRuntimeDecoder


@pytest.fixture(scope="module")
def sam():
    torch.manual_seed(3)
    return build_tiny_sam()


def test_the_decoder_graph_gives_the_stock_decoders_logits_for_any_crop_and_points(
        sam, tmp_path):
    path = export_decoder(sam, tmp_path / "graphs" / "decoder.onnx")
    exported, stock = OnnxRuntimeDecoder(path), TorchDecoder(sam)
    segmenter = SamSegmenter(sam, stock)
    rng = np.random.default_rng(4)
    for (h, w), count in (((512, 512), 2), ((300, 700), 1), ((900, 410), 3), ((64, 48), 2)):
        crop = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
        embedding = segmenter.embed(crop)
        box = (0.2 * w, 0.3 * h, 0.7 * w, 0.8 * h)
        points = [(0.3 * w + 5 * i, 0.5 * h) for i in range(count)]
        coords, labels = prompt_arrays(box, points)
        coords = segmenter.predictor.transform.apply_coords(coords, (h, w)).astype(np.float32)
        masks, iou = exported.decode(embedding, coords, labels, (h, w))
        want_masks, want_iou = stock.decode(embedding, coords, labels, (h, w))
        assert masks.shape == want_masks.shape == (3, h, w)
        np.testing.assert_allclose(masks, want_masks, atol=2e-3, rtol=1e-3)
        np.testing.assert_allclose(iou, want_iou, atol=1e-4)


def test_the_decoder_graphs_inputs_outputs_and_dynamic_axes(sam, tmp_path):
    import onnx

    model = onnx.load(str(export_decoder(sam, tmp_path / "decoder.onnx")))

    def dims(values):
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in values}

    assert dims(model.graph.input) == {
        "image_embeddings": [1, 32, 64, 64], "point_coords": [1, "num_points", 2],
        "point_labels": [1, "num_points"], "crop_like": ["crop_h", "crop_w"]}
    outputs = dims(model.graph.output)
    assert list(outputs) == ["masks", "iou_predictions"]
    assert outputs["masks"][2:] == ["crop_h", "crop_w"]
    assert model.opset_import[0].version == 17


def test_the_encoder_graph_gives_the_stock_embedding(sam, tmp_path):
    import onnx

    path = export_encoder(sam, tmp_path / "graphs" / "encoder.onnx")
    crop = np.random.default_rng(5).integers(0, 255, (300, 420, 3), dtype=np.uint8)
    exported = OnnxRuntimeEncoder(sam, path).embed(crop)
    assert torch.allclose(exported, TorchEncoder(sam).embed(crop), atol=1e-4, rtol=1e-4)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["image_embeddings"]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch" and model.opset_import[0].version == 17


def test_the_int8_encoder_quantises_the_matrix_products_only(sam, tmp_path):
    import onnx

    fp32 = export_encoder(sam, tmp_path / "encoder.onnx")
    int8 = quantize_int8(fp32, tmp_path / "encoder.int8.onnx")
    assert int8 == tmp_path / "encoder.int8.onnx"
    model = onnx.load(str(int8))
    ops = {node.op_type for node in model.graph.node}
    assert "MatMulInteger" in ops and "ConvInteger" not in ops and "Conv" in ops
    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights, "weights stored as signed int8"
    scales = [t for t in model.graph.initializer if t.name.endswith("_scale")]
    assert scales and all(len(t.dims) == 0 for t in scales), "one scale per weight tensor"
