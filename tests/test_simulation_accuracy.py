"""Force accuracy of the production preset and of the uniform-sheet wall model on a real configuration."""

import pytest

from mdsurrogate.simulation.accuracy import energy_drift, force_errors
from mdsurrogate.simulation.poisson_boltzmann import counterions_only_exact, solve_slit
from mdsurrogate.simulation.settings import RunControls
from mdsurrogate.simulation.system import AVOGADRO_PER_NM3_PER_MOLAR, ConfinedElectrolyte


def test_sheet_walls_and_production_pppm_reproduce_mesh_forces():
    system = ConfinedElectrolyte(h=4.4, c=1.0, d_plus=0.415, d_minus=0.415, sigma_s=-0.02)
    res = force_errors(system, RunControls(), equilibration_steps=300)
    # measured: kspace 1-3e-4, sheet vs mesh 2-4e-4 of the RMS force (the goal is < ~0.5 %)
    assert res["kspace_error"] < 2e-3
    assert res["sheet_vs_mesh"] < 2e-3
    assert res["rms_force"] > 1.0  # a real, interacting configuration


def test_production_timestep_conserves_energy():
    system = ConfinedElectrolyte(h=4.0, c=0.1, d_plus=0.2, d_minus=0.2, sigma_s=-0.01)  # small, stiff ions
    res = energy_drift(system, RunControls(), nve_steps=2000, equilibration_steps=500)
    # drift per ion over 20 tau well below 0.01 kT
    assert abs(res["drift"]) * 20 < 1e-2
    assert res["fluctuation"] < 1e-2


def test_pb_solver_matches_the_exact_counterion_only_solution():
    import numpy as np

    h, sigma = 4.0, -0.1  # e/nm^2
    sol = solve_slit(h, sigma, [(1.0, 1e-6, 2 * abs(sigma))], n_cells=300)
    exact = counterions_only_exact(sol.z, h, sigma)
    assert np.max(np.abs(sol.n_plus * AVOGADRO_PER_NM3_PER_MOLAR / exact - 1)) < 1e-4
    # the contact density obeys the contact theorem-like sum rule: n(wall) - n(mid) = 2 pi l_B sigma^2
    assert exact[0] - exact[len(exact) // 2] == pytest.approx(2 * np.pi * 0.714 * sigma**2, rel=0.02)
