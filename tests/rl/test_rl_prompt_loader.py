import pytest

from rl.prompt_loader import PromptLoader


def _records(n):
    return [{"id": i} for i in range(n)]


def test_each_epoch_is_a_permutation_and_batches_are_disjoint():
    loader = PromptLoader(_records(10), batch_size=3, seed=1)
    seen = [r["id"] for _ in range(3) for r in loader.next_batch()]
    assert len(seen) == 9 and len(set(seen)) == 9       # 3 batches of epoch 0, no repeats
    loader.next_batch()                                  # 1 left < 3: epoch 1 starts
    assert loader.state.epoch == 1 and loader.state.cursor == 3


def test_resume_reproduces_the_uninterrupted_order():
    straight = PromptLoader(_records(11), batch_size=4, seed=7)
    expected = [[r["id"] for r in straight.next_batch()] for _ in range(9)]
    first = PromptLoader(_records(11), batch_size=4, seed=7)
    got = [[r["id"] for r in first.next_batch()] for _ in range(4)]
    state = first.state_dict()
    resumed = PromptLoader(_records(11), batch_size=4, seed=7)
    resumed.load_state_dict(state)
    got += [[r["id"] for r in resumed.next_batch()] for _ in range(5)]
    assert got == expected


def test_seed_changes_order():
    a = PromptLoader(_records(20), 5, seed=0).next_batch()
    b = PromptLoader(_records(20), 5, seed=1).next_batch()
    assert a != b


def test_resume_with_a_different_dataset_is_refused():
    loader = PromptLoader(_records(10), 2)
    state = loader.state_dict()
    with pytest.raises(ValueError, match="records"):
        PromptLoader(_records(12), 2).load_state_dict(state)


def test_empty_or_too_small_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="no training records"):
        PromptLoader([], 2)
    with pytest.raises(ValueError, match="batch size"):
        PromptLoader(_records(2), 3)
