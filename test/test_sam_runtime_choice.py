"""
Which SAM runtime a configuration gets, with which ONNX Runtime settings, and what it says.

The segmenter's name, the encoder and decoder classes, the graph optimisation level and
threads a session really opens with, where engines are looked for, and the exact fallback
line when TensorRT cannot be used (tiny random SAM, real ONNX graphs, no TensorRT here).
"""
from pathlib import Path

import numpy as np
import pytest

from finers_ros.config import SegmenterConfig
from finers_ros.segmenters import build_segmenter
from finers_ros.segmenters.sam import SamSegmenter, TorchDecoder
from finers_ros.segmenters.sam_encoder import OnnxRuntimeEncoder, TorchEncoder
from finers_ros.segmenters.sam_export import export_encoder
from finers_ros.segmenters.sam_model import load_sam
from finers_ros.segmenters.sam_onnx import OnnxRuntimeDecoder
from finers_ros.segmenters.sam_runtimes import build_decoder, build_encoder, cache_dir


@pytest.fixture(scope="module")
def graphs(tiny_sam_files, tmp_path_factory):
    checkpoint, decoder_onnx = tiny_sam_files
    folder = tmp_path_factory.mktemp("choice")
    encoder_onnx = export_encoder(load_sam("tiny", checkpoint), folder / "encoder.onnx")
    return str(checkpoint), str(decoder_onnx), str(encoder_onnx)


def config(graphs, **settings):
    checkpoint, decoder_onnx, encoder_onnx = graphs
    return SegmenterConfig(backend="sam", model_type="tiny", checkpoint=checkpoint,
                           decoder_onnx=decoder_onnx, encoder_onnx=encoder_onnx, ort_threads=1,
                           **settings)


@pytest.mark.parametrize(
    "runtime, encoder_runtime, decoder_type, encoder_type, name",
    [
        ("torch", "torch", TorchDecoder, type(None), "sam:torch"),
        ("onnxruntime", "torch", OnnxRuntimeDecoder, type(None), "sam:onnxruntime"),
        ("torch", "onnxruntime", TorchDecoder, OnnxRuntimeEncoder, "sam:torch"),
        ("onnxruntime", "onnxruntime", OnnxRuntimeDecoder, OnnxRuntimeEncoder,
         "sam:onnxruntime"),
    ],
)
def test_each_configured_runtime_is_the_one_built(
        graphs, runtime, encoder_runtime, decoder_type, encoder_type, name):
    segmenter = build_segmenter(config(graphs, runtime=runtime, encoder_runtime=encoder_runtime))
    assert type(segmenter.decoder) is decoder_type and type(segmenter.encoder) is encoder_type
    assert segmenter.name == name
    sam = segmenter.sam
    assert getattr(segmenter.decoder, "sam", sam) is sam


def test_the_torch_builders_wrap_the_given_model(graphs):
    sam = load_sam("tiny", graphs[0])
    encoder = build_encoder(config(graphs, encoder_runtime="torch"), sam)
    decoder = build_decoder(config(graphs, runtime="torch"), sam)
    assert type(encoder) is TorchEncoder and encoder.sam is sam
    assert type(decoder) is TorchDecoder and decoder.sam is sam


def test_a_decoder_without_a_name_is_custom(graphs):
    class Decoder:
        def decode(self, embedding, coords, labels, crop_hw):
            raise AssertionError("not called")

    assert SamSegmenter(load_sam("tiny", graphs[0]), Decoder()).name == "sam:custom"


@pytest.mark.parametrize("level", ["disable", "basic", "extended"])
def test_sessions_open_with_the_configured_graph_optimisation(graphs, level):
    import onnxruntime as ort

    expected = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED}[level]
    settings = config(graphs, runtime="onnxruntime", encoder_runtime="onnxruntime",
                      ort_graph_optimization=level)
    sam = load_sam("tiny", graphs[0])
    for runtime in (build_encoder(settings, sam), build_decoder(settings, sam)):
        options = runtime.session.get_session_options()
        assert options.graph_optimization_level == expected
        assert options.intra_op_num_threads == 1
        assert runtime.providers == ["CPUExecutionProvider"]


def test_missing_onnx_files_are_named(tmp_path):
    missing = tmp_path / "decoder.onnx"
    with pytest.raises(FileNotFoundError) as caught:
        OnnxRuntimeDecoder(missing)
    assert str(caught.value) == f"SAM decoder ONNX file not found: {missing}"
    with pytest.raises(FileNotFoundError) as caught:
        OnnxRuntimeDecoder(None)
    assert str(caught.value) == "SAM decoder ONNX file not found: ."
    with pytest.raises(FileNotFoundError) as caught:
        OnnxRuntimeEncoder(None, missing)
    assert str(caught.value) == f"SAM encoder ONNX file not found: {missing}"
    with pytest.raises(FileNotFoundError) as caught:
        OnnxRuntimeEncoder(None, None)
    assert str(caught.value) == "SAM encoder ONNX file not found: ."


def test_engines_are_looked_for_in_the_cache_else_next_to_the_graph(graphs):
    assert cache_dir(SegmenterConfig(engine_cache="/var/engines"), "/m/sam.onnx") == Path(
        "/var/engines")
    assert cache_dir(SegmenterConfig(), "/models/sam/decoder.onnx") == Path("/models/sam")
    assert cache_dir(SegmenterConfig(), None) == Path(".")


@pytest.mark.parametrize("part", ["encoder", "decoder"])
def test_the_fallback_line_names_the_part_the_reason_and_the_provider(graphs, part, caplog):
    settings = config(graphs, runtime="tensorrt", encoder_runtime="tensorrt",
                      engine_cache=str(Path(graphs[0]).parent / "engines"))
    sam = load_sam("tiny", graphs[0])
    runtime = (build_encoder if part == "encoder" else build_decoder)(settings, sam)
    reason = runtime.fallback_reason
    assert reason.startswith(f"SAM {part}: TensorRT not used (")
    assert reason.endswith("); running ONNX Runtime CPUExecutionProvider")
    assert "needs NVIDIA TensorRT" in reason and reason in caplog.text
    crop = np.zeros((64, 64, 3), np.uint8)
    if part == "encoder":
        assert tuple(runtime.embed(crop).shape) == (1, 32, 64, 64)


def test_sessions_opened_directly_use_every_core_and_full_optimisation(graphs):
    import onnxruntime as ort

    sam = load_sam("tiny", graphs[0])
    for runtime in (OnnxRuntimeDecoder(graphs[1]), OnnxRuntimeEncoder(sam, graphs[2])):
        options = runtime.session.get_session_options()
        assert options.intra_op_num_threads == 0  # ONNX Runtime's default: one per core
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert runtime.providers == ["CPUExecutionProvider"]
