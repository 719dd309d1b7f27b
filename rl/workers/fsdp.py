"""FSDP2 plumbing shared by the policy workers: process group, mesh, sharding, full weights.

Facts this module relies on (measured on the project's CPU machines):

* CPU runs use the gloo backend and ``init_device_mesh("cpu", (world,))``; GPUs use nccl.
* ``fully_shard`` is applied per decoder layer and per vision block, then to the root
  module. World size 1 goes through the same code (FSDP2 on a one-rank mesh).
* Full weights are gathered parameter by parameter with ``DTensor.full_tensor()`` (an
  all-gather, so a *collective*: every rank must walk the same iterator to its end).
  FSDP1's offloaded full-state-dict gather segfaults on CPU and is not used.

Every function that says "collective" must be called by all ranks together, in the same
order, or the job hangs.
"""

from __future__ import annotations

import datetime
import os
import re
import socket
from collections import Counter
from typing import Iterable, Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from torch.distributed.tensor import DTensor

from rl.config import FSDPConfig

__all__ = [
    "free_port",
    "init_distributed",
    "device_type",
    "build_mesh",
    "torch_dtype",
    "shardable_blocks",
    "apply_fsdp2",
    "full_tensor",
    "iter_full_tensors",
    "merge_lora_stream",
    "bucketize",
    "all_reduce_floats",
]

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def free_port() -> int:
    """A TCP port that is free on this host right now (for ``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def device_type() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def init_distributed(
    rank: int,
    world_size: int,
    master_addr: str = "127.0.0.1",
    master_port: Optional[int] = None,
    backend: Optional[str] = None,
    timeout_s: float = 1800.0,
) -> None:
    """Join the default process group (gloo on CPU, nccl on GPU).

    Idempotent: when this process already belongs to a group of the same rank and world
    size (e.g. an actor and a reference worker in one process), nothing happens; a group
    with another rank / world size is an error.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    if dist.is_initialized():
        if dist.get_rank() != rank or dist.get_world_size() != world_size:
            raise RuntimeError(
                f"process group already initialised as rank {dist.get_rank()}/{dist.get_world_size()}, "
                f"cannot join as rank {rank}/{world_size}"
            )
        return
    if master_port is None:
        if world_size > 1:
            raise ValueError("master_port is required when world_size > 1")
        master_port = free_port()
    backend = backend or ("nccl" if device_type() == "cuda" else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1))))
    dist.init_process_group(
        backend=backend,
        init_method=f"tcp://{master_addr}:{int(master_port)}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


def build_mesh(world_size: int) -> DeviceMesh:
    """1-D data-parallel mesh over all ranks of the default group."""
    return init_device_mesh(device_type(), (world_size,), mesh_dim_names=("dp",))


def torch_dtype(name: str) -> Optional[torch.dtype]:
    """``"float32" | "bfloat16" | "float16"`` -> dtype; ``""`` -> None."""
    if not name:
        return None
    if name not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {list(_DTYPES)}")
    return _DTYPES[name]


def shardable_blocks(model: nn.Module) -> list[nn.Module]:
    """Transformer blocks to wrap one ``fully_shard`` unit each, in module order.

    Uses the model's ``_no_split_modules`` class names when it has them (Qwen2.5-VL:
    ``Qwen2_5_VLDecoderLayer`` and ``Qwen2_5_VLVisionBlock``); otherwise the children of
    every ``nn.ModuleList`` holding at least two modules of one class (repeated blocks).
    """
    inner = model
    while hasattr(inner, "get_base_model") and inner is not inner.get_base_model():  # peft wrapper
        inner = inner.get_base_model()
    names = set(getattr(inner, "_no_split_modules", None) or ())
    if names:
        blocks = [m for m in model.modules() if type(m).__name__ in names]
        if blocks:
            return blocks
    blocks = []
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) >= 2:
            cls, count = Counter(type(child) for child in module).most_common(1)[0]
            if count >= 2:
                blocks.extend(child for child in module if type(child) is cls)
    return blocks


