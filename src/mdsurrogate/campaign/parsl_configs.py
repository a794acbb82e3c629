"""Parsl configurations for campaigns: this machine (tests, a big workstation), SLURM and PBS clusters.

Each Parsl worker runs one campaign run at a time; the run starts LAMMPS with `cores_per_run` MPI ranks through
the environment's `mpiexec` (MPICH hydra, from the `mpich` wheel) on the node the worker sits on, so a node with
C cores hosts C // cores_per_run workers. The launcher starts one worker pool per node of a block: `srun` on
SLURM, `mpiexec` on PBS. Results and the ledger must sit on a file system shared by the login and compute nodes;
only the process that runs `mdsurrogate campaign run` (on the login node, under tmux/screen or a small job)
writes the ledger.

`resolve_config(name)`: "local" (HighThroughputExecutor + LocalProvider, as in the CI test), "threads"
(ThreadPoolExecutor), or a path to a python file that defines `config` (a parsl Config) or
`make_config(workers, cores_per_run, run_dir)`. docs/campaign.md has SLURM and PBS files to copy.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path


def _venv_init() -> str:
    """Shell lines that put this environment's executables first on PATH on the worker side."""
    return f"export PATH={Path(sys.executable).parent}:$PATH; export OMP_NUM_THREADS=1"


def _interchange_cmd() -> list[str]:
    """Parsl's interchange script from this environment (so it works without the venv on PATH)."""
    script = Path(sys.executable).parent / "interchange.py"
    return [sys.executable, str(script)] if script.exists() else ["interchange.py"]


def local_htex(workers: int = 1, cores_per_run: int = 1, run_dir: str | os.PathLike = "runinfo"):
    """HighThroughputExecutor with Parsl's LocalProvider: `workers` worker processes on this machine."""
    from parsl.config import Config  # noqa: PLC0415
    from parsl.executors import HighThroughputExecutor  # noqa: PLC0415
    from parsl.providers import LocalProvider  # noqa: PLC0415

    htex = HighThroughputExecutor(
        label="local_htex",
        address="127.0.0.1",
        max_workers_per_node=workers,
        cores_per_worker=1,
        heartbeat_period=2,
        heartbeat_threshold=10,
        poll_period=10,
        encrypted=False,
        interchange_launch_cmd=_interchange_cmd(),
        provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1, worker_init=_venv_init()),
    )
    return Config(executors=[htex], run_dir=str(run_dir), strategy="none", usage_tracking=0)


def local_threads(workers: int = 1, run_dir: str | os.PathLike = "runinfo"):
    """ThreadPoolExecutor (each thread still starts the run as its own worker process)."""
    from parsl.config import Config  # noqa: PLC0415
    from parsl.executors import ThreadPoolExecutor  # noqa: PLC0415

    return Config(executors=[ThreadPoolExecutor(label="threads", max_threads=workers)], run_dir=str(run_dir),
                  usage_tracking=0)


def slurm_config(*, partition: str, account: str | None = None, cores_per_node: int, cores_per_run: int = 1,
                 nodes_per_block: int = 1, max_blocks: int = 4, walltime: str = "04:00:00",
                 worker_init: str = "", scheduler_options: str = "", run_dir: str | os.PathLike = "runinfo"):
    """HTEX on SLURM: blocks of `nodes_per_block` nodes, one worker pool per node started with srun,
    cores_per_node // cores_per_run concurrent runs per node."""
    from parsl.config import Config  # noqa: PLC0415
    from parsl.executors import HighThroughputExecutor  # noqa: PLC0415
    from parsl.launchers import SrunLauncher  # noqa: PLC0415
    from parsl.providers import SlurmProvider  # noqa: PLC0415

    _check_cores(cores_per_node, cores_per_run)
    provider = SlurmProvider(
        partition=partition, account=account, nodes_per_block=nodes_per_block, cores_per_node=cores_per_node,
        init_blocks=1, min_blocks=0, max_blocks=max_blocks, walltime=walltime, exclusive=True,
        scheduler_options=scheduler_options, worker_init=worker_init or _venv_init(),
        launcher=SrunLauncher(overrides="--cpu-bind=none"),
    )
    htex = HighThroughputExecutor(label="slurm_htex", max_workers_per_node=cores_per_node // cores_per_run,
                                  cores_per_worker=cores_per_run, provider=provider)
    return Config(executors=[htex], run_dir=str(run_dir), usage_tracking=0)


def pbs_config(*, queue: str, account: str | None = None, cpus_per_node: int, cores_per_run: int = 1,
               nodes_per_block: int = 1, max_blocks: int = 4, walltime: str = "04:00:00",
               worker_init: str = "", scheduler_options: str = "", select_options: str = "",
               run_dir: str | os.PathLike = "runinfo"):
    """HTEX on PBS Pro: blocks of `nodes_per_block` nodes, one worker pool per node started with mpiexec,
    cpus_per_node // cores_per_run concurrent runs per node."""
    from parsl.config import Config  # noqa: PLC0415
    from parsl.executors import HighThroughputExecutor  # noqa: PLC0415
    from parsl.launchers import MpiExecLauncher  # noqa: PLC0415
    from parsl.providers import PBSProProvider  # noqa: PLC0415

    _check_cores(cpus_per_node, cores_per_run)
    provider = PBSProProvider(
        queue=queue, account=account, nodes_per_block=nodes_per_block, cpus_per_node=cpus_per_node,
        init_blocks=1, min_blocks=0, max_blocks=max_blocks, walltime=walltime, select_options=select_options,
        scheduler_options=scheduler_options, worker_init=worker_init or _venv_init(),
        launcher=MpiExecLauncher(bind_cmd="--bind-to", overrides="--ppn 1"),
    )
    htex = HighThroughputExecutor(label="pbs_htex", max_workers_per_node=cpus_per_node // cores_per_run,
                                  cores_per_worker=cores_per_run, provider=provider)
    return Config(executors=[htex], run_dir=str(run_dir), usage_tracking=0)


def _check_cores(per_node: int, per_run: int) -> None:
    if per_run < 1 or per_node < per_run:
        raise ValueError(f"cores_per_run = {per_run} must be between 1 and the cores per node ({per_node})")


BUILTIN_CONFIGS = ("local", "threads")  # anything else is a python file (SLURM/PBS examples: docs/campaign.md)


def check_config_name(name: str) -> None:
    """Raise ValueError unless `name` is a built-in config or an existing .py file (checked before a campaign
    touches its ledger, and again by `resolve_config`)."""
    if name in BUILTIN_CONFIGS:
        return
    path = Path(name)
    if path.suffix != ".py" or not path.is_file():
        raise ValueError(f"execution.parsl_config: {name!r} is neither 'local', 'threads' nor an existing .py file "
                         "defining `config` or `make_config` (see docs/campaign.md for SLURM and PBS)")


def resolve_config(name: str, workers: int = 1, cores_per_run: int = 1, run_dir: str | os.PathLike = "runinfo"):
    """A Parsl Config from a name ('local', 'threads') or a python file defining `config` or `make_config`."""
    check_config_name(name)
    if name == "local":
        return local_htex(workers, cores_per_run, run_dir)
    if name == "threads":
        return local_threads(workers, run_dir)
    path = Path(name)
    ns = runpy.run_path(str(path))
    if "make_config" in ns:
        return ns["make_config"](workers=workers, cores_per_run=cores_per_run, run_dir=run_dir)
    if "config" in ns:
        return ns["config"]
    raise ValueError(f"execution.parsl_config: {path} defines neither `config` nor `make_config`")
