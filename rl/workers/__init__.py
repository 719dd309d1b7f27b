"""Worker processes of a GRPO run (policy FSDP2 workers, reward pool, rollout and policy groups).

Modules are imported directly (``from rl.workers.policy import PolicyWorker``); this package
imports nothing so that light workers do not pay for torch / verl imports.
"""
