"""
Tracker settings: one dataclass per backend, validated with messages that name the key.

``TrackerConfig.backend`` picks the tracker (``template``: CPU, the default; ``sam2``: a
streaming SAM2 tracker for GPUs). Pixel values are native frame pixels.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

TRACKER_BACKENDS = ("template", "sam2")


class TrackerConfigError(ValueError):
    """A tracker setting that cannot work; the message names the key and value."""


@dataclass
class Sam2Config:
    """The streaming SAM2 tracker (GPU): a native-resolution crop that follows the target."""

    checkpoint: Optional[str] = None  # local .pt of a SAM2 / SAM2.1 model (None: random weights)
    model_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml"  # the sam2 package's config name
    device: str = "cuda"
    crop_size: int = 512  # native pixels around the target, fed to SAM2 at its input size
    memory_frames: int = 7  # recent frames kept in the memory bank (bounded memory)
    object_score_threshold: float = 0.0  # SAM2's object score logit below this: not seen

    def validate(self) -> None:
        if not 128 <= self.crop_size <= 2048:
            raise TrackerConfigError(f"sam2.crop_size={self.crop_size}: expected 128..2048")
        if not 1 <= self.memory_frames <= 64:
            raise TrackerConfigError(
                f"sam2.memory_frames={self.memory_frames}: expected 1..64")


@dataclass
class TrackerConfig:
    """
    How a target is followed from frame to frame after a FineRS answer.

    ``template`` tracker: normalised cross-correlation of the target's last appearance in a
    window around its predicted position (constant-velocity motion prior), the mask
    re-segmented there every frame from the target's colour against its surroundings.
    """

    backend: str = "template"
    lost_after: int = 2  # consecutive frames without the target before the state is lost
    track_threshold: float = 0.5  # correlation to accept the target next to its prediction
    reacquire_threshold: float = 0.7  # correlation to accept it again after a miss
    search_radius_px: int = 48  # search radius around the prediction while tracking
    max_search_radius_px: int = 400  # the radius grows up to this while searching
    coarse_side_px: int = 160  # wider searches run on windows downscaled to about this side
    motion_weight: float = 0.25  # correlation penalty at the search radius (twins, clutter)
    template_margin: float = 0.25  # context around the target's box in the template (fraction)
    colour_tolerance: float = 28.0  # CIELAB distance of the mask's colour to the target's
    sam2: Sam2Config = field(default_factory=Sam2Config)

    def validate(self) -> "TrackerConfig":
        if self.backend not in TRACKER_BACKENDS:
            raise TrackerConfigError(
                f"tracker.backend={self.backend!r}: expected one of {TRACKER_BACKENDS}")
        if self.lost_after < 1:
            raise TrackerConfigError(f"tracker.lost_after={self.lost_after}: expected >= 1")
        for name in ("track_threshold", "reacquire_threshold"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise TrackerConfigError(f"tracker.{name}={value}: expected 0 < value < 1")
        if not 4 <= self.search_radius_px <= self.max_search_radius_px <= 4096:
            raise TrackerConfigError(
                f"tracker.search_radius_px={self.search_radius_px}, max_search_radius_px="
                f"{self.max_search_radius_px}: expected 4 <= radius <= max radius <= 4096")
        if not 32 <= self.coarse_side_px <= 1024:
            raise TrackerConfigError(
                f"tracker.coarse_side_px={self.coarse_side_px}: expected 32..1024")
        self.sam2.validate()
        return self
