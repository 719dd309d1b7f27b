"""XMem (Cheng & Schwing, ECCV 2022, MIT licence) implemented in this repository.

- :class:`XMem`: the network; parameter names match the released ``XMem.pth``.
- :class:`XMemInferenceConfig`: the memory scheme's settings (XMem's evaluation defaults).
- :class:`XMemInferenceCore`: per-frame inference with working/long-term/sensory memory.
- :class:`XMemPropagator`: bidirectional keyframe propagation (the ``Propagator`` protocol).
"""

from rl.eval.xmem.checkpoint import build_xmem, load_state_dict_file
from rl.eval.xmem.config import XMemInferenceConfig
from rl.eval.xmem.inference import XMemInferenceCore
from rl.eval.xmem.memory import XMemMemory
from rl.eval.xmem.network import XMem
from rl.eval.xmem.propagator import XMemPropagator

__all__ = [
    "XMem",
    "XMemInferenceConfig",
    "XMemInferenceCore",
    "XMemMemory",
    "XMemPropagator",
    "build_xmem",
    "load_state_dict_file",
]
