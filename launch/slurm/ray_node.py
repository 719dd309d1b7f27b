"""Start one Ray node of a vrs-rl cluster, or wait for all of them (used by ``train.sbatch``).

::

    python launch/slurm/ray_node.py head   --cluster 2x8gpu [--port 6379] [--dashboard-port 8265] \\
                                           [--dashboard-host HOST] [-- RAY START ARGS]
    python launch/slurm/ray_node.py worker --cluster 2x8gpu --index 1 --address HEAD_IP:6379 [-- RAY START ARGS]
    python launch/slurm/ray_node.py wait   --address HEAD_IP:6379 --nodes 2 [--timeout 600]

``head``/``worker`` run ``ray start --block`` with the node's share of the cluster
config: ``--num-gpus`` = ``devices_per_node``, ``--num-cpus`` = ``cpus_per_node``
(when set) and ``--resources '{"<node_resources[index]>": 1}'`` so that pools
pinned with ``node_resource`` land on the intended nodes (node 0 is the head).
Arguments after ``--`` go to ``ray start`` unchanged (ports, ``--temp-dir``, ...).
Token authentication: with ``RAY_AUTH_MODE=token`` in the environment every node
needs the same token (``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``).

The head's dashboard (which also serves the Jobs API) never listens on every
interface by default: it binds to the node's own address when one is passed to
``ray start`` (``-- --node-ip-address=IP``, as ``train.sbatch`` does: reachable
inside the cluster network only), else to loopback. ``--dashboard-host HOST``
(or ``VRS_RL_DASHBOARD_HOST``) asks for another interface, e.g. ``0.0.0.0``; put
a TLS proxy in front of it then. From a laptop, prefer an SSH tunnel:
``ssh -N -L 8265:HEAD_IP:8265 LOGIN_NODE``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parents[2]
#: Environment variable that sets the dashboard interface when ``--dashboard-host`` is not given.
DASHBOARD_HOST_ENV = "VRS_RL_DASHBOARD_HOST"
LOOPBACK = "127.0.0.1"
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))


def node_resources(cluster: str, index: int, overrides: Sequence[str] = ()) -> dict[str, float]:
    """Custom resources of node ``index`` from the cluster config (see :func:`rl.placement_sim.node_resource_names`)."""
    from rl.config import load_config
    from rl.placement import PlacementPlan, roles_for
    from rl.placement_sim import node_resource_names

    cfg = load_config([f"cluster={cluster}", *overrides])
    if not 0 <= index < cfg.cluster.nodes:
        raise SystemExit(f"--index {index}: cluster {cluster!r} has {cfg.cluster.nodes} node(s)")
    names = node_resource_names(cfg.cluster, PlacementPlan(cfg.cluster, roles_for(cfg)))
    return {name: 1.0 for name in filter(None, names[index].split("+"))}


def _node_ip(extra: Sequence[str]) -> Optional[str]:
    """The ``--node-ip-address`` given to ``ray start`` (``--node-ip-address=IP`` or ``--node-ip-address IP``)."""
    for i, arg in enumerate(extra):
        if arg.startswith("--node-ip-address="):
            return arg.split("=", 1)[1] or None
        if arg == "--node-ip-address" and i + 1 < len(extra):
            return extra[i + 1]
    return None


def resolve_dashboard_host(explicit: Optional[str], extra: Sequence[str] = (), env: Optional[dict] = None) -> str:
    """Interface of the head's dashboard: ``explicit``, else ``$VRS_RL_DASHBOARD_HOST``, else the node's
    ``--node-ip-address``, else loopback (never every interface unless asked)."""
    env = os.environ if env is None else env
    return explicit or env.get(DASHBOARD_HOST_ENV) or _node_ip(extra) or LOOPBACK


def ray_start_args(cluster: str, index: int, head: bool, address: Optional[str], port: int, dashboard_port: int,
                   extra: Sequence[str] = (), dashboard_host: Optional[str] = None) -> list[str]:
    """The ``ray start`` command of one node (``dashboard_host``: see :func:`resolve_dashboard_host`)."""
    from rl.config import load_config

    cfg = load_config([f"cluster={cluster}"])
    ray = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    args = [ray, "start", "--block", "--disable-usage-stats"]
    if head:
        host = resolve_dashboard_host(dashboard_host, extra)
        args += ["--head", f"--port={port}", "--include-dashboard=true", f"--dashboard-port={dashboard_port}",
                 f"--dashboard-host={host}"]
    else:
        if not address:
            raise SystemExit("worker nodes need --address HEAD_IP:PORT")
        args.append(f"--address={address}")
    args.append(f"--num-gpus={cfg.cluster.devices_per_node}")
    if cfg.cluster.cpus_per_node:
        args.append(f"--num-cpus={cfg.cluster.cpus_per_node}")
    resources = node_resources(cluster, index)
    if resources:
        args.append(f"--resources={json.dumps(resources)}")
    return args + list(extra)


def wait_for_nodes(address: str, nodes: int, timeout_s: float) -> int:
    """Block until ``nodes`` Ray nodes are alive; returns how many are."""
    from launch.submit import resolve_token

    if resolve_token():
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [n for n in ray.nodes() if n.get("Alive")]
            if len(alive) >= nodes or time.monotonic() > deadline:
                for n in alive:
                    custom = {k: v for k, v in n["Resources"].items() if not k.startswith(("node:", "memory", "object_store"))}
                    print(f"node {n['NodeManagerAddress']} {n['NodeID'][:8]} {custom}")
                return len(alive)
            time.sleep(2)
    finally:
        ray.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser(prog="python launch/slurm/ray_node.py", description=__doc__.strip(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("role", choices=("head", "worker", "wait"))
    p.add_argument("--cluster", default="local_cpu", help="configs/cluster/<name>.yaml or a YAML path")
    p.add_argument("--index", type=int, default=0, help="node index in the cluster config (head = 0)")
    p.add_argument("--address", default=None, help="head GCS address HEAD_IP:PORT (worker, wait)")
    p.add_argument("--port", type=int, default=6379, help="head GCS port")
    p.add_argument("--dashboard-port", type=int, default=8265)
    p.add_argument("--dashboard-host", default=None,
                   help=f"interface the head's dashboard (Jobs API) listens on (default: ${DASHBOARD_HOST_ENV}, else "
                        "the --node-ip-address given to ray start, else 127.0.0.1)")
    p.add_argument("--nodes", type=int, default=1, help="wait: nodes to wait for")
    p.add_argument("--timeout", type=float, default=600.0, help="wait: seconds")
    p.add_argument("--print-only", action="store_true", help="print the ray start command instead of running it")
    args = p.parse_args(argv)
    if args.role == "wait":
        if not args.address:
            p.error("wait needs --address")
        alive = wait_for_nodes(args.address, args.nodes, args.timeout)
        if alive < args.nodes:
            print(f"only {alive} of {args.nodes} Ray nodes came up within {args.timeout:g}s", file=sys.stderr)
            return 1
        return 0
    command = ray_start_args(args.cluster, 0 if args.role == "head" else args.index, args.role == "head",
                             args.address, args.port, args.dashboard_port, extra, args.dashboard_host)
    print(" ".join(command), flush=True)
    if args.print_only:
        return 0
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
