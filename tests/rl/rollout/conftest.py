"""The rollout tests share the tiny-model fixtures of ``tests/rl/models``."""

from tests.rl.models.conftest import _one_torch_thread, images, processor, samples, sharp_model, sharpen_, tiny_dir  # noqa: F401
