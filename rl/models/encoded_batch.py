"""``EncodedBatch``: prompt + response token batch with multimodal inputs, for log-probs and training.

Layout of every row (``P`` = prompt width, ``R`` = response width, ``L = P + R``)::

    input_ids  [pad ... pad | prompt tokens][response tokens | pad ... pad]
                <------------ P ----------><------------- R ----------->

Prompts are left-padded and responses right-padded, so response token ``j`` of every
row sits at column ``P + j`` and is predicted by the logits at column ``P + j - 1``.
Images stay per sample (``pixel_values[i]``, ``image_grid_thw[i]``) so any subset can be
re-assembled: :meth:`select`, :meth:`split` and :meth:`concat` never re-run the processor.
The object holds only tensors, ints and lists, so it pickles (Ray ships it between workers).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import torch

__all__ = ["EncodedBatch", "PackedRows"]


def _pad_cols(t: torch.Tensor, left: int, right: int, value: int, dim: int = -1) -> torch.Tensor:
    if left == 0 and right == 0:
        return t
    pad_shape_l = list(t.shape)
    pad_shape_l[dim] = left
    pad_shape_r = list(t.shape)
    pad_shape_r[dim] = right
    parts = [t.new_full(pad_shape_l, value), t, t.new_full(pad_shape_r, value)]
    return torch.cat(parts, dim=dim)


@dataclass
class EncodedBatch:
    """Tokenised prompt + response pairs.

    input_ids, attention_mask, mm_token_type_ids: ``(B, L)`` long; position_ids: ``(3, B, L)``
    long (M-RoPE temporal/height/width, 0 on padding); responses, response_mask: ``(B, R)``
    long (mask 1 up to and including the first stop token); pixel_values[i]:
    ``(num_patches_i, C*T*p*p)`` float or ``None``; image_grid_thw[i]: ``(num_images_i, 3)`` or ``None``.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    responses: torch.Tensor
    response_mask: torch.Tensor
    pixel_values: list[torch.Tensor | None]
    image_grid_thw: list[torch.Tensor | None]
    pad_token_id: int
    # (spatial_merge_size, tokens_per_second) the position ids were computed with.
    rope_params: tuple[int, int] = field(default=(2, 2))

    def __post_init__(self) -> None:
        b, length = self.input_ids.shape
        r = self.responses.shape[1]
        problems = []
        for name in ("attention_mask", "mm_token_type_ids"):
            if tuple(getattr(self, name).shape) != (b, length):
                problems.append(f"{name} {tuple(getattr(self, name).shape)} != {(b, length)}")
        if tuple(self.position_ids.shape) != (3, b, length):
            problems.append(f"position_ids {tuple(self.position_ids.shape)} != {(3, b, length)}")
        if tuple(self.response_mask.shape) != (b, r) or self.responses.shape[0] != b:
            problems.append(f"responses {tuple(self.responses.shape)} / response_mask "
                            f"{tuple(self.response_mask.shape)} != {(b, r)}")
        if r > length:
            problems.append(f"response width {r} > sequence width {length}")
        if len(self.pixel_values) != b or len(self.image_grid_thw) != b:
            problems.append(f"{len(self.pixel_values)} pixel_values / {len(self.image_grid_thw)} image_grid_thw "
                            f"entries for {b} rows")
        if problems:
            raise ValueError("inconsistent EncodedBatch: " + "; ".join(problems))

    # ------------------------------------------------------------------ shape info

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    @property
    def prompt_width(self) -> int:
        """``P``: number of prompt columns (left-padded)."""
        return self.input_ids.shape[1] - self.responses.shape[1]

    @property
    def response_width(self) -> int:
        """``R``: number of response columns (right-padded)."""
        return self.responses.shape[1]

    @property
    def response_lengths(self) -> torch.Tensor:
        """``(B,)`` number of valid response tokens per row."""
        return self.response_mask.sum(-1)

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    # ------------------------------------------------------------------ model inputs

    def model_inputs(self) -> dict[str, torch.Tensor | None]:
        """Keyword arguments for ``Qwen2_5_VLForConditionalGeneration.forward``."""
        pix = [p for p in self.pixel_values if p is not None]
        grids = [g for g in self.image_grid_thw if g is not None]
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "position_ids": self.position_ids,
            "mm_token_type_ids": self.mm_token_type_ids,
            "pixel_values": torch.cat(pix, 0) if pix else None,
            "image_grid_thw": torch.cat(grids, 0) if grids else None,
        }

    # ------------------------------------------------------------------ subsets

    def select(self, indices: Sequence[int] | torch.Tensor) -> "EncodedBatch":
        """Rows ``indices`` (any order, repeats allowed); widths ``P`` and ``R`` are kept."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"EncodedBatch.select: index out of range for a batch of {len(self)}")
        rows = idx.tolist()
        dev_idx = idx.to(self.device)
        return replace(
            self,
            input_ids=self.input_ids[dev_idx],
            attention_mask=self.attention_mask[dev_idx],
            position_ids=self.position_ids[:, dev_idx],
            mm_token_type_ids=self.mm_token_type_ids[dev_idx],
            responses=self.responses[dev_idx],
            response_mask=self.response_mask[dev_idx],
            pixel_values=[self.pixel_values[i] for i in rows],
            image_grid_thw=[self.image_grid_thw[i] for i in rows],
        )

    def split(self, micro_batch_size: int) -> list["EncodedBatch"]:
        """Consecutive chunks of at most ``micro_batch_size`` rows."""
        if micro_batch_size <= 0:
            raise ValueError(f"micro_batch_size must be > 0, got {micro_batch_size}")
        return [self.select(range(i, min(i + micro_batch_size, len(self)))) for i in range(0, len(self),
                                                                                              micro_batch_size)]

    def trimmed(self) -> "EncodedBatch":
        """Drop prompt columns that are padding in every row and response columns masked in every row."""
        p, r = self.prompt_width, self.response_width
        prompt_used = self.attention_mask[:, :p].any(0)
        first = int(prompt_used.nonzero()[0]) if bool(prompt_used.any()) else p
        resp_used = self.response_mask.any(0)
        keep_r = int(resp_used.nonzero()[-1]) + 1 if bool(resp_used.any()) else 0
        if first == 0 and keep_r == r:
            return self
        cols = slice(first, p + keep_r)
        return replace(
            self,
            input_ids=self.input_ids[:, cols],
            attention_mask=self.attention_mask[:, cols],
            position_ids=self.position_ids[:, :, cols],
            mm_token_type_ids=self.mm_token_type_ids[:, cols],
            responses=self.responses[:, :keep_r],
            response_mask=self.response_mask[:, :keep_r],
        )

    def padded_to(self, prompt_width: int, response_width: int) -> "EncodedBatch":
        """The same rows with the prompt region left-padded to ``prompt_width`` and the response
        region right-padded to ``response_width`` (both must be >= the current widths)."""
        dp, dr = prompt_width - self.prompt_width, response_width - self.response_width
        if dp < 0 or dr < 0:
            raise ValueError(
                f"cannot pad a batch of widths P={self.prompt_width}, R={self.response_width} "
                f"to P={prompt_width}, R={response_width}"
            )
        return replace(
            self,
            input_ids=_pad_cols(self.input_ids, dp, dr, self.pad_token_id),
            attention_mask=_pad_cols(self.attention_mask, dp, dr, 0),
            position_ids=_pad_cols(self.position_ids, dp, dr, 0),
            mm_token_type_ids=_pad_cols(self.mm_token_type_ids, dp, dr, 0),
            responses=_pad_cols(self.responses, 0, dr, self.pad_token_id),
            response_mask=_pad_cols(self.response_mask, 0, dr, 0),
        )

    @staticmethod
    def concat(batches: Sequence["EncodedBatch"]) -> "EncodedBatch":
        """Rows of all ``batches`` in order, re-padded to the widest prompt and response."""
        if not batches:
            raise ValueError("EncodedBatch.concat needs at least one batch")
        first = batches[0]
        for b in batches[1:]:
            if b.pad_token_id != first.pad_token_id or tuple(b.rope_params) != tuple(first.rope_params):
                raise ValueError("EncodedBatch.concat: batches differ in pad_token_id or rope_params")
        p = max(b.prompt_width for b in batches)
        r = max(b.response_width for b in batches)
        padded = [b.padded_to(p, r) for b in batches]
        return replace(
            first,
            input_ids=torch.cat([b.input_ids for b in padded]),
            attention_mask=torch.cat([b.attention_mask for b in padded]),
            position_ids=torch.cat([b.position_ids for b in padded], dim=1),
            mm_token_type_ids=torch.cat([b.mm_token_type_ids for b in padded]),
            responses=torch.cat([b.responses for b in padded]),
            response_mask=torch.cat([b.response_mask for b in padded]),
            pixel_values=[x for b in padded for x in b.pixel_values],
            image_grid_thw=[x for b in padded for x in b.image_grid_thw],
        )

    def row_lengths(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(prompt_lengths, response_lengths)``, each ``(B,)`` long: valid tokens per row."""
        return self.attention_mask[:, :self.prompt_width].sum(-1), self.response_mask.sum(-1)

    def packed(self) -> "PackedRows":
        """The valid tokens of every row, concatenated into one padding-free row (:class:`PackedRows`)."""
        return PackedRows.from_batch(self)

    def to(self, device: str | torch.device) -> "EncodedBatch":
        """All tensors (including per-sample images) on ``device``."""

        def mv(x):
            return None if x is None else x.to(device)

        return replace(
            self,
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            position_ids=self.position_ids.to(device),
            mm_token_type_ids=self.mm_token_type_ids.to(device),
            responses=self.responses.to(device),
            response_mask=self.response_mask.to(device),
            pixel_values=[mv(x) for x in self.pixel_values],
            image_grid_thw=[mv(x) for x in self.image_grid_thw],
        )


