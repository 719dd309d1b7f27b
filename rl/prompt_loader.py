"""Resumable, deterministic prompt batches for the driver.

The order is a function of ``(seed, epoch)`` only, so a run resumed from a
checkpoint's ``state_dict()`` draws exactly the batches the uninterrupted run
would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class LoaderState:
    epoch: int = 0
    cursor: int = 0          # position inside the epoch's permutation
    batches_served: int = 0


class PromptLoader:
    """Yields batches of ``batch_size`` training records, reshuffled every epoch.

    A batch never straddles two epochs' permutations in a way that depends on
    history: when fewer than ``batch_size`` records remain, the epoch ends and
    the batch is taken from the next permutation.
    """

    def __init__(self, records: list[dict[str, Any]], batch_size: int, seed: int = 0):
        if not records:
            raise ValueError("PromptLoader: no training records (did the data build skip everything?)")
        if batch_size > len(records):
            raise ValueError(f"PromptLoader: batch size {batch_size} > number of records {len(records)}")
        self.records = records
        self.batch_size = batch_size
        self.seed = seed
        self.state = LoaderState()

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.records))

    def next_indices(self) -> list[int]:
        if self.state.cursor + self.batch_size > len(self.records):
            self.state.epoch += 1
            self.state.cursor = 0
        perm = self._permutation(self.state.epoch)
        idx = perm[self.state.cursor : self.state.cursor + self.batch_size].tolist()
        self.state.cursor += self.batch_size
        self.state.batches_served += 1
        return idx

    def next_batch(self) -> list[dict[str, Any]]:
        return [self.records[i] for i in self.next_indices()]

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.state.epoch, "cursor": self.state.cursor,
                "batches_served": self.state.batches_served, "seed": self.seed, "num_records": len(self.records)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state.get("num_records", len(self.records)) != len(self.records):
            raise ValueError(
                f"PromptLoader: checkpoint was written for {state['num_records']} records, "
                f"the data set now has {len(self.records)}; refusing to resume with a different data order"
            )
        self.seed = int(state.get("seed", self.seed))
        self.state = LoaderState(int(state["epoch"]), int(state["cursor"]), int(state["batches_served"]))
