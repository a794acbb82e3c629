"""Time to a profile of given precision: the authors' preset vs our production preset, same system, one run.

Each preset runs the same system for a short simulated time; from its wall time and the median relative standard
error it reached (native 0.05-sigma bins, both ions, 20 blocks), the wall time to reach a target error follows from
SE ~ 1/sqrt(production time) (tested in tests/test_simulation_engine.py), plus the preset's equilibration share:
    t(target) = t_per_tau * T_prod * (SE / target)^2 / (1 - f_eq).
Prints both times and their ratio (baseline: the authors' preset). Also prints the raw ratio of wall time per tau.

Caveat that favours the baseline: the authors' short run has 20 blocks of ~1 tau; if those are shorter than the
correlation time its SE is underestimated, making its time-to-target look shorter than it is.

    .venv/bin/python benchmarks/md_time_to_profile.py [--authors-tau 30] [--production-tau 300] [--ranks 1]
"""

from __future__ import annotations

import argparse
import sys
import time

from mdsurrogate.simulation import RunControls, simulate
from mdsurrogate.simulation.system import ConfinedElectrolyte


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--authors-tau", type=float, default=30.0)
    ap.add_argument("--production-tau", type=float, default=300.0)
    ap.add_argument("--target", type=float, default=0.02, help="target median relative standard error")
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--h", type=float, default=4.4)
    ap.add_argument("--c", type=float, default=0.5)
    ap.add_argument("--sigma-s", type=float, default=-0.015)
    ap.add_argument("--d", type=float, default=0.415)
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    system = ConfinedElectrolyte(h=args.h, c=args.c, d_plus=args.d, d_minus=args.d, sigma_s=args.sigma_s)
    counts = system.counts
    print(f"system {system.key()}: {counts.n_cations + counts.n_anions} ions, "
          f"{2 * counts.mesh_per_wall} mesh charges (authors' preset), {args.ranks} MPI rank(s)")
    rows = {}
    for preset, tau in (("authors", args.authors_tau), ("production", args.production_tau)):
        controls = RunControls(preset=preset, time_tau=tau, seed=1, mpi_ranks=args.ranks)
        t0 = time.perf_counter()
        ds = simulate(system, controls)
        wall = time.perf_counter() - t0
        s = controls.settings()
        prod_tau = float(ds.attrs["production_time_tau"])
        eq_tau = float(ds.attrs["equilibration_steps"]) * s.dt
        per_tau = wall / (prod_tau + eq_tau)
        se = float(ds.attrs["rel_error"])
        t_target = per_tau * prod_tau * (se / args.target) ** 2 / (1 - s.equilibration_fraction)
        rows[preset] = {"simulated_tau": prod_tau + eq_tau, "wall_s": wall, "wall_s_per_tau": per_tau,
                        "steps_per_s": (prod_tau + eq_tau) / s.dt / wall, "rel_error": se,
                        "wall_s_to_target": t_target}
        print(f"{preset:10s} dt={s.dt:g} tau  {prod_tau + eq_tau:7.0f} tau in {wall:7.1f} s  "
              f"({rows[preset]['steps_per_s']:.0f} steps/s, {per_tau:.3f} s/tau)  rel. SE {se:.4f}  "
              f"-> {t_target:8.0f} s to rel. SE {args.target}")
    ratio = rows["authors"]["wall_s_to_target"] / rows["production"]["wall_s_to_target"]
    per_tau_ratio = rows["authors"]["wall_s_per_tau"] / rows["production"]["wall_s_per_tau"]
    print(f"wall time per tau: authors / production = {per_tau_ratio:.1f}x")
    print(f"time to the same profile standard error ({args.target}): authors / production = {ratio:.1f}x "
          f"(goal >= 5x, aim 10x)")
    if args.json:
        from mdsurrogate.io import write_json_atomic
        from mdsurrogate.provenance import provenance

        write_json_atomic(args.json, {"system": system.key(), "rows": rows, "ratio_time_to_target": ratio,
                                      "ratio_wall_per_tau": per_tau_ratio, **provenance("lammps")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
