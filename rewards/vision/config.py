"""Settings of the frozen vision models (the ``reward.segmenter`` / ``eval.segmenter`` config sections).

Plain dataclass, no imports from the training engine: the run configuration
(``rl.config``) nests it, and :func:`rewards.vision.factory.build_segmenter` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Iterator, Literal

#: Values of :attr:`SegmenterConfig.backend`.
SEGMENTER_BACKENDS = ("grabcut", "sam2", "oracle_box")


@dataclass
class SegmenterConfig:
    """Keyframe segmenter used by mask-IoU reward terms and by evaluation."""

    # grabcut (CPU default, classical) | sam2 | oracle_box (fills the predicted box)
    backend: Literal[SEGMENTER_BACKENDS] = "grabcut"
    # SAM2 packaged config name, e.g. configs/sam2.1/sam2.1_hiera_t.yaml
    sam2_config: str = "configs/sam2.1/sam2.1_hiera_t.yaml"
    # SAM2 checkpoint; empty = random weights (meaningless masks, for tests).
    checkpoint: str = ""
    # SAM2 input resolution (1024 released; smaller for CPU tests).
    image_size: Annotated[int, "> 0"] = 1024
    # Device of the segmenter model (cpu | cuda).
    device: str = "cpu"
    # GrabCut iterations of the CPU default segmenter.
    grabcut_iterations: Annotated[int, ">= 1"] = 3
    # GrabCut: radius (px) of the definite foreground/background disc drawn at each point.
    grabcut_point_radius: Annotated[int, ">= 0"] = 2
    # SAM2: image embeddings kept in the LRU cache (one per keyframe of a GRPO group).
    embedding_cache_size: Annotated[int, ">= 0"] = 8
    # SAM2: predict 3 candidate masks per prompt and keep the best-scored one.
    multimask_output: bool = True
    # SAM2: prompt sets decoded per batched mask-decoder call.
    decode_batch_size: Annotated[int, ">= 1"] = 64

    def validate(self) -> Iterator[tuple[str, str]]:
        """Cross-field rules (see ``rl.schema``): SAM2 runs only at multiples of its coarsest stride (32)."""
        if self.backend == "sam2" and self.image_size % 32:
            yield "image_size", f"must be a multiple of 32 for the sam2 backend, got {self.image_size}"
