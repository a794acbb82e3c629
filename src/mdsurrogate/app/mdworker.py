"""One MD run of the app, in its own process: `python -m mdsurrogate.app.mdworker JOB.json`.

Runs the engine (`simulate`) in this process's main thread, so that SIGTERM (the app's Cancel) kills LAMMPS's
process group on the way out; writes progress.json as blocks complete, then the same outputs as
`mdsurrogate simulate` (profiles.nc, the nanoHUB-style .dat files, profiles.png, summary.json), the LAMMPS log
(log.lammps) and status.json (done, or failed with the engine's reason).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import traceback
from pathlib import Path

from mdsurrogate.io import write_json_atomic
from mdsurrogate.simulation import SimulationFailed, simulate
from mdsurrogate.simulation.export import plot_profiles, write_summary, write_tsv
from mdsurrogate.simulation.settings import RunControls
from mdsurrogate.simulation.system import ConfinedElectrolyte


def main(job_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    system = ConfinedElectrolyte(**job["system"])
    controls = RunControls(**job["controls"])
    t0 = time.monotonic()

    def progress(done: int, planned: int, rel_error: float) -> None:
        write_json_atomic(out / "progress.json", {"blocks": int(done), "planned": int(planned),
                                                  "rel_error": float(rel_error) if rel_error < 1e300 else None,
                                                  "elapsed_s": time.monotonic() - t0})

    progress(0, 0, float("inf"))
    status: dict = {"status": "failed", "detail": "interrupted"}
    try:
        ds = simulate(system, controls, out=out / "profiles.nc", workdir=out / "lammps", progress=progress)
        write_tsv(ds, out)
        write_summary(ds, out / "summary.json")
        plot_profiles(ds, out / "profiles.png")
        status = {"status": "done", "detail": f"finished in {ds.attrs['wall_time_s']:.1f} s, median relative "
                                              f"error {ds.attrs['rel_error']:.3f}"}
        return 0
    except SimulationFailed as exc:
        status = {"status": "failed", "reason": exc.reason, "detail": f"{exc.reason}: {exc.detail}"}
        return 2
    except Exception as exc:  # noqa: BLE001 - reported to the page in one line
        traceback.print_exc()
        status = {"status": "failed", "reason": type(exc).__name__, "detail": f"{type(exc).__name__}: {exc}"}
        return 1
    finally:
        log = out / "lammps" / "log.lammps"
        if log.exists():
            shutil.copy(log, out / "log.lammps")
        write_json_atomic(out / "status.json", status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
