"""FSDP2 policy worker: one rank of the actor, reference or SFT group.

A plain class (no Ray inside): the driver wraps it in one Ray actor per rank and calls the
same method on every rank at the same time.

Collective methods -- every rank must call them together, in the same order, each with
*its own shard* of the data (the ranks' shards together form the global batch):

* :meth:`compute_log_prob` (shard in, shard out)
* :meth:`update_policy` (shard in, identical global metrics out on every rank)
* :meth:`sft_step` (shard in, identical global metrics out)
* :meth:`state_dict_buckets` (no data; every rank must exhaust the iterator, each receives
  the full weights; send them from rank 0)
* :meth:`save_checkpoint`, :meth:`load_checkpoint`, :meth:`export_hf` (same directory on
  every rank; shared filesystem for multi-node runs)

Global token-mean normalisation: inside :meth:`update_policy` and :meth:`sft_step` the
valid-token (and sequence) counts of each mini-batch are summed over all ranks and every
micro-batch loss is ``sum(token losses) / N_global * world_size`` (verl's ``agg_loss``), so
the averaged gradient equals that of the token mean over the global mini-batch, independent
of micro-batch size and world size.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn

from rl.algos import GlobalBatchInfo, check_actor_config, policy_loss
from rl.config import ActorConfig, ModelConfig, SFTConfig
from rl.workers import fsdp as fsdp_utils
from rl.workers.batching import MicroBatch, plan_micro_batches, plan_mini_batches, plan_token_micro_batches, row_lengths
from rl.workers.lora import adapter_tensors, lora_settings, lora_state, parameter_counts
from rl.workers.model_hooks import ModelHooks, apply_lora, default_hooks, take_rows, unwrap_hf
from rl.workers.optim import OptimSettings, build_optimizer, build_scheduler, clip_gradients
from rl.workers.state_io import load_dcp, read_worker_state, save_dcp, save_hf

log = logging.getLogger(__name__)

__all__ = ["PolicyWorker", "ROLES"]

ROLES = ("actor", "reference", "sft")


class PolicyWorker:
    """One rank of a policy group (``role``: actor | reference | sft).

    Args:
        model_path: HF model folder (weights, config, processor files).
        model_cfg: dtype, attention implementation, gradient checkpointing.
        actor_cfg: loss, micro-batch size, optimizer and FSDP settings.
        rank, world_size, master_addr, master_port: this rank of the group's process group.
        role: ``actor`` (GRPO updates), ``reference`` (frozen log-probs only) or ``sft``.
        sft_cfg: SFT settings (optimizer, micro-batch, LoRA); required for ``role="sft"``.
        total_steps: update calls over the whole run (length of the lr schedule).
        rollout_n: responses per prompt (``ppo_mini_batch_size`` counts prompts).
        temperature: sampling temperature the log-probs are computed at.
        hooks: model loading / log-prob functions (default: ``rl.models``).
        seed: torch seed set before model construction (LoRA init must agree across ranks).
    """

    def __init__(
        self,
        model_path: str,
        model_cfg: ModelConfig,
        actor_cfg: ActorConfig,
        rank: int = 0,
        world_size: int = 1,
        master_addr: str = "127.0.0.1",
        master_port: Optional[int] = None,
        role: str = "actor",
        sft_cfg: Optional[SFTConfig] = None,
        *,
        total_steps: int = 1,
        rollout_n: int = 1,
        temperature: float = 1.0,
        hooks: Optional[ModelHooks] = None,
        seed: int = 0,
    ):
        if role not in ROLES:
            raise ValueError(f"unknown worker role {role!r}; expected one of {list(ROLES)}")
        if role == "sft" and sft_cfg is None:
            raise ValueError("role='sft' needs sft_cfg")
        if not Path(model_path).is_dir():
            raise FileNotFoundError(f"policy model folder not found: {model_path}")
        if role == "actor":
            check_actor_config(actor_cfg)
        self.model_path = str(model_path)
        self.model_cfg, self.actor_cfg, self.sft_cfg = model_cfg, actor_cfg, sft_cfg
        self.role, self.rank, self.world_size = role, rank, world_size
        self.rollout_n, self.temperature = rollout_n, temperature
        self.hooks = hooks or default_hooks()
        self.global_step = 0

        fsdp_utils.init_distributed(rank, world_size, master_addr, master_port)
        self.device = torch.device(fsdp_utils.device_type())
        self.lora_cfg = lora_settings(role, actor_cfg, sft_cfg)   # None: full fine-tuning
        self.uses_lora = self.lora_cfg is not None
        with torch.random.fork_rng(devices=[]):  # same init on every rank, process RNG untouched
            torch.manual_seed(seed)
            model = self.hooks.load(self.model_path, model_cfg)
            if self.uses_lora:   # the actor adapts the language model only (what vLLM's LoRA serves)
                model = apply_lora(model, self.lora_cfg, language_model_only=role == "actor")
        if role == "reference":
            model.requires_grad_(False)
        elif model_cfg.gradient_checkpointing:
            unwrap_hf(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        fsdp_utils.apply_fsdp2(unwrap_hf(model), fsdp_utils.build_mesh(world_size), actor_cfg.fsdp)
        self.model: nn.Module = model
        self.hf_model: nn.Module = unwrap_hf(model)

        self.optimizer = self.scheduler = None
        if role != "reference":
            self.optim_settings = self._optim_settings(total_steps)
            self.optimizer = build_optimizer(self.model.parameters(), self.optim_settings)
            self.scheduler = build_scheduler(self.optimizer, self.optim_settings)

    # ------------------------------------------------------------------ setup helpers

    def _optim_settings(self, total_steps: int) -> OptimSettings:
        betas = tuple(self.actor_cfg.optim.betas)
        if self.role == "sft":
            s = self.sft_cfg
            return OptimSettings(s.lr, s.weight_decay, betas, s.lr_scheduler, s.warmup_ratio, s.grad_clip, total_steps)
        o = self.actor_cfg.optim
        return OptimSettings(o.lr, o.weight_decay, betas, o.lr_scheduler, o.warmup_ratio, o.grad_clip, total_steps)

    @property
    def micro_batch_size(self) -> int:
        if self.role == "sft":
            return self.sft_cfg.micro_batch_size_per_worker
        return self.actor_cfg.ppo_micro_batch_size_per_worker

    @property
    def max_tokens_per_micro_batch(self) -> int:
        """Token budget of a micro-batch (0: fixed-size micro-batches of :attr:`micro_batch_size`)."""
        if self.role == "sft":
            return getattr(self.sft_cfg, "max_tokens_per_micro_batch", 0)
        return self.actor_cfg.max_tokens_per_micro_batch

    @property
    def packs_rows(self) -> bool:
        """Token-budget micro-batches run packed (no padding) rather than padded (``actor.packing``)."""
        mode = getattr(self.actor_cfg, "packing", "padded")
        if self.max_tokens_per_micro_batch <= 0 or self.hooks.packed_logprobs is None or mode == "padded":
            return False
        return mode == "packed" or self.model_cfg.attn_implementation == "flash_attention_2"

    def _plan_micro(self, batch: Any, rows: list[int]) -> list[MicroBatch]:
        """Micro-batches of ``rows``: fixed-size, or by the token budget. Collective."""
        if self.max_tokens_per_micro_batch <= 0:
            return plan_micro_batches(rows, self.micro_batch_size)
        prompt, response = row_lengths(batch)
        return plan_token_micro_batches(rows, prompt, response, self.max_tokens_per_micro_batch, self.packs_rows,
                                        fallback_row=rows[0] if rows else 0)

    def _logprobs(self, sub: Any, temperature: float, with_entropy: bool):
        """(log-probs (b, R), entropy (b, R) | None) of a micro-batch, packed or padded."""
        fn = self.hooks.packed_logprobs if self.packs_rows else self.hooks.logprobs
        return fn(self.model, sub, temperature, with_entropy)

    def _require_trainable(self, method: str) -> None:
        if self.optimizer is None:
            raise RuntimeError(f"{method} is not available on a {self.role!r} worker")

    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0]) if self.scheduler is not None else 0.0

    def _to_device(self, tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if tensor is None else tensor.to(self.device)

    def _batch_to_device(self, batch: Any) -> Any:
        return batch if self.device.type == "cpu" else batch.to(self.device)

    # ------------------------------------------------------------------ log-probs

    @torch.no_grad()
    def compute_log_prob(self, batch: Any) -> torch.Tensor:
        """Log-probs (B, R) of this rank's shard's response tokens (0 where masked), on CPU.

        Used for reference and old log-probs. Collective: every rank calls it with its shard.
        """
        if len(batch) == 0:
            raise ValueError("compute_log_prob needs at least one sequence on every rank")
        self.model.eval()
        out = torch.zeros(tuple(batch.response_mask.shape), dtype=torch.float32)
        for micro in self._plan_micro(batch, list(range(len(batch)))):
            sub = self._batch_to_device(take_rows(batch, micro.rows))
            logp, _ = self._logprobs(sub, self.temperature, False)
            if not micro.padding:   # rows back in shard order (a token budget groups them by length)
                out[micro.rows] = logp.float().cpu() * sub.response_mask.cpu().to(torch.float32)
        return out

    @torch.no_grad()
    def compute_ref_log_prob(self, batch: Any) -> torch.Tensor:
        """Reference log-probs (B, R) of a LoRA actor: :meth:`compute_log_prob` with the adapters
        disabled (peft's ``disable_adapter``), i.e. under the frozen base model. Collective."""
        if not self.uses_lora:
            raise RuntimeError("compute_ref_log_prob needs a LoRA worker (actor.lora.rank > 0)")
        with self.model.disable_adapter():
            return self.compute_log_prob(batch)

    def parameter_counts(self) -> dict[str, int]:
        """``{"trainable", "total"}`` parameters of the model (LoRA: the adapters are the trainable ones)."""
        return parameter_counts(self.model)

    # ------------------------------------------------------------------ GRPO update

    def _check_rows(self, name: str, tensor: Optional[torch.Tensor], mask: torch.Tensor) -> None:
        if tensor is not None and tuple(tensor.shape) != tuple(mask.shape):
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}, expected {tuple(mask.shape)} (response_mask)")

    def _check_totals(self, method: str, mask: torch.Tensor, num_tokens: Optional[int], num_seqs: Optional[int]) -> None:
        """Compare the caller's global totals with the all-reduced shard totals. Collective."""
        tokens, seqs = fsdp_utils.all_reduce_floats([float(mask.sum()), float(mask.shape[0])])
        if num_tokens is not None and int(num_tokens) != int(tokens):
            raise ValueError(f"{method}: global_num_tokens={num_tokens} but the ranks' shards hold {int(tokens)} tokens")
        if num_seqs is not None and int(num_seqs) != int(seqs):
            raise ValueError(f"{method}: global_num_seqs={num_seqs} but the ranks' shards hold {int(seqs)} sequences")

    def _batch_info(self, mask: torch.Tensor) -> GlobalBatchInfo:
        """Totals of one mini-batch over all ranks. Collective."""
        tokens, seqs = fsdp_utils.all_reduce_floats([float(mask.sum()), float(mask.any(-1).sum())])
        return GlobalBatchInfo(dp_size=self.world_size, num_tokens=int(tokens), num_seqs=int(seqs))

    def _optimizer_step(self) -> float:
        """Clip, step (skipped when the gradient is not finite), zero grads. Collective."""
        grad_norm = clip_gradients(list(self.model.parameters()), self.optim_settings.grad_clip)
        if math.isfinite(grad_norm):
            self.optimizer.step()
        else:
            log.warning("rank %d: non-finite grad norm %s, optimizer step skipped", self.rank, grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        return grad_norm

    def update_policy(
        self,
        batch: Any,
        advantages: torch.Tensor,
        old_log_probs: Optional[torch.Tensor],
        ref_log_probs: Optional[torch.Tensor],
        global_num_tokens: Optional[int] = None,
        global_num_seqs: Optional[int] = None,
        loss_mask: Optional[torch.Tensor] = None,
        rollout_is_weights: Optional[torch.Tensor] = None,
    ) -> dict[str, float]:
        """One GRPO training step on this rank's shard. Collective.

        ``ppo_epochs`` x mini-batches x micro-batches; one optimizer step per mini-batch
        (``ppo_mini_batch_size * rollout_n / world_size`` sequences per rank), one
        lr-scheduler step per call.

        Args:
            batch: this rank's shard (B_r sequences); ``batch.response_mask`` (B_r, R).
            advantages: (B_r, R).
            old_log_probs: (B_r, R) log-probs of the sampling policy; None only when the step
                is a single optimizer step (then the current log-probs, detached, are used).
            ref_log_probs: (B_r, R); required with ``actor.use_kl_loss``.
            global_num_tokens / global_num_seqs: optional check: valid response tokens /
                sequences of the whole step over all ranks (a mismatch raises ValueError).
            loss_mask: (B_r, R) the tokens the loss counts (default ``batch.response_mask``;
                rollout rejection sampling removes some, :mod:`rl.rollout_corr`).
            rollout_is_weights: (B_r, R) rollout-correction IS weights of the policy loss (None: none).

        Returns:
            Metrics identical on every rank: ``actor/pg_loss``, ``actor/kl_loss``,
            ``actor/entropy``, ``actor/pg_clipfrac``, ``actor/ppo_kl`` (global token means,
            averaged over optimizer steps), ``actor/grad_norm``, ``actor/lr``.
        """
        if self.role != "actor":
            raise RuntimeError(f"update_policy is not available on a {self.role!r} worker")
        mask = (batch.response_mask if loss_mask is None else loss_mask).cpu().bool()
        for name, tensor in (("advantages", advantages), ("old_log_probs", old_log_probs),
                             ("ref_log_probs", ref_log_probs), ("loss_mask", loss_mask),
                             ("rollout_is_weights", rollout_is_weights)):
            self._check_rows(name, tensor, batch.response_mask)
        if len(batch) == 0:
            raise ValueError("update_policy needs at least one sequence on every rank")
        if self.actor_cfg.use_kl_loss and ref_log_probs is None:
            raise ValueError("actor.use_kl_loss is set but ref_log_probs is None")
        self._check_totals("update_policy", mask, global_num_tokens, global_num_seqs)

        local_mini = max(1, self.actor_cfg.ppo_mini_batch_size * self.rollout_n // self.world_size)
        mini_batches = plan_mini_batches(len(batch), local_mini)
        if old_log_probs is None and (self.actor_cfg.ppo_epochs > 1 or len(mini_batches) > 1):
            raise ValueError("old_log_probs is required when a step has more than one optimizer step "
                             f"({self.actor_cfg.ppo_epochs} epochs x {len(mini_batches)} mini-batches)")

        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        grad_norms = []
        lr = self.current_lr()
        for _ in range(self.actor_cfg.ppo_epochs):
            for rows in mini_batches:
                info = self._batch_info(mask[rows])
                for micro in self._plan_micro(batch, rows):
                    metrics = self._actor_micro_step(batch, micro, info, advantages, old_log_probs, ref_log_probs,
                                                     loss_mask, rollout_is_weights)
                    for key, value in metrics.items():
                        sums[key] += value
                grad_norms.append(self._optimizer_step())
        self.scheduler.step()
        self.global_step += 1

        keys = sorted(sums)
        reduced = fsdp_utils.all_reduce_floats([sums[k] for k in keys])
        num_steps = len(grad_norms)
        out = {k: v / num_steps for k, v in zip(keys, reduced)}
        out["actor/grad_norm"] = sum(grad_norms) / num_steps
        out["actor/lr"] = lr
        return out

    def _actor_micro_step(self, batch, micro: MicroBatch, info: GlobalBatchInfo, advantages,
                          old_log_probs, ref_log_probs, loss_mask=None, rollout_is_weights=None) -> dict[str, float]:
        rows = micro.rows
        sub = self._batch_to_device(take_rows(batch, rows))
        logp, entropy = self._logprobs(sub, self.temperature, True)
        old = logp.detach() if old_log_probs is None else self._to_device(old_log_probs[rows])
        ref = None if ref_log_probs is None else self._to_device(ref_log_probs[rows])
        loss, metrics = policy_loss(
            log_prob=logp, old_log_prob=old, advantages=self._to_device(advantages[rows]),
            response_mask=sub.response_mask if loss_mask is None else self._to_device(loss_mask[rows]),
            actor_cfg=self.actor_cfg, batch_info=info, ref_log_prob=ref, entropy=entropy,
            rollout_is_weights=None if rollout_is_weights is None else self._to_device(rollout_is_weights[rows]),
        )
        if micro.padding:
            loss = loss * 0.0
            metrics = {k: 0.0 for k in metrics}
        loss.backward()
        return metrics

    # ------------------------------------------------------------------ SFT

    def sft_step(self, batch: Any, global_num_tokens: Optional[int] = None) -> dict[str, float]:
        """One optimizer step of token-mean NLL on the target ("response") tokens. Collective.

        Args:
            batch: this rank's shard; targets are the response tokens, ``response_mask`` (B_r, R).
            global_num_tokens: optional check of the target tokens over all ranks.

        Returns:
            ``sft/loss`` (global token-mean NLL), ``sft/grad_norm``, ``sft/lr``, ``sft/num_tokens``.
        """
        from verl.trainer.ppo.core_algos import agg_loss

        self._require_trainable("sft_step")
        if len(batch) == 0:
            raise ValueError("sft_step needs at least one sequence on every rank")
        mask = batch.response_mask.cpu().bool()
        self._check_totals("sft_step", mask, global_num_tokens, None)
        info = self._batch_info(mask)
        lr = self.current_lr()
        self.model.train()
        loss_sum = 0.0
        for micro in self._plan_micro(batch, list(range(len(batch)))):
            sub = self._batch_to_device(take_rows(batch, micro.rows))
            logp, _ = self._logprobs(sub, 1.0, False)
            loss = agg_loss(loss_mat=-logp, loss_mask=sub.response_mask.bool(), loss_agg_mode="token-mean",
                            dp_size=info.dp_size, batch_num_tokens=max(info.num_tokens, 1))
            if micro.padding:
                loss = loss * 0.0
            loss.backward()
            loss_sum += float(loss.detach()) / info.dp_size
        grad_norm = self._optimizer_step()
        self.scheduler.step()
        self.global_step += 1
        (loss_total,) = fsdp_utils.all_reduce_floats([loss_sum])
        return {"sft/loss": loss_total, "sft/grad_norm": grad_norm, "sft/lr": lr, "sft/num_tokens": info.num_tokens}

    # ------------------------------------------------------------------ weights out

    def _full_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Full tensors with HF module names (LoRA merged). Collective."""
        stream = fsdp_utils.iter_full_tensors(self.model)
        if self.uses_lora:
            stream = fsdp_utils.merge_lora_stream(stream, fsdp_utils.lora_scalings(self.model))
        return stream

    def state_dict_buckets(self, bucket_mb: float = 256, checkpoint_names: bool = True
                           ) -> Iterator[list[tuple[str, torch.Tensor]]]:
        """Full weights in lists of ``(name, CPU tensor)`` of at most ``bucket_mb`` MB. Collective.

        Every rank must exhaust the iterator (each bucket costs all-gathers) and receives the
        same full tensors. LoRA adapters are merged. ``checkpoint_names=True`` gives the names
        of the HF checkpoint files (what ``save_pretrained`` writes, e.g. ``model.layers.0...``
        for Qwen2.5-VL); False gives the module state-dict names (``model.language_model...``).
        """
        for bucket in fsdp_utils.bucketize(self._full_weights(), bucket_mb):
            if checkpoint_names:
                from transformers.core_model_loading import revert_weight_conversion

                bucket = list(revert_weight_conversion(self.hf_model, dict(bucket)).items())
            yield bucket

    def adapter_buckets(self, bucket_mb: float = 256) -> Iterator[list[tuple[str, torch.Tensor]]]:
        """The LoRA adapter only, as peft saves it (``base_model.model.<module>.lora_A.weight`` (r, in),
        ``lora_B.weight`` (out, r); full CPU tensors), in buckets. Collective. For vLLM's LoRA serving."""
        if not self.uses_lora:
            raise RuntimeError("adapter_buckets needs a LoRA worker")
        yield from fsdp_utils.bucketize(adapter_tensors(self.model), bucket_mb)

    def export_hf(self, out_dir: str) -> Optional[Path]:
        """Write a ``save_pretrained`` folder (LoRA merged, processor files copied). Collective.

        All ranks gather the weights; rank 0 writes and returns the path (others return None).
        """
        state_dict = {}
        for name, tensor in self._full_weights():
            if self.rank == 0:
                state_dict[name] = tensor
        path = save_hf(self.hf_model, state_dict, out_dir, self.model_path) if self.rank == 0 else None
        if dist.is_initialized() and self.world_size > 1:
            dist.barrier()
        return path

    # ------------------------------------------------------------------ checkpoints

    @property
    def adapters_only(self) -> bool:
        """Whether checkpoints hold only the trainable adapters (a LoRA actor: the frozen base is the
        starting policy, loaded again at resume and by ``launch.export``)."""
        return self.uses_lora and self.role == "actor"

    def save_checkpoint(self, directory: str) -> Path:
        """Sharded DCP checkpoint of model (a LoRA actor: adapters only) + optimizer + lr scheduler
        + step. Collective."""
        state = {
            "global_step": self.global_step,
            "role": self.role,
            "world_size": self.world_size,
            "uses_lora": self.uses_lora,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }
        if self.adapters_only:
            targets = getattr(self.model, "peft_config", {}).get("default")
            state.update(adapters_only=True, lora=lora_state(self.lora_cfg, getattr(targets, "target_modules", None)))
        return save_dcp(directory, self.model, self.optimizer, state, trainable_only=self.adapters_only)

    def load_checkpoint(self, directory: str) -> dict[str, Any]:
        """Restore what :meth:`save_checkpoint` wrote (any world size). Collective."""
        state = read_worker_state(directory)
        if state.get("role") != self.role or state.get("uses_lora") != self.uses_lora:
            raise RuntimeError(
                f"checkpoint {directory} was written by a {state.get('role')!r} worker (lora={state.get('uses_lora')}), "
                f"this worker is {self.role!r} (lora={self.uses_lora})"
            )
        if bool(state.get("adapters_only")) != self.adapters_only:
            raise RuntimeError(f"checkpoint {directory} holds {'adapters only' if state.get('adapters_only') else 'full weights'}; "
                               f"this worker expects {'adapters only' if self.adapters_only else 'full weights'}")
        state = load_dcp(directory, self.model, self.optimizer, trainable_only=self.adapters_only)
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.global_step = int(state["global_step"])
        return state

    def close(self) -> None:
        """Leave the process group (call once per process, at teardown)."""
        if dist.is_initialized():
            dist.destroy_process_group()