def apply_fsdp2(model: nn.Module, mesh: DeviceMesh, cfg: FSDPConfig) -> nn.Module:
    """Shard ``model`` in place with FSDP2: one unit per block of :func:`shardable_blocks`, then the root.

    ``cfg.param_dtype`` / ``cfg.reduce_dtype`` give the ``MixedPrecisionPolicy`` ("" = keep
    the parameters' dtype); ``cfg.cpu_offload`` adds ``CPUOffloadPolicy``. Returns the model.
    """
    mp_policy = MixedPrecisionPolicy(param_dtype=torch_dtype(cfg.param_dtype), reduce_dtype=torch_dtype(cfg.reduce_dtype))
    # pinned host memory needs CUDA; on a CPU-only machine the offload is a no-op move anyway
    offload: OffloadPolicy = (
        CPUOffloadPolicy(pin_memory=torch.cuda.is_available()) if cfg.cpu_offload else OffloadPolicy()
    )
    kwargs = dict(mesh=mesh, mp_policy=mp_policy, offload_policy=offload)
    for block in shardable_blocks(model):
        fully_shard(block, reshard_after_forward=cfg.reshard_after_forward, **kwargs)
    fully_shard(model, reshard_after_forward=False, **kwargs)
    return model


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Unsharded CPU copy of a (possibly DTensor) parameter. Collective for DTensors."""
    if isinstance(tensor, DTensor):
        tensor = tensor.full_tensor()
    return tensor.detach().to("cpu", copy=True)


def iter_full_tensors(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(state-dict name, full CPU tensor)`` for every entry of ``model.state_dict()``.

    Collective: every rank must exhaust the iterator (each entry is one all-gather); each
    rank receives the full tensors.
    """
    if isinstance(model, FSDPModule):
        model.reshard()
    for name, tensor in model.state_dict().items():
        yield name, full_tensor(tensor)


_LORA_KEY = re.compile(r"^(?P<prefix>.+)\.(?P<kind>base_layer|lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.(?P<adapter>[^.]+))?\.(?P<param>weight|bias)$")


def lora_scalings(model: nn.Module) -> dict[str, float]:
    """``{module state-dict prefix: scaling}`` of every peft LoRA layer (active adapter)."""
    scalings = {}
    for name, module in model.named_modules():
        scaling = getattr(module, "scaling", None)
        if isinstance(scaling, dict) and hasattr(module, "base_layer") and scaling:
            adapters = getattr(module, "active_adapters", None) or list(scaling)
            if len(adapters) != 1:
                raise ValueError(f"LoRA layer {name} has {len(adapters)} active adapters; merging needs exactly one")
            scalings[name] = float(scaling[adapters[0]])
    return scalings


def _strip_peft_prefix(name: str) -> str:
    return name[len("base_model.model."):] if name.startswith("base_model.model.") else name


def merge_lora_stream(
    stream: Iterable[tuple[str, torch.Tensor]], scalings: dict[str, float]
) -> Iterator[tuple[str, torch.Tensor]]:
    """Merge peft LoRA entries of a state-dict stream into plain weights.

    ``X.base_layer.weight`` + ``X.lora_A.<a>.weight`` (r, in) + ``X.lora_B.<a>.weight``
    (out, r) become ``X.weight = W + scaling * B @ A``; ``X.base_layer.bias`` becomes
    ``X.bias``; the ``base_model.model.`` prefix is removed. Other entries pass through.
    """
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in stream:
        match = _LORA_KEY.match(name)
        if match is None or match["prefix"] not in scalings:
            yield _strip_peft_prefix(name), tensor
            continue
        prefix, kind, param = match["prefix"], match["kind"], match["param"]
        if kind == "base_layer" and param == "bias":
            yield _strip_peft_prefix(f"{prefix}.bias"), tensor
            continue
        if kind.startswith("lora_embedding"):
            raise NotImplementedError(f"merging LoRA embeddings is not supported ({name})")
        parts = pending.setdefault(prefix, {})
        parts[kind] = tensor
        if len(parts) == 3:
            base, lora_a, lora_b = parts["base_layer"], parts["lora_A"], parts["lora_B"]
            delta = (lora_b.float() @ lora_a.float()) * scalings[prefix]
            merged = (base.float() + delta.reshape(base.shape)).to(base.dtype)
            del pending[prefix]
            yield _strip_peft_prefix(f"{prefix}.weight"), merged
    if pending:
        raise RuntimeError(f"incomplete LoRA entries in the state dict for {sorted(pending)}")


def bucketize(
    stream: Iterable[tuple[str, torch.Tensor]], bucket_mb: float
) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group ``(name, tensor)`` pairs into lists of at most ``bucket_mb`` MB each.

    A tensor larger than the bucket gets a bucket of its own; order is preserved.
    """
    if bucket_mb <= 0:
        raise ValueError(f"bucket size must be > 0 MB, got {bucket_mb}")
    limit = bucket_mb * 1024 * 1024
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, tensor in stream:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > limit:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, tensor))
        size += nbytes
    if bucket:
        yield bucket


def all_reduce_floats(values: list[float], op: str = "sum") -> list[float]:
    """Sum (or ``op="max"``) a short list of numbers over all ranks. Collective."""
    tensor = torch.tensor(values, dtype=torch.float64)
    if dist.is_initialized() and dist.get_world_size() > 1:
        device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
        work = tensor.to(device) if device is not None else tensor
        dist.all_reduce(work, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        tensor = work.cpu()
    return tensor.tolist()
