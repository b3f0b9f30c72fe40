"""Shared fixtures: tiny random models saved to disk and small synthetic scenes."""
from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def isolated_ros_domain():
    """
    Reserve a free ROS domain and point this process's environment at it.

    Loopback-only discovery and the shipped Fast DDS profile (``ros_environment``), the same as
    every node process gets; afterwards the environment is restored and the shared-memory
    segments of killed processes are removed (``clean_shared_memory`` raises if it could not).
    """
    from domain_coordinator import domain_id

    from finers_ros.ros.launcher import clean_shared_memory, ros_environment

    with domain_id() as value:
        saved = dict(os.environ)
        os.environ.update(ros_environment(value))
        try:
            yield value
        finally:
            os.environ.clear()
            os.environ.update(saved)
    clean_shared_memory()


@pytest.fixture(scope="module")
def domain():
    """Give a test module one isolated ROS domain, as ``isolated_ros_domain`` reserves it."""
    with isolated_ros_domain() as value:
        yield value


@pytest.fixture
def one_torch_thread():
    """Run with one torch thread: on 2 shared cores torch's pool oversubscribes (8x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
