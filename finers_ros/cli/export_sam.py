"""
Export SAM to ONNX for the onnxruntime and tensorrt runtimes.

``finers-export-sam --model-type vit_b --checkpoint sam.pth --out decoder.onnx
[--encoder-out encoder.onnx [--int8]]``: export SAM's prompt encoder + mask decoder (and its
image encoder, optionally also dynamically quantised to int8).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..segmenters.sam_export import export_decoder, export_encoder, quantize_int8
from ..segmenters.sam_model import SamCheckpointError, load_sam
from .common import CliError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="finers-export-sam", description=__doc__)
    parser.add_argument("--model-type", default="vit_b")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="decoder graph (.onnx)")
    parser.add_argument("--encoder-out", type=Path, help="image encoder graph (.onnx)")
    parser.add_argument("--int8", action="store_true",
                        help="also write <encoder-out>.int8.onnx (dynamic int8 quantisation)")
    parser.add_argument("--opset", type=int, default=17)
    args = parser.parse_args(argv)
    if args.int8 and not args.encoder_out:
        raise CliError("--int8 quantises the encoder: give --encoder-out too")
    try:
        sam = load_sam(args.model_type, args.checkpoint)
    except SamCheckpointError as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {export_decoder(sam, args.out, args.opset)}")
    if args.encoder_out:
        encoder = export_encoder(sam, args.encoder_out, args.opset)
        print(f"wrote {encoder}")
        if args.int8:
            print(f"wrote {quantize_int8(encoder, encoder.with_suffix('.int8.onnx'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
