"""XMem memory scheme against brute-force expectations (no network involved)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rewards.vision.xmem.affinity import memory_similarity, topk_softmax
from rewards.vision.xmem.config import XMemInferenceConfig
from rewards.vision.xmem.memory import XMemMemory
from rewards.vision.xmem.memory_store import KeyValueMemoryStore

KEY_DIM, VALUE_DIM, OBJECTS = 8, 5, 2
H, W = 2, 3  # memory elements per frame: 6


def brute_force_read(
    memory_key: np.ndarray,
    memory_shrinkage: np.ndarray,
    memory_value: np.ndarray,
    query_key: np.ndarray,
    query_selection: np.ndarray | None,
    top_k: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per query: XMem similarity to every element, softmax over the top-k only, weighted values.

    memory_key: CK x N; memory_shrinkage: N; memory_value: K x CV x N; query_key/selection: CK x M.
    Returns (readout K x CV x M, weights N x M).
    """
    key_dim, num_elements = memory_key.shape
    num_queries = query_key.shape[1]
    weights = np.zeros((num_elements, num_queries))
    for m in range(num_queries):
        selection = np.ones(key_dim) if query_selection is None else query_selection[:, m]
        scores = np.zeros(num_elements)
        for n in range(num_elements):
            distance = np.sum(selection * (memory_key[:, n] - query_key[:, m]) ** 2)
            scores[n] = -memory_shrinkage[n] * distance / math.sqrt(key_dim)
        keep = np.argsort(-scores, kind="stable")[: (top_k or num_elements)]
        exp = np.exp(scores[keep] - scores[keep].max())
        weights[keep, m] = exp / exp.sum()
    return np.einsum("kcn,nm->kcm", memory_value, weights), weights


