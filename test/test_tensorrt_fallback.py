"""
TensorRT path without TensorRT: engine cache keys, the clear error, the configured fallback.

TensorRT cannot be installed on these machines. Everything runs for real (ONNX export, ONNX
Runtime, the config, the CLI) except in ``fake_tensorrt``: there, and only there, the
``tensorrt`` module itself is replaced by a stand-in (the one mock boundary of this suite),
to check that a runtime looks its engine up in the cache and never builds one on a request.
"""
import sys
import types

import numpy as np
import pytest

from finers_ros.config import SegmenterConfig
from finers_ros.segmenters import build_segmenter
from finers_ros.segmenters.engine_cache import (
    EngineKey, EngineNotBuilt, engine_path, onnx_digest, read_engine, write_engine)
from finers_ros.segmenters.sam_encoder import OnnxRuntimeEncoder
from finers_ros.segmenters.sam_export import export_encoder
from finers_ros.segmenters.sam_model import load_sam
from finers_ros.segmenters.sam_onnx import OnnxRuntimeDecoder
from finers_ros.segmenters.sam_tensorrt import TensorRTUnavailable, require_tensorrt


def tensorrt_importable():
    try:
        import tensorrt  # noqa: F401
        return True
    except Exception:
        return False


pytestmark = pytest.mark.skipif(tensorrt_importable(), reason="TensorRT is installed here")


@pytest.fixture(scope="module")
def graphs(tiny_sam_files, tmp_path_factory):
    checkpoint, decoder_onnx = tiny_sam_files
    folder = tmp_path_factory.mktemp("trt")
    encoder_onnx = export_encoder(load_sam("tiny", checkpoint), folder / "encoder.onnx")
    return checkpoint, decoder_onnx, encoder_onnx


def trt_config(graphs, tmp_path, **extra):
    checkpoint, decoder_onnx, encoder_onnx = graphs
    return SegmenterConfig(backend="sam", model_type="tiny", checkpoint=str(checkpoint),
                           runtime="tensorrt", decoder_onnx=str(decoder_onnx),
                           encoder_runtime="tensorrt", encoder_onnx=str(encoder_onnx),
                           engine_cache=str(tmp_path / "engines"), ort_threads=1, **extra)


def test_engine_key_changes_with_graph_tensorrt_gpu_and_precision(graphs, tmp_path):
    _, decoder_onnx, encoder_onnx = graphs
    base = EngineKey.for_onnx(decoder_onnx, "10.3.0", "NVIDIA H100 80GB HBM3", "fp16")
    assert base.onnx_sha256 == onnx_digest(decoder_onnx) and len(base.onnx_sha256) == 64
    variants = [
        EngineKey.for_onnx(encoder_onnx, "10.3.0", "NVIDIA H100 80GB HBM3", "fp16"),
        EngineKey.for_onnx(decoder_onnx, "10.7.0", "NVIDIA H100 80GB HBM3", "fp16"),
        EngineKey.for_onnx(decoder_onnx, "10.3.0", "NVIDIA L4", "fp16"),
        EngineKey.for_onnx(decoder_onnx, "10.3.0", "NVIDIA H100 80GB HBM3", "fp32"),
    ]
    names = {key.file_name("decoder") for key in [base, *variants]}
    assert len(names) == 5
    assert base.file_name("decoder") == (
        f"decoder-{base.onnx_sha256[:16]}-trt10.3.0-nvidia-h100-80gb-hbm3-fp16.engine")
    edited = tmp_path / "decoder.onnx"
    edited.write_bytes(decoder_onnx.read_bytes() + b"\0")  # one byte more: another graph
    assert EngineKey.for_onnx(edited, "10.3.0", "x", "fp16").onnx_sha256 != base.onnx_sha256
    with pytest.raises(ValueError, match="precision"):
        EngineKey.for_onnx(decoder_onnx, "10.3.0", "x", "int4")


def test_cache_round_trip_and_stale_or_missing_engine(graphs, tmp_path):
    _, decoder_onnx, _ = graphs
    key = EngineKey.for_onnx(decoder_onnx, "10.3.0", "NVIDIA L4", "fp16")
    path = engine_path(tmp_path, decoder_onnx, key)
    with pytest.raises(EngineNotBuilt, match="finers-build-engines"):
        read_engine(path, key)
    write_engine(path, b"engine bytes", key)
    assert read_engine(path, key) == b"engine bytes"
    assert not list(tmp_path.glob("*.partial"))
    other = EngineKey(key.onnx_sha256, "10.3.0", "NVIDIA L4", "fp32")
    path.with_suffix(".json").write_text(path.with_suffix(".json").read_text()
                                         .replace('"fp16"', '"fp32"'))
    with pytest.raises(EngineNotBuilt, match="rebuild"):
        read_engine(path, key)
    assert read_engine(path, other) == b"engine bytes"


def test_without_tensorrt_the_error_says_what_to_do():
    with pytest.raises(TensorRTUnavailable, match="needs NVIDIA TensorRT 10.*tensorrt_fallback"):
        require_tensorrt()


