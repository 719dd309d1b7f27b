"""XMem (Cheng & Schwing, ECCV 2022, MIT licence) implemented in this repository.

- :class:`XMem`: the network; parameter names match the released ``XMem.pth``.
- :class:`XMemInferenceConfig`: the memory scheme's settings (XMem's evaluation defaults).
- :class:`XMemInferenceCore`: per-frame inference with working/long-term/sensory memory.
- :class:`XMemPropagator`: bidirectional keyframe propagation (the ``Propagator`` protocol).
"""

from rewards.vision.xmem.checkpoint import build_xmem, load_state_dict_file
from rewards.vision.xmem.config import XMemInferenceConfig
from rewards.vision.xmem.inference import XMemInferenceCore
from rewards.vision.xmem.memory import XMemMemory
from rewards.vision.xmem.network import XMem
from rewards.vision.xmem.propagator import XMemPropagator

__all__ = [
    "XMem",
    "XMemInferenceConfig",
    "XMemInferenceCore",
    "XMemMemory",
    "XMemPropagator",
    "build_xmem",
    "load_state_dict_file",
]
