"""Helpers of rl.workers.fsdp / batching that need no process group."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from rl.workers.batching import split_even
from rl.workers.fsdp import bucketize, free_port, merge_lora_stream, shardable_blocks


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)


class GenericModel(nn.Module):
    """No ``_no_split_modules``: blocks must be found as repeated children of a ModuleList."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.blocks = nn.ModuleList([Block() for _ in range(3)])
        self.heads = nn.ModuleList([nn.Linear(4, 2)])  # a single child is not a repeated block


def test_generic_block_detection():
    model = GenericModel()
    assert shardable_blocks(model) == list(model.blocks)


def test_bucketize_respects_the_limit_and_order():
    tensors = [(f"t{i}", torch.zeros(n)) for i, n in enumerate([10, 200_000, 5, 5, 300_000, 1])]
    buckets = list(bucketize(iter(tensors), bucket_mb=1))  # 1 MB = 262144 float32
    assert [n for b in buckets for n, _ in b] == [n for n, _ in tensors]
    for bucket in buckets:
        size = sum(t.numel() * 4 for _, t in bucket)
        assert size <= 1024 * 1024 or len(bucket) == 1
    # t4 (1.2 MB) is larger than a bucket: it gets one of its own
    assert [[n for n, _ in b] for b in buckets] == [["t0", "t1", "t2", "t3"], ["t4"], ["t5"]]
    with pytest.raises(ValueError, match="bucket"):
        list(bucketize(iter(tensors), 0))


def test_merge_lora_stream_by_hand():
    base, lora_a, lora_b = torch.randn(3, 2), torch.randn(1, 2), torch.randn(3, 1)
    stream = [
        ("base_model.model.lin.base_layer.weight", base),
        ("base_model.model.lin.base_layer.bias", torch.ones(3)),
        ("base_model.model.lin.lora_A.default.weight", lora_a),
        ("base_model.model.lin.lora_B.default.weight", lora_b),
        ("base_model.model.norm.weight", torch.ones(2)),
    ]
    merged = dict(merge_lora_stream(iter(stream), {"base_model.model.lin": 2.0}))
    assert set(merged) == {"lin.weight", "lin.bias", "norm.weight"}
    torch.testing.assert_close(merged["lin.weight"], base + 2.0 * lora_b @ lora_a)
    with pytest.raises(RuntimeError, match="incomplete LoRA"):
        list(merge_lora_stream(iter(stream[:1]), {"base_model.model.lin": 2.0}))


def test_split_even_and_free_port():
    assert split_even(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_even([0], 2) == [[0], []]
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # still free
