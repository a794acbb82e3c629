"""Per-call times of the PROXIMA targets and the ensemble surrogate on the 63-atom Si vacancy cell.

Run: .venv/bin/python benchmarks/proxima_calls.py [--calls 20] [--train-frames 32]
(tblite / cp2k are timed when importable; use few calls for them.)
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    from ase.calculators.singlepoint import SinglePointCalculator

    from mdsurrogate.proxima.surrogate import EnsembleSurrogate, SurrogateConfig
    from mdsurrogate.proxima.targets import available_targets, lammps_si, make_target, si_vacancy_cell

    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--expensive-calls", type=int, default=2)
    ap.add_argument("--train-frames", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(1)

    def timed(calc, n):
        ts = []
        for k in range(n):
            a = si_vacancy_cell()
            a.rattle(0.05, seed=k)
            a.calc = calc
            t0 = time.perf_counter()
            a.get_forces()
            a.get_stress()
            ts.append(time.perf_counter() - t0)
        return float(np.median(ts))

    out = {}
    for name in available_targets():
        out[name] = timed(make_target(name), args.calls if name in ("sw", "tersoff") else args.expensive_calls)
    sw = lammps_si("sw")
    frames = []
    for k in range(args.train_frames):
        a = si_vacancy_cell()
        a.rattle(0.08, seed=100 + k)
        a.calc = sw
        b = a.copy()
        b.calc = SinglePointCalculator(b, energy=a.get_potential_energy(), forces=a.get_forces(),
                                       stress=a.get_stress())
        frames.append(b)
    sur = EnsembleSurrogate(SurrogateConfig(epochs=1))
    t0 = time.perf_counter()
    sur.fit(frames, np.random.default_rng(0))
    out["train_s_per_frame_epoch"] = (time.perf_counter() - t0) / len(frames)
    ts = []
    for k in range(args.calls):
        t0 = time.perf_counter()
        sur.predict(frames[k % len(frames)])
        ts.append(time.perf_counter() - t0)
    out["ensemble_2_predict"] = float(np.median(ts))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
