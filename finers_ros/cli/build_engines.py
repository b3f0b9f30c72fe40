"""
``finers-build-engines --config pipeline.yaml [--precision fp16 fp32]``.

Build the TensorRT engines for the configured SAM encoder and decoder ONNX graphs, offline, into
the engine cache (``segmenter.engine_cache``, else beside each graph). A node never builds an
engine on a request: it loads the one built here, keyed by graph hash, TensorRT version,
GPU name and precision. Exit 2 with one line when TensorRT or a graph is missing.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .common import CliError


def jobs(segmenter, parts):
    """(part, onnx path, profile) for each requested part the configuration has a graph for."""
    from ..segmenters.sam_tensorrt import DECODER_PROFILE, encoder_profile

    graphs = {"decoder": (segmenter.decoder_onnx, DECODER_PROFILE),
              "encoder": (segmenter.encoder_onnx, encoder_profile())}
    for part in parts:
        onnx_path, profile = graphs[part]
        if not onnx_path:
            raise CliError(f"segmenter.{part}_onnx is not set; export it with finers-export-sam")
        if not Path(onnx_path).is_file():
            raise CliError(f"{part} ONNX graph not found: {onnx_path}")
        yield part, Path(onnx_path), profile


def main(argv=None) -> int:
    from ..config import ConfigError, load_config
    from ..segmenters.engine_cache import PRECISIONS
    from ..segmenters.sam_runtimes import cache_dir
    from ..segmenters.sam_tensorrt import TensorRTUnavailable, build_engine, require_tensorrt

    parser = argparse.ArgumentParser(prog="finers-build-engines", description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="pipeline YAML")
    parser.add_argument("--parts", nargs="+", choices=("decoder", "encoder"),
                        default=["decoder", "encoder"])
    parser.add_argument("--precision", nargs="+", choices=PRECISIONS, default=None,
                        help="default: the configured segmenter.tensorrt_precision")
    parser.add_argument("--workspace-gib", type=float, default=4.0)
    args = parser.parse_args(argv)
    try:
        segmenter = load_config(args.config).segmenter
    except ConfigError as exc:
        raise CliError(str(exc)) from exc
    work = list(jobs(segmenter, args.parts))
    try:
        require_tensorrt()
    except TensorRTUnavailable as exc:
        raise CliError(str(exc)) from exc
    for part, onnx_path, profile in work:
        for precision in args.precision or [segmenter.tensorrt_precision]:
            path = build_engine(onnx_path, profile, precision, cache_dir(segmenter, onnx_path),
                                args.workspace_gib)
            print(f"{part} {precision}: wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
