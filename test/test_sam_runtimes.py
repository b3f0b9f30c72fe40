"""SAM image encoder runtimes: ONNX Runtime (fp32 and int8) against PyTorch, tiny random SAM."""
import numpy as np
import pytest
import torch

from finers_ros.config import ConfigError, SegmenterConfig
from finers_ros.segmenters import build_segmenter
from finers_ros.segmenters.sam import SamSegmenter, TorchDecoder
from finers_ros.segmenters.sam_encoder import OnnxRuntimeEncoder, TorchEncoder
from finers_ros.segmenters.sam_export import export_encoder, quantize_int8
from finers_ros.segmenters.sam_model import load_sam
from finers_ros.segmenters.sam_onnx import OnnxRuntimeDecoder


@pytest.fixture(scope="module")
def tiny_encoder_onnx(tiny_sam_files, tmp_path_factory):
    checkpoint, _ = tiny_sam_files
    folder = tmp_path_factory.mktemp("tiny_encoder")
    fp32 = export_encoder(load_sam("tiny", checkpoint), folder / "sam_tiny_encoder.onnx")
    return fp32, quantize_int8(fp32, folder / "sam_tiny_encoder.int8.onnx")


def mask_iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def prompts(h, w):
    return (0.3 * w, 0.25 * h, 0.6 * w, 0.7 * h), [(0.4 * w, 0.5 * h), (0.5 * w, 0.45 * h)]


def test_torch_encoder_matches_sam_predictor(tiny_sam_files, rng):
    sam = load_sam("tiny", tiny_sam_files[0])
    crop = rng.integers(0, 255, (480, 512, 3), dtype=np.uint8)
    reference = SamSegmenter(sam, TorchDecoder(sam)).embed(crop)  # SamPredictor.set_image
    assert torch.allclose(TorchEncoder(sam).embed(crop), reference, atol=1e-5)


@pytest.mark.parametrize("crop_hw", [(512, 512), (480, 640), (700, 400)])
def test_onnxruntime_encoder_embedding_and_mask_match_torch(tiny_sam_files, tiny_encoder_onnx,
                                                            crop_hw, rng):
    checkpoint, decoder_onnx = tiny_sam_files
    sam = load_sam("tiny", checkpoint)
    h, w = crop_hw
    crop = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    torch_embedding = TorchEncoder(sam).embed(crop)
    ort_embedding = OnnxRuntimeEncoder(sam, tiny_encoder_onnx[0]).embed(crop)
    assert ort_embedding.shape == torch_embedding.shape == (1, 32, 64, 64)
    assert torch.allclose(ort_embedding, torch_embedding, atol=1e-4, rtol=1e-4)
    box, points = prompts(h, w)
    torch_segmenter = SamSegmenter(sam, TorchDecoder(sam))
    ort_segmenter = SamSegmenter(sam, OnnxRuntimeDecoder(decoder_onnx),
                                 OnnxRuntimeEncoder(sam, tiny_encoder_onnx[0]))
    a = torch_segmenter.segment(crop, box, points)
    b = ort_segmenter.segment(crop, box, points)
    assert a.mask.any() and mask_iou(a.mask, b.mask) >= 0.99
    assert a.score == pytest.approx(b.score, abs=1e-3)


def test_int8_encoder_is_quantised_and_close_to_fp32(tiny_sam_files, tiny_encoder_onnx, rng):
    import onnx

    fp32, int8 = tiny_encoder_onnx
    ops = {node.op_type for node in onnx.load(str(int8)).graph.node}
    assert "DynamicQuantizeLinear" in ops and "MatMulInteger" in ops
    assert int8.stat().st_size < fp32.stat().st_size
    sam = load_sam("tiny", tiny_sam_files[0])
    crop = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    a = OnnxRuntimeEncoder(sam, fp32).embed(crop)
    b = OnnxRuntimeEncoder(sam, int8).embed(crop)
    relative = float((a - b).norm() / a.norm())
    assert 0 < relative < 0.1  # quantised (not identical), yet the same embedding


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
def test_graph_optimisation_level_and_threads_reach_the_session(tiny_sam_files, tiny_encoder_onnx,
                                                                level):
    import onnxruntime as ort

    sam = load_sam("tiny", tiny_sam_files[0])
    encoder = OnnxRuntimeEncoder(sam, tiny_encoder_onnx[0], threads=1, graph_optimization=level)
    options = encoder.session.get_session_options()
    expected = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    assert options.graph_optimization_level == expected and options.intra_op_num_threads == 1


def test_configured_onnxruntime_encoder_embeds_once_per_request(tiny_sam_files, tiny_encoder_onnx,
                                                                rng):
    checkpoint, decoder_onnx = tiny_sam_files
    segmenter = build_segmenter(SegmenterConfig(
        backend="sam", runtime="onnxruntime", model_type="tiny", checkpoint=str(checkpoint),
        decoder_onnx=str(decoder_onnx), encoder_runtime="onnxruntime",
        encoder_onnx=str(tiny_encoder_onnx[0]), ort_threads=1))
    assert isinstance(segmenter.encoder, OnnxRuntimeEncoder)
    calls = []
    run = segmenter.encoder.session.run
    segmenter.encoder.session = type("Counting", (), {
        "run": lambda self, *a, **k: (calls.append(1), run(*a, **k))[1]})()
    crop = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    result = segmenter.segment(crop, (100, 100, 300, 300), [(150, 150), (200, 200)])
    assert result.mask.shape == (512, 512) and len(calls) == 1


@pytest.mark.parametrize("change, message", [
    ({"encoder_runtime": "onnxruntime"}, "needs segmenter.encoder_onnx"),
    ({"encoder_runtime": "jax"}, "encoder_runtime"),
    ({"ort_graph_optimization": "max"}, "ort_graph_optimization"),
    ({"ort_threads": -1}, "ort_threads"),
    ({"tensorrt_precision": "int4"}, "tensorrt_precision"),
    ({"tensorrt_fallback": "cpu"}, "tensorrt_fallback"),
])
def test_bad_runtime_settings_are_refused(change, message):
    config = SegmenterConfig(backend="sam", checkpoint="sam.pth", **change)
    with pytest.raises(ConfigError, match=message):
        config.validate()


def test_export_command_writes_decoder_encoder_and_int8(tiny_sam_files, tmp_path, capsys):
    from finers_ros.cli.export_sam import main

    checkpoint, _ = tiny_sam_files
    with pytest.raises(SystemExit) as refused:
        main(["--model-type", "tiny", "--checkpoint", str(checkpoint),
              "--out", str(tmp_path / "d.onnx"), "--int8"])
    assert refused.value.code == 2 and "--encoder-out" in capsys.readouterr().err
    assert main(["--model-type", "tiny", "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "d.onnx"), "--encoder-out", str(tmp_path / "e.onnx"),
                 "--int8"]) == 0
    for name in ("d.onnx", "e.onnx", "e.int8.onnx"):
        assert (tmp_path / name).stat().st_size > 0
    sam = load_sam("tiny", checkpoint)
    crop = np.zeros((512, 512, 3), np.uint8)
    assert OnnxRuntimeEncoder(sam, tmp_path / "e.int8.onnx").embed(crop).shape == (1, 32, 64, 64)
