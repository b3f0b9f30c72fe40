"""
SAM checkpoints are data: a torch checkpoint carrying code is refused before the code runs.

And a checkpoint must fit the architecture exactly (no missing or extra tensors), and the
model lands on the requested device.
"""
from pathlib import Path

import pytest
import torch

from finers_ros.segmenters.sam_model import (
    SamCheckpointError, build_tiny_sam, load_sam, read_state_dict, save_sam)


class Payload:
    """Unpickling this touches a file: the proof that code in a checkpoint ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("forced", [False, True])
def test_a_torch_checkpoint_with_code_is_refused_and_the_code_never_runs(
        tmp_path, monkeypatch, forced):
    if forced:  # torch's switch back to unpickling anything, for loads that do not say
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    state = build_tiny_sam().state_dict()
    torch.save({**state, "payload": Payload(marker)}, path)
    with pytest.raises(SamCheckpointError) as caught:
        load_sam("tiny", path)
    assert str(caught.value).startswith(f"cannot read SAM checkpoint {path} safely: ")
    assert not marker.exists()


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_a_checkpoint_must_have_exactly_the_models_tensors(tmp_path, change):
    state = build_tiny_sam().state_dict()
    if change == "missing":
        del state["mask_decoder.iou_token.weight"]
    else:
        state["mask_decoder.extra_head.weight"] = torch.zeros(2)
    path = tmp_path / "sam.pth"
    torch.save(state, path)
    with pytest.raises(SamCheckpointError) as caught:
        load_sam("tiny", path)
    said = str(caught.value)
    assert said.startswith(f"{path} does not fit SAM tiny: Error(s) in loading state_dict")
    assert ("mask_decoder.iou_token.weight" if change == "missing"
            else "mask_decoder.extra_head.weight") in said
    assert len(said) <= len(f"{path} does not fit SAM tiny: ") + 300


def test_the_model_is_on_the_requested_device_and_in_eval_mode(tmp_path):
    path = save_sam(build_tiny_sam(), tmp_path / "sam.safetensors")
    sam = load_sam("tiny", path, device="meta")
    assert next(sam.parameters()).device.type == "meta" and not sam.training
    assert sorted(read_state_dict(path)) == sorted(build_tiny_sam().state_dict())
