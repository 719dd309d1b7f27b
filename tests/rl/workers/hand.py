"""Plain-torch formulas of the GRPO actor loss (independent of verl), for tests."""

from __future__ import annotations

import torch


def hand_loss(logp, old, ref, adv, mask, entropy, eps_low=0.2, eps_high=0.2, clip_c=3.0, kl_coef=0.01,
              ent_coef=1e-3):
    """PPO clip (both sides, dual clip for A<0) + kl_coef * low_var_kl - ent_coef * entropy, token-mean.

    Returns (total, pg, kl, entropy, clipfrac); all tensors (B, R) except the mask's dtype.
    """
    valid = mask.bool()
    n = valid.sum()
    ratio = torch.exp(torch.where(valid, logp - old, torch.zeros_like(logp)))
    loss1 = -adv * ratio
    loss2 = -adv * torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    clipped = torch.maximum(loss1, loss2)
    pg_mat = torch.where(adv < 0, torch.minimum(clipped, -adv * clip_c), clipped)

    def token_mean(mat):
        return torch.where(valid, mat, torch.zeros_like(mat)).sum() / n

    k = torch.where(valid, ref - logp, torch.zeros_like(logp))
    kl_mat = torch.clamp(torch.exp(k) - k - 1, -10, 10)
    pg, kl = token_mean(pg_mat), token_mean(kl_mat)
    ent = token_mean(entropy) if entropy is not None else torch.zeros(())
    clipfrac = token_mean((loss2 > loss1).float())
    return pg + kl_coef * kl - ent_coef * ent, pg, kl, ent, clipfrac


# Key biases get an identically zero gradient in exact arithmetic (softmax is invariant to a
# constant shift of the scores), and Adam's first step turns their float noise into updates
# of up to ~lr. After-Adam comparisons skip them (fused vision qkv biases hold a key part).
ADAM_NOISE_PARAMS = ("k_proj.bias", "qkv.bias")


def _max(values: torch.Tensor) -> float:
    return float(values.max()) if values.numel() else 0.0


def assert_weights_close(actual: dict, expected: dict, atol: float = 1e-6, grads: dict | None = None,
                         lr: float = 0.0) -> None:
    """``actual`` holds every name of ``expected`` and agrees within ``atol`` (noise-only params
    skipped unless the comparison is exact, ``atol == 0``).

    With ``grads`` (the reference gradients of one Adam step at learning rate ``lr``): elements
    whose gradient is within 100 x Adam's eps of 0 are only held to ``lr`` (Adam's first update
    ``lr * g / (|g| + eps)`` of such an element turns float summation noise into a sizeable step);
    every other element is held to ``atol``. With ``lr`` but no ``grads``: at most 0.1% of each
    tensor's elements (such near-cancelling gradients are rare) may exceed ``atol``, up to ``lr``."""
    missing = set(expected) - set(actual)
    assert not missing, f"missing weights: {sorted(missing)}"
    for name, tensor in expected.items():
        if atol > 0 and name.endswith(ADAM_NOISE_PARAMS):
            continue
        if grads is not None and name in grads and atol > 0:
            ill_conditioned = grads[name].abs() < 1e-6
            tolerance = torch.where(ill_conditioned, torch.full_like(tensor, lr), torch.full_like(tensor, atol))
            diff = (actual[name] - tensor).abs()
            assert bool((diff <= tolerance).all()), (
                f"{name}: max diff {float(diff.max()):.3g} (well-conditioned elements: "
                f"{_max(diff[~ill_conditioned]):.3g} > {atol})")
            continue
        if lr > 0 and atol > 0:
            diff = (actual[name] - tensor).abs()
            outliers = int((diff > atol).sum())
            assert outliers <= max(1, tensor.numel() // 1000) and _max(diff) <= lr, (
                f"{name}: {outliers} of {tensor.numel()} elements differ by more than {atol} "
                f"(max {float(diff.max()):.3g}, lr {lr})")
            continue
        torch.testing.assert_close(actual[name], tensor, rtol=0, atol=atol, msg=lambda m: f"{name}: {m}")


def capture_step_grads(worker) -> list[dict[str, torch.Tensor]]:
    """Record the (clipped) full gradients the worker's optimizer sees at every step.

    Post-Adam weights only reflect ~sign(grad) after one step; the gradients themselves are
    the precise check of the loss and its normalisation.
    """
    from rl.workers.fsdp import full_tensor

    names = {id(p): n for n, p in worker.model.named_parameters()}
    recorded: list[dict[str, torch.Tensor]] = []

    def before_step(optimizer, args, kwargs):
        recorded.append({names[id(p)]: full_tensor(p.grad) for group in optimizer.param_groups
                         for p in group["params"] if p.grad is not None})

    worker.optimizer.register_step_pre_hook(before_step)
    return recorded
