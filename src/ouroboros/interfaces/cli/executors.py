"""`--executor` and `--ray-address`: the options every bulk-evaluating command shares.

`ouro flux evolve`, `ouro evolve params|routing|prompt` and `ouro tool test` take them;
the executors themselves live in `capabilities/evolve/executor.py` (Ray in
`ray_backend.py`, imported only when asked for).
"""

from __future__ import annotations

from typing import Literal

import typer

ExecutorKind = Literal["local", "process", "ray"]

ExecutorOption = typer.Option(
    "process", "--executor",
    help="Where batches run: local (this process), process (a pool on this machine) or "
         "ray (a local Ray, or the cluster at --ray-address).")
RayAddressOption = typer.Option(
    None, "--ray-address", envvar="OURO_RAY_ADDRESS", metavar="ADDRESS",
    help="With --executor ray: join this cluster (auto, HOST:PORT or ray://HOST:PORT) "
         "instead of starting Ray here.")
