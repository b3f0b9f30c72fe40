"""Shared fixtures: tiny random models saved to disk and small synthetic scenes."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    from finers_ros.testing.tiny_qwen import build_tiny_qwen

    return build_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen"))


@pytest.fixture(scope="session")
def tiny_sam_files(tmp_path_factory):
    """(safetensors checkpoint, exported decoder ONNX) of one random tiny SAM."""
    import torch

    from finers_ros.segmenters.sam_export import export_decoder
    from finers_ros.segmenters.sam_model import build_tiny_sam, save_sam

    torch.manual_seed(0)
    sam = build_tiny_sam()
    folder = tmp_path_factory.mktemp("tiny_sam")
    checkpoint = save_sam(sam, folder / "sam_tiny.safetensors")
    onnx_path = export_decoder(sam, folder / "sam_tiny_decoder.onnx")
    return checkpoint, onnx_path


@pytest.fixture(scope="session")
def scene_generator():
    from finers_ros.data.synthetic import SceneConfig, SceneGenerator

    return SceneGenerator(SceneConfig(width=1920, height=1080), seed=7)


@pytest.fixture(scope="session")
def scene_4k():
    """One 3840x2160 scene whose question is a colour-only referring instruction."""
    from finers_ros.data.synthetic import SceneGenerator

    generator = SceneGenerator(seed=11)
    for index in range(50):
        image, record = generator.scene(index)
        if record["grounding"] == "colour":
            return image, record
    raise AssertionError("no colour scene in the first 50")


@pytest.fixture
def rng():
    return np.random.default_rng(0)
