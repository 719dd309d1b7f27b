"""XMem network: checkpoint compatibility (names, shapes, strict loading) and tensor shapes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rewards.vision.xmem import XMem, build_xmem, load_state_dict_file
from tests.rewards.vision.test_vision_xmem_memory import brute_force_read

REFERENCE_KEYS = Path(__file__).parent / "data" / "xmem_state_dict_keys.txt"


def parse_reference(path: Path) -> tuple[int, int, list[tuple[str, tuple[int, ...]]]]:
    """(entry count, element count) from the header and the ``key (shape)`` entries."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    num_entries, num_elements = (int(token) for token in lines[0].split())
    entries = []
    for line in lines[1:]:
        key, shape_text = line.split(" ", 1)
        shape = tuple(int(dim) for dim in shape_text.strip("()").replace(" ", "").split(",") if dim)
        entries.append((key, shape))
    return num_entries, num_elements, entries


@pytest.fixture(scope="module")
def network() -> XMem:
    torch.manual_seed(0)
    return XMem().eval()


@pytest.fixture(scope="module")
def reference() -> tuple[int, int, list[tuple[str, tuple[int, ...]]]]:
    assert REFERENCE_KEYS.is_file(), f"reference key list missing: {REFERENCE_KEYS}"
    return parse_reference(REFERENCE_KEYS)


def test_reference_file_is_self_consistent(reference) -> None:
    num_entries, num_elements, entries = reference
    assert len(entries) == num_entries == 412
    # the header's element total counts the non-scalar tensors (58 BN num_batches_tracked are scalars)
    assert sum(math.prod(shape) for _, shape in entries if shape) == num_elements == 62_220_296


def test_state_dict_matches_released_checkpoint_exactly(network, reference) -> None:
    _, num_elements, entries = reference
    state = network.state_dict()
    assert [(key, tuple(tensor.shape)) for key, tensor in state.items()] == entries
    assert sum(tensor.numel() for tensor in state.values() if tensor.dim() > 0) == num_elements


def test_state_dict_round_trip_strict(network, tmp_path) -> None:
    path = tmp_path / "XMem.pth"
    torch.save(network.state_dict(), path)
    loaded = build_xmem(path)
    assert not loaded.training
    reloaded_state = loaded.state_dict()
    for key, tensor in network.state_dict().items():
        assert torch.equal(reloaded_state[key], tensor), key
    # an incomplete checkpoint must not load silently
    partial = load_state_dict_file(path)
    partial.pop("decoder.pred.bias")
    with pytest.raises(RuntimeError, match="decoder.pred.bias"):
        XMem().load_state_dict(partial, strict=True)


def test_missing_checkpoint_names_the_path(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "XMem.pth"
    with pytest.raises(FileNotFoundError, match="nowhere/XMem.pth"):
        build_xmem(missing)


def test_inference_methods_shapes(network) -> None:
    torch.manual_seed(1)
    batch, objects, height, width = 1, 2, 32, 48
    h, w = height // 16, width // 16
    frame = torch.randn(batch, 3, height, width)
    with torch.no_grad():
        key, shrinkage, selection, f16, f8, f4 = network.encode_key(frame)
        assert key.shape == (batch, 64, h, w) and selection.shape == (batch, 64, h, w)
        assert shrinkage.shape == (batch, 1, h, w) and bool((shrinkage >= 1).all())
        assert bool(((selection > 0) & (selection < 1)).all())
        assert (f16.shape, f8.shape, f4.shape) == (
            (batch, 1024, h, w),
            (batch, 512, 2 * h, 2 * w),
            (batch, 256, 4 * h, 4 * w),
        )
        none_key = network.encode_key(frame, need_shrinkage=False, need_selection=False)
        assert none_key[1] is None and none_key[2] is None

        hidden = torch.zeros(batch, objects, 64, h, w)
        masks = torch.rand(batch, objects, height, width)
        value, new_hidden = network.encode_value(frame, f16, hidden, masks, is_deep_update=True)
        assert value.shape == (batch, objects, 512, h, w) and new_hidden.shape == hidden.shape
        assert not torch.equal(new_hidden, hidden)
        _, same_hidden = network.encode_value(frame, f16, hidden, masks, is_deep_update=False)
        assert same_hidden is hidden

        memory_key = key.unsqueeze(2)  # B x CK x T=1 x h x w
        readout = network.read_memory(key, selection, memory_key, shrinkage.unsqueeze(2), value.unsqueeze(3))
        assert readout.shape == (batch, objects, 512, h, w)

        out_hidden, logits, prob = network.segment((f16, f8, f4), readout, hidden, strip_background=False)
        assert out_hidden.shape == hidden.shape
        assert logits.shape == prob.shape == (batch, objects + 1, height, width)
        torch.testing.assert_close(prob.sum(dim=1), torch.ones(batch, height, width))
        no_hidden, _, stripped = network.segment((f16, f8, f4), readout, hidden, update_hidden=False)
        assert no_hidden is None and stripped.shape == (batch, objects, height, width)


@pytest.mark.parametrize("top_k", [None, 4])
def test_read_memory_equals_brute_force(network, top_k) -> None:
    generator = torch.Generator().manual_seed(2)
    key_dim, frames, objects, value_dim, h, w = 8, 3, 2, 5, 2, 3
    query_key = torch.randn(1, key_dim, h, w, generator=generator, dtype=torch.float64)
    query_selection = torch.rand(1, key_dim, h, w, generator=generator, dtype=torch.float64)
    memory_key = torch.randn(1, key_dim, frames, h, w, generator=generator, dtype=torch.float64)
    memory_shrinkage = 1 + torch.rand(1, 1, frames, h, w, generator=generator, dtype=torch.float64)
    memory_value = torch.randn(1, objects, value_dim, frames, h, w, generator=generator, dtype=torch.float64)

    readout = network.read_memory(query_key, query_selection, memory_key, memory_shrinkage, memory_value, top_k)

    expected, _ = brute_force_read(
        memory_key[0].flatten(1).numpy(),
        memory_shrinkage[0, 0].flatten().numpy(),
        memory_value[0].flatten(2).numpy(),
        query_key[0].flatten(1).numpy(),
        query_selection[0].flatten(1).numpy(),
        top_k,
    )
    assert readout.shape == (1, objects, value_dim, h, w)
    np.testing.assert_allclose(readout[0].flatten(2).numpy(), expected, rtol=1e-9, atol=1e-12)