def test_configured_fallback_runs_onnxruntime_with_the_same_masks(graphs, tmp_path, rng, caplog):
    segmenter = build_segmenter(trt_config(graphs, tmp_path))
    assert isinstance(segmenter.encoder, OnnxRuntimeEncoder)
    assert isinstance(segmenter.decoder, OnnxRuntimeDecoder)
    assert segmenter.encoder.providers[-1] == "CPUExecutionProvider"  # CUDA first when present
    for runtime in (segmenter.encoder, segmenter.decoder):
        assert "TensorRT not used" in runtime.fallback_reason
        assert "needs NVIDIA TensorRT" in runtime.fallback_reason
    assert "TensorRT not used" in caplog.text
    _, decoder_onnx, encoder_onnx = graphs
    sam = segmenter.sam
    crop = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    box, points = (120, 100, 330, 360), [(200, 220), (240, 250)]
    fallback = segmenter.segment(crop, box, points)
    direct = type(segmenter)(sam, OnnxRuntimeDecoder(decoder_onnx),
                             OnnxRuntimeEncoder(sam, encoder_onnx))
    expected = direct.segment(crop, box, points)
    assert np.array_equal(fallback.mask, expected.mask) and fallback.score == expected.score


def test_fallback_none_refuses_to_start(graphs, tmp_path):
    with pytest.raises(TensorRTUnavailable, match="needs NVIDIA TensorRT"):
        build_segmenter(trt_config(graphs, tmp_path, tensorrt_fallback="none"))


def test_build_engines_command_fails_clearly_without_tensorrt(graphs, tmp_path, capsys):
    from finers_ros.cli.build_engines import main

    _, decoder_onnx, encoder_onnx = graphs
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"segmenter: {{backend: sam, model_type: tiny, checkpoint: {graphs[0]}, "
                      f"runtime: tensorrt, decoder_onnx: {decoder_onnx}, "
                      f"encoder_runtime: tensorrt, encoder_onnx: {encoder_onnx}}}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config)])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "needs NVIDIA TensorRT" in error[0]
    config.write_text(config.read_text().replace(str(encoder_onnx), str(tmp_path / "gone.onnx")))
    with pytest.raises(SystemExit):
        main(["--config", str(config), "--parts", "encoder"])
    assert "encoder ONNX graph not found" in capsys.readouterr().err


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """Install a stand-in ``tensorrt`` module (mock boundary); its builder must not run."""
    built = []
    fake = types.ModuleType("tensorrt")
    fake.__version__ = "10.3.0"

    class Logger:
        WARNING = 2

        def __init__(self, *_):
            pass

    class Builder:
        def __init__(self, *_):
            built.append("builder")
            raise AssertionError("an engine must never be built on a request")

    class Runtime:
        def __init__(self, *_):
            pass

        def deserialize_cuda_engine(self, data):
            built.append(("deserialize", bytes(data)))
            return None  # what TensorRT returns for an engine it cannot load

    fake.Logger, fake.Builder, fake.Runtime = Logger, Builder, Runtime
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    monkeypatch.setattr("torch.cuda.get_device_name", lambda device=0: "NVIDIA L4")
    return built


def test_missing_engine_is_never_built_on_a_request(fake_tensorrt, graphs, tmp_path):
    segmenter = build_segmenter(trt_config(graphs, tmp_path))
    assert fake_tensorrt == []
    for runtime in (segmenter.encoder, segmenter.decoder):
        assert isinstance(runtime, (OnnxRuntimeEncoder, OnnxRuntimeDecoder))
        assert "no TensorRT engine" in runtime.fallback_reason
        assert "finers-build-engines" in runtime.fallback_reason
        assert "trt10.3.0-nvidia-l4-fp16.engine" in runtime.fallback_reason
    with pytest.raises(EngineNotBuilt):
        build_segmenter(trt_config(graphs, tmp_path, tensorrt_fallback="none"))


def test_engine_tensorrt_cannot_load_falls_back(fake_tensorrt, graphs, tmp_path):
    _, decoder_onnx, _ = graphs
    key = EngineKey.for_onnx(decoder_onnx, "10.3.0", "NVIDIA L4", "fp16")
    write_engine(engine_path(tmp_path / "engines", decoder_onnx, key), b"damaged", key)
    segmenter = build_segmenter(trt_config(graphs, tmp_path))
    assert fake_tensorrt == [("deserialize", b"damaged")]  # looked up, loaded, never built
    assert isinstance(segmenter.decoder, OnnxRuntimeDecoder)
    assert "could not deserialise" in segmenter.decoder.fallback_reason
    assert "no TensorRT engine" in segmenter.encoder.fallback_reason
    with pytest.raises(EngineNotBuilt):
        build_segmenter(trt_config(graphs, tmp_path, tensorrt_fallback="none"))


def test_fallback_asks_onnxruntime_for_cuda_first(graphs, tmp_path, monkeypatch):
    """The fallback opens its sessions for CUDA (CPU when no CUDA provider), not the CPU only."""
    from finers_ros.segmenters import ort_session, sam_encoder, sam_onnx

    devices = []

    def recording(path, device="cpu", *args, **kwargs):  # a spy: the real session still opens
        devices.append(device)
        return ort_session.open_session(path, device, *args, **kwargs)

    monkeypatch.setattr(sam_encoder, "open_session", recording)
    monkeypatch.setattr(sam_onnx, "open_session", recording)
    segmenter = build_segmenter(trt_config(graphs, tmp_path))
    assert devices == ["cuda", "cuda"]
    assert segmenter.encoder.providers == segmenter.decoder.providers == (
        ort_session.providers_for("cuda"))