def random_frame(generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One memory frame: key 1 x CK x H x W, shrinkage 1 x 1 x H x W, value 1 x K x CV x H x W, selection."""
    return {
        "key": torch.randn(1, KEY_DIM, H, W, generator=generator, dtype=torch.float64),
        "shrinkage": 1 + torch.rand(1, 1, H, W, generator=generator, dtype=torch.float64) * 3,
        "value": torch.randn(1, OBJECTS, VALUE_DIM, H, W, generator=generator, dtype=torch.float64),
        "selection": torch.rand(1, KEY_DIM, H, W, generator=generator, dtype=torch.float64),
    }


def random_query(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return (
        torch.randn(1, KEY_DIM, H, W, generator=generator, dtype=torch.float64),
        torch.rand(1, KEY_DIM, H, W, generator=generator, dtype=torch.float64),
    )


def flat(store: KeyValueMemoryStore) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return store.key[0].numpy(), store.shrinkage[0, 0].numpy(), store.value.numpy()


def test_similarity_matches_weighted_distance() -> None:
    generator = torch.Generator().manual_seed(0)
    memory_key = torch.randn(1, KEY_DIM, 7, generator=generator, dtype=torch.float64)
    shrinkage = 1 + torch.rand(1, 1, 7, generator=generator, dtype=torch.float64)
    query_key = torch.randn(1, KEY_DIM, 4, generator=generator, dtype=torch.float64)
    selection = torch.rand(1, KEY_DIM, 4, generator=generator, dtype=torch.float64)
    similarity = memory_similarity(memory_key, shrinkage, query_key, selection)[0]
    for n in range(7):
        for m in range(4):
            distance = torch.sum(selection[0, :, m] * (memory_key[0, :, n] - query_key[0, :, m]) ** 2)
            expected = -shrinkage[0, 0, n] * distance / math.sqrt(KEY_DIM)
            assert similarity[n, m].item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-9)
    # without a selection, the result differs from the plain distance only by a per-query constant
    plain = memory_similarity(memory_key, None, query_key, None)[0]
    distance = ((memory_key[0, :, :, None] - query_key[0, :, None, :]) ** 2).sum(0) / math.sqrt(KEY_DIM)
    offset = plain + distance
    torch.testing.assert_close(offset, offset[:1].expand_as(offset))


@pytest.mark.parametrize("top_k", [1, 3, None])
def test_topk_softmax_keeps_top_k_and_normalises(top_k) -> None:
    similarity = torch.randn(1, 9, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    affinity = topk_softmax(similarity, top_k)
    torch.testing.assert_close(affinity.sum(dim=1), torch.ones(1, 5, dtype=torch.float64))
    assert ((affinity > 0).sum(dim=1) == (top_k or 9)).all()


def test_topk_read_equals_brute_force_over_working_memory() -> None:
    generator = torch.Generator().manual_seed(2)
    memory = XMemMemory(XMemInferenceConfig(top_k=5))
    for _ in range(3):
        memory.add(**random_frame(generator))
    query_key, selection = random_query(generator)

    readout = memory.read(query_key, selection)

    expected, weights = brute_force_read(
        *flat(memory.working), query_key[0].flatten(1).numpy(), selection[0].flatten(1).numpy(), top_k=5
    )
    assert readout.shape == (OBJECTS, VALUE_DIM, H, W)
    np.testing.assert_allclose(readout.flatten(2).numpy(), expected, rtol=1e-9, atol=1e-12)
    # usage counting: each element accumulates the affinity it received, life counts the reads
    np.testing.assert_allclose(memory.working.use_count.numpy(), weights.sum(axis=1), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(memory.working.life_count.numpy(), 1.0, rtol=1e-6)


def make_long_term_memory(**overrides) -> XMemMemory:
    settings = dict(
        top_k=4, min_mid_term_frames=2, max_mid_term_frames=4, num_prototypes=3, max_long_term_elements=1000
    )
    settings.update(overrides)
    return XMemMemory(XMemInferenceConfig(**settings))


def test_consolidation_triggers_at_max_mid_term_frames_and_keeps_min() -> None:
    generator = torch.Generator().manual_seed(3)
    memory = make_long_term_memory()
    frames = []
    for index in range(4):
        frames.append(random_frame(generator))
        before_usage = memory.working.usage().clone() if memory.working.size else None
        memory.add(**frames[-1])
        if index < 3:
            assert memory.working_frames == index + 1 and not memory.long_term_engaged
            memory.read(*random_query(generator))  # accumulate usage
    # 4 frames = max_mid_term_frames: consolidated down to min_mid_term_frames = 2
    assert memory.working_frames == 2
    assert memory.long_term.size == 3
    # the first memory frame and the newest one stay in working memory
    expected_keys = torch.cat([frames[0]["key"].flatten(2), frames[3]["key"].flatten(2)], dim=-1)
    torch.testing.assert_close(memory.working.key, expected_keys)
    # prototypes are the most used candidates (frames 1 and 2)
    candidate_usage = before_usage[H * W :]
    candidate_keys = torch.cat([frames[1]["key"].flatten(2), frames[2]["key"].flatten(2)], dim=-1)[0]
    top = torch.argsort(candidate_usage, descending=True)[:3]
    prototype_keys = {tuple(column.tolist()) for column in memory.long_term.key[0].T}
    assert prototype_keys == {tuple(candidate_keys[:, i].tolist()) for i in top}


def test_prototype_values_are_potentiated_averages() -> None:
    generator = torch.Generator().manual_seed(4)
    memory = make_long_term_memory(num_prototypes=2)
    frames = [random_frame(generator) for _ in range(4)]
    for index, frame in enumerate(frames):
        memory.add(**frame)
        if index < 3:
            memory.read(*random_query(generator))

    def candidates(name: str) -> torch.Tensor:
        """Frames 1 and 2 (the consolidated ones), flattened: ... x C x 2HW."""
        return torch.cat([frames[1][name][0].flatten(-2), frames[2][name][0].flatten(-2)], dim=-1)

    cand_key = candidates("key").numpy()
    cand_shrink = candidates("shrinkage")[0].numpy()
    cand_sel = candidates("selection").numpy()
    cand_value = candidates("value").numpy()
    for p, proto_key in enumerate(memory.long_term.key[0].T.numpy()):
        index = int(np.flatnonzero(np.all(cand_key.T == proto_key, axis=1))[0])
        # the prototype is the query: its key and the selection of the candidate it came from
        expected_value, weights = brute_force_read(
            cand_key, cand_shrink, cand_value, proto_key[:, None], cand_sel[:, index : index + 1], top_k=None
        )
        np.testing.assert_allclose(memory.long_term.value[..., p].numpy(), expected_value[..., 0], rtol=1e-9)
        expected_shrinkage = weights[:, 0] @ cand_shrink
        np.testing.assert_allclose(memory.long_term.shrinkage[0, 0, p].item(), expected_shrinkage, rtol=1e-9)


def test_topk_read_equals_brute_force_with_long_term_memory() -> None:
    generator = torch.Generator().manual_seed(5)
    memory = make_long_term_memory()
    for _ in range(6):
        memory.add(**random_frame(generator))
        memory.read(*random_query(generator))
    assert memory.long_term_engaged
    query_key, selection = random_query(generator)
    lt_before, wm_before = memory.long_term.use_count.clone(), memory.working.use_count.clone()

    readout = memory.read(query_key, selection)

    lt_key, lt_shrink, lt_value = flat(memory.long_term)
    wm_key, wm_shrink, wm_value = flat(memory.working)
    expected, weights = brute_force_read(
        np.concatenate([lt_key, wm_key], axis=1),
        np.concatenate([lt_shrink, wm_shrink]),
        np.concatenate([lt_value, wm_value], axis=2),
        query_key[0].flatten(1).numpy(),
        selection[0].flatten(1).numpy(),
        top_k=4,
    )
    np.testing.assert_allclose(readout.flatten(2).numpy(), expected, rtol=1e-9, atol=1e-12)
    usage = weights.sum(axis=1)
    lt_size = memory.long_term.size
    np.testing.assert_allclose((memory.long_term.use_count - lt_before).numpy(), usage[:lt_size], atol=1e-6)
    np.testing.assert_allclose((memory.working.use_count - wm_before).numpy(), usage[lt_size:], atol=1e-6)


def test_long_term_memory_never_exceeds_max_elements() -> None:
    generator = torch.Generator().manual_seed(6)
    memory = make_long_term_memory(num_prototypes=3, max_long_term_elements=7)
    sizes = []
    for _ in range(30):
        memory.add(**random_frame(generator))
        memory.read(*random_query(generator))
        sizes.append(memory.long_term.size)
    assert max(sizes) == 7 and all(size <= 7 for size in sizes)
    assert 2 <= memory.working_frames < 4


def test_pruning_keeps_the_most_used_elements_in_order() -> None:
    generator = torch.Generator().manual_seed(7)
    store = KeyValueMemoryStore(count_usage=True)
    store.add(torch.arange(10.0).view(1, 1, 10), torch.ones(1, 1, 10), torch.zeros(1, 1, 10))
    for _ in range(3):
        store.update_usage(torch.rand(10, generator=generator))
    usage = store.usage().clone()
    store.prune_to(4)
    expected = sorted(np.argsort(-usage.numpy())[:4].tolist())
    assert store.size == 4
    assert store.key[0, 0].tolist() == [float(i) for i in expected]
    torch.testing.assert_close(store.usage(), usage[expected])


def test_pruning_drops_every_element_tied_at_the_cut_as_the_released_xmem() -> None:
    store = KeyValueMemoryStore(count_usage=True)
    store.add(torch.arange(6.0).view(1, 1, 6), torch.ones(1, 1, 6), torch.zeros(1, 1, 6))
    store.update_usage(torch.tensor([0.5, 0.2, 0.2, 0.2, 0.9, 0.1]))
    # 6 -> 4: two to drop; the 2nd smallest usage is 0.2, and only usages > 0.2 survive (elements 0 and 4).
    store.prune_to(4)
    assert store.size == 2 and store.key[0, 0].tolist() == [0.0, 4.0]
    torch.testing.assert_close(store.usage(), torch.tensor([0.5, 0.9]))


def test_pruning_without_usage_drops_the_oldest() -> None:
    store = KeyValueMemoryStore(count_usage=False)
    store.add(torch.arange(10.0).view(1, 1, 10), torch.ones(1, 1, 10), torch.zeros(1, 1, 10))
    store.prune_to(3)
    assert store.key[0, 0].tolist() == [7.0, 8.0, 9.0]


def test_without_long_term_memory_working_memory_grows() -> None:
    generator = torch.Generator().manual_seed(8)
    memory = XMemMemory(XMemInferenceConfig(enable_long_term=False, max_mid_term_frames=3, min_mid_term_frames=1))
    for _ in range(6):
        memory.add(**random_frame(generator))
    assert memory.working_frames == 6 and memory.long_term is None and memory.working.selection is None


@pytest.mark.parametrize(
    "overrides",
    [
        dict(mem_every=0),
        dict(min_mid_term_frames=5, max_mid_term_frames=5),
        dict(num_prototypes=20, max_long_term_elements=10),
        dict(top_k=0),
        dict(deep_update_every=0),
    ],
)
def test_config_rejects_inconsistent_settings(overrides) -> None:
    with pytest.raises(ValueError):
        XMemInferenceConfig(**overrides)


def test_config_defaults_are_xmem_release_defaults() -> None:
    config = XMemInferenceConfig()
    assert (config.mem_every, config.deep_update_every, config.top_k) == (5, -1, 30)
    assert (config.min_mid_term_frames, config.max_mid_term_frames) == (5, 10)
    assert (config.max_long_term_elements, config.num_prototypes, config.enable_long_term) == (10000, 128, True)
