"""
Where TensorRT engines live: one file per (ONNX graph, TensorRT version, GPU, precision).

An engine is only valid for the exact graph, TensorRT build and GPU model it was built for,
so the key holds all four; a changed graph or an upgraded TensorRT gives a new file name and
the old engine is simply not found (``finers-build-engines`` builds the new one). Nothing
here imports TensorRT: the version and GPU name are passed in.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

PRECISIONS = ("fp16", "fp32")


def onnx_digest(path: str | Path) -> str:
    """sha256 of the ONNX file's bytes (external-data files are not part of the key)."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "unknown"


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    precision: str

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"TensorRT precision {self.precision!r}: "
                             f"expected one of {PRECISIONS}")

    @classmethod
    def for_onnx(cls, onnx_path: str | Path, tensorrt_version: str, gpu_name: str,
                 precision: str) -> "EngineKey":
        return cls(onnx_digest(onnx_path), tensorrt_version, gpu_name, precision)

    def file_name(self, stem: str) -> str:
        """``<stem>-<sha[:16]>-trt<version>-<gpu>-<precision>.engine``."""
        return (f"{_slug(stem)}-{self.onnx_sha256[:16]}-trt{_slug(self.tensorrt_version)}-"
                f"{_slug(self.gpu_name)}-{self.precision}.engine")


def engine_path(cache_dir: str | Path, onnx_path: str | Path, key: EngineKey) -> Path:
    return Path(cache_dir) / key.file_name(Path(onnx_path).stem)


def write_engine(path: Path, serialized: bytes, key: EngineKey) -> Path:
    """Engine bytes plus a ``.json`` beside it with the full key (the file name holds a prefix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_bytes(serialized)
    partial.replace(path)  # never a half-written engine under the real name
    path.with_suffix(".json").write_text(json.dumps(asdict(key), indent=2))
    return path


def read_engine(path: Path, key: EngineKey) -> bytes:
    """Return the cached engine for ``key``; ``EngineNotBuilt`` when missing or stale."""
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        raise EngineNotBuilt(f"no TensorRT engine {path}; "
                             "build it offline with finers-build-engines")
    if json.loads(meta.read_text()) != asdict(key):
        raise EngineNotBuilt(f"TensorRT engine {path} was built for another graph, TensorRT, GPU "
                             "or precision; rebuild it with finers-build-engines")
    return path.read_bytes()


class EngineNotBuilt(RuntimeError):
    """No engine in the cache for this graph, TensorRT version, GPU and precision."""
