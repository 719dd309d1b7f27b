"""A local Ray instance for one test: its own temp dir, shut down even when the test fails."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from typing import Iterator


@contextlib.contextmanager
def local_ray_cluster(num_cpus: int, **init_kwargs) -> Iterator["object"]:
    """``ray.init`` with ``num_cpus`` logical CPUs, no dashboard and a fresh ``/tmp/ray*`` dir."""
    import ray

    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=num_cpus, include_dashboard=False, _temp_dir=tmp, log_to_driver=False, **init_kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
