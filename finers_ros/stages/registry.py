"""Builds the GSE and LPR models a configuration names (one model when both share it)."""
from __future__ import annotations

from typing import Tuple

from ..config import PipelineConfig, StageConfig
from .base import VisionLanguageModel


def build_stage_model(config: StageConfig) -> VisionLanguageModel:
    if config.backend == "bringup":
        from .bringup import BringupModel

        return BringupModel()
    if config.backend == "openai":
        from .openai_server import OpenAIServerModel

        return OpenAIServerModel(config)
    from .qwen_vl import QwenVLModel

    return QwenVLModel(config)


def build_stage_models(config: PipelineConfig) -> Tuple[VisionLanguageModel, VisionLanguageModel]:
    """(gse, lpr); GSE and LPR with identical settings share one loaded model."""
    gse = build_stage_model(config.gse)
    lpr = gse if config.lpr == config.gse else build_stage_model(config.lpr)
    return gse, lpr
