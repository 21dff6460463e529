"""Helper run as a subprocess by test_hindcast: a real 2-node Ray cluster loses a node mid-run.

Usage: python multinode_hindcast.py WORKDIR PIPELINE_JSON. Prints a JSON line with what happened.
"""

import json
import sys
import threading
import time
from pathlib import Path

import ray
import xarray as xr
from ray.cluster_utils import Cluster

from swarmcast.pipelines.config import parse_pipeline
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.runner import run_pipeline


def main() -> None:
    base, raw = Path(sys.argv[1]), json.loads(sys.argv[2])
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    removed = []

    def kill_worker_node():
        # as soon as the coordinator has created the store, actors are starting or running on
        # both nodes; the worker node then dies with its checkpoint's units unfinished
        store = base / "hindcast.zarr"
        deadline = time.time() + 120
        while time.time() < deadline and not store.exists():
            time.sleep(0.01)
        time.sleep(0.5)
        removed.append(float(xr.open_zarr(store)["member_done"].values.mean()))
        cluster.remove_node(worker, allow_graceful=False)

    t = threading.Thread(target=kill_worker_node, daemon=True)
    t.start()
    ctx = StageContext(base=base, seed=raw["seed"], pipeline_raw=raw)
    result = run_pipeline(parse_pipeline(raw), ctx)
    t.join(timeout=10)
    done = xr.open_zarr(base / "hindcast.zarr")["member_done"].values
    deadline = time.time() + 30
    while time.time() < deadline and sum(n["Alive"] for n in ray.nodes()) > 1:
        time.sleep(0.5)  # the GCS notices the dead node within its heartbeat timeout
    print(
        json.dumps(
            {
                "removed": bool(removed),
                "done_when_removed": removed[0] if removed else None,
                "nodes_alive": sum(n["Alive"] for n in ray.nodes()),
                "computed": result[0]["computed"],
                "redone": result[0]["redone"],
                "all_done": bool(done.all()),
            }
        )
    )
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