@dataclass
class PackedRows:
    """The valid tokens of an :class:`EncodedBatch` packed into one row of ``T`` tokens (no padding).

    Row ``i``'s prompt then response tokens follow row ``i - 1``'s. ``position_ids`` is
    ``(4, 1, T)``: row 0 restarts at 0 for every sequence (text positions, from which the model
    derives the sequence boundaries: flash-attention 2 varlen ``cu_seqlens``, a block-diagonal
    causal mask for sdpa / eager), rows 1..3 are the batch's M-RoPE positions of the same tokens.

    input_ids, mm_token_type_ids: ``(1, T)``; logit_index: ``(K,)`` packed positions whose logits
    predict the ``K`` valid response tokens ``targets`` ``(K,)``, which sit at
    ``(target_rows, target_cols)`` of the batch's ``(B, R)`` response matrix.
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    mm_token_type_ids: torch.Tensor
    pixel_values: torch.Tensor | None
    image_grid_thw: torch.Tensor | None
    logit_index: torch.Tensor
    targets: torch.Tensor
    target_rows: torch.Tensor
    target_cols: torch.Tensor
    seq_lengths: torch.Tensor

    @classmethod
    def from_batch(cls, batch: EncodedBatch) -> "PackedRows":
        valid = batch.attention_mask.bool()                             # (B, L)
        p = batch.prompt_width
        resp = batch.response_mask.bool()                               # (B, R)
        if not bool((valid[:, p:] == resp).all()):
            raise ValueError("PackedRows: the attention mask of the response columns must equal response_mask")
        if bool(((batch.attention_mask[:, :p].sum(-1) == 0) & resp.any(-1)).any()):
            raise ValueError("PackedRows: a row with response tokens has no prompt token to predict them")
        lengths = valid.sum(-1)                                         # (B,)
        packed_index = valid.reshape(-1).long().cumsum(0).reshape(valid.shape) - 1   # (B, L)
        target_rows, target_cols = resp.nonzero(as_tuple=True)
        logit_index = packed_index[:, p:][target_rows, target_cols] - 1
        starts = torch.cumsum(lengths, 0) - lengths
        text_pos = torch.arange(int(lengths.sum()), device=valid.device) - torch.repeat_interleave(starts, lengths)
        mrope = batch.position_ids[:, valid]                            # (3, T)
        inputs = batch.model_inputs()
        return cls(
            input_ids=batch.input_ids[valid].unsqueeze(0),
            position_ids=torch.cat([text_pos.unsqueeze(0), mrope], 0).unsqueeze(1),
            mm_token_type_ids=batch.mm_token_type_ids[valid].unsqueeze(0),
            pixel_values=inputs["pixel_values"],
            image_grid_thw=inputs["image_grid_thw"],
            logit_index=logit_index,
            targets=batch.responses[target_rows, target_cols],
            target_rows=target_rows,
            target_cols=target_cols,
            seq_lengths=lengths,
        )

    @property
    def num_tokens(self) -> int:
        """``T``: tokens of the packed row."""
        return self.input_ids.shape[1]

    def model_inputs(self) -> dict[str, torch.Tensor | None]:
        """Keyword arguments for ``Qwen2_5_VLForConditionalGeneration.forward`` (no attention mask)."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": None,
            "position_ids": self.position_ids,
            "mm_token_type_ids": self.mm_token_type_ids,
            "pixel_values": self.pixel_values,
            "image_grid_thw": self.image_grid_thw,
        }
