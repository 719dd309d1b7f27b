"""XMem's per-frame inference loop (one video pass in one direction).

Each :meth:`XMemInferenceCore.step` encodes the frame's key, segments it from memory (except
on frames that come with masks), and on memory frames encodes the value and inserts it;
the hidden state is deep-updated together with memory insertion (``deep_update_every < 0``)
or on its own period.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from rewards.vision.xmem.aggregation import soft_aggregate
from rewards.vision.xmem.config import XMemInferenceConfig
from rewards.vision.xmem.memory import XMemMemory
from rewards.vision.xmem.network import XMem
from rewards.vision.xmem.preprocessing import pad_to_multiple, unpad


class XMemInferenceCore:
    """Runs XMem frame by frame over one video pass, holding its memory."""

    def __init__(self, network: XMem, config: XMemInferenceConfig | None = None) -> None:
        self.network = network
        self.config = config or XMemInferenceConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything (start of a new pass)."""
        self.memory = XMemMemory(self.config)
        self.frame_index = -1
        self.last_memory_frame = 0
        self.last_deep_update_frame = -self.config.deep_update_every
        self.num_objects: int | None = None

    @torch.no_grad()
    def step(self, image: torch.Tensor, masks: torch.Tensor | None = None, end: bool = False) -> torch.Tensor:
        """Process the next frame.

        image: ``3 x H x W`` normalised; masks: ``K x H x W`` object probabilities in [0, 1]
        for all objects (required on the first frame), or None to predict them; end: the last
        frame of the pass (nothing is written to memory).
        Returns ``(K + 1) x H x W`` probabilities, background first.
        """
        self.frame_index += 1
        if masks is None and self.num_objects is None:
            raise ValueError("the first frame of a pass must come with masks")
        if masks is not None:
            if self.num_objects is not None and masks.shape[0] != self.num_objects:
                raise NotImplementedError("the number of objects cannot change within a pass")
            self.num_objects = masks.shape[0]

        config = self.config
        padded_image, padding = pad_to_multiple(image)
        padded_image = padded_image.unsqueeze(0)

        is_memory_frame = (
            masks is not None or self.frame_index - self.last_memory_frame >= config.mem_every
        ) and not end
        need_segment = masks is None
        if config.deep_update_synchronised:
            is_deep_update = is_memory_frame
        else:
            is_deep_update = self.frame_index - self.last_deep_update_frame >= config.deep_update_every and not end
        # with a deep update on this frame, the decoder's hidden update is skipped
        is_normal_update = not (config.deep_update_synchronised and is_deep_update) and not end

        key, shrinkage, selection, f16, f8, f4 = self.network.encode_key(
            padded_image,
            need_shrinkage=is_memory_frame,
            need_selection=config.enable_long_term or need_segment,
        )

        if need_segment:
            readout = self.memory.read(key, selection).unsqueeze(0)
            hidden, _, prob = self.network.segment(
                (f16, f8, f4), readout, self.memory.sensory, update_hidden=is_normal_update, strip_background=False
            )
            prob = prob[0]
            if is_normal_update:
                self.memory.sensory = hidden
        else:
            padded_masks, _ = pad_to_multiple(masks.to(padded_image))
            _, prob = soft_aggregate(padded_masks, dim=0)
            self.memory.init_sensory(self.num_objects, self.network.hidden_dim, key)

        if is_memory_frame:
            value, hidden = self.network.encode_value(
                padded_image, f16, self.memory.sensory, prob[1:].unsqueeze(0), is_deep_update=is_deep_update
            )
            self.memory.add(key, shrinkage, value, selection if config.enable_long_term else None)
            self.last_memory_frame = self.frame_index
            if is_deep_update:
                self.memory.sensory = hidden
                self.last_deep_update_frame = self.frame_index

        return unpad(prob, padding)


def run_pass(
    core: XMemInferenceCore, images: Iterable[torch.Tensor], first_masks: torch.Tensor, length: int
) -> Iterator[torch.Tensor]:
    """Run a fresh pass: ``first_masks`` (``K x H x W``) go with the first of ``length`` images.

    Yields ``(K + 1) x H x W`` probabilities per frame (the first one is the aggregated input).
    """
    core.reset()
    for index, image in enumerate(images):
        yield core.step(image, first_masks if index == 0 else None, end=index == length - 1)
