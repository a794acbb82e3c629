"""System construction rules (the authors' preprocessor) pinned against hand-computed values."""

import pytest

from mdsurrogate.simulation.system import (
    ConfinedElectrolyte,
    InvalidInput,
    paper_grid_systems,
    particle_counts,
)


@pytest.mark.parametrize(
    "inputs, L, counterions, n_minus, mesh",
    [
        # L = 15 nm (c <= 0.5): |sigma| L^2 / e = 0.01 * 225e-18 / 1.602e-19 = 14.04 -> 2 * 14 = 28
        ((4.0, 0.1, 0.415, 0.415, -0.01), 15.0, 28, 54, 1764),  # int(0.1 * 0.6022 * 225 * 4.0) = int(54.198)
        ((4.4, 0.5, 0.415, 0.415, -0.02), 15.0, 56, 298, 1764),  # int(0.5 * 0.6022 * 225 * 4.4) = int(298.09)
        ((5.0, 0.25, 0.2, 0.63, -0.015), 15.0, 42, 169, 1764),  # 21.06 -> 42; int(169.37)
        # L = 10 nm (c > 0.5): 0.02 * 100e-18 / e = 12.48 -> 24
        ((4.4, 1.0, 0.415, 0.415, -0.02), 10.0, 24, 264, 784),  # int(264.97)
        ((4.8, 2.0, 0.415, 0.415, -0.015), 10.0, 18, 578, 784),  # 9.36 -> 18; int(578.11)
        ((4.0, 0.75, 0.63, 0.2, -0.01), 10.0, 12, 180, 784),  # 6.24 -> 12; int(180.66)
    ],
)
def test_particle_counts_follow_the_authors_rules(inputs, L, counterions, n_minus, mesh):
    counts = particle_counts(ConfinedElectrolyte(*inputs))
    assert counts.box_length_nm == L
    assert counts.counterions == counterions
    assert counts.n_anions == n_minus
    assert counts.n_cations == n_minus + counterions
    assert counts.mesh_per_wall == mesh
    # each wall carries half the counterions' charge, spread over its mesh
    assert counts.mesh_charge * mesh == pytest.approx(-counterions / 2)
    # the effective sigma is quantised to whole counterions and never exceeds the requested one
    sigma = inputs[4]
    assert abs(counts.sigma_s_effective) <= abs(sigma) + 1e-12
    assert counts.sigma_s_effective == pytest.approx(-(counterions / 2) * 1.602176634e-19 / (L * 1e-9) ** 2)
    # total charge: ions + two walls = 0
    total = counts.n_cations - counts.n_anions + 2 * mesh * counts.mesh_charge
    assert total == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("name, value, fragment", [
    ("h", 3.5, "h (confinement length) = 3.5 nm is outside the design range [4.0, 5.0] nm"),
    ("c", 2.5, "c (salt concentration) = 2.5 M is outside the design range [0.1, 2.0] M"),
    ("d_plus", 0.7, "d_plus (cation diameter)"),
    ("d_minus", 0.1, "d_minus (anion diameter)"),
    ("sigma_s", -0.03, "sigma_s (surface charge density)"),
    ("c", float("nan"), "must be a finite number"),
])
def test_out_of_range_inputs_name_the_parameter_and_range(name, value, fragment):
    kw = dict(h=4.4, c=0.5, d_plus=0.415, d_minus=0.415, sigma_s=-0.015)
    kw[name] = value
    with pytest.raises(InvalidInput, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]").replace(".", r"\.")):
        ConfinedElectrolyte(**kw)


def test_override_allows_physical_values_outside_the_design_range_only():
    s = ConfinedElectrolyte(h=3.0, c=3.0, d_plus=0.415, d_minus=0.415, sigma_s=-0.03, allow_outside_design=True)
    assert s.h == 3.0
    with pytest.raises(InvalidInput, match="physically supported range"):
        ConfinedElectrolyte(h=0.5, c=0.5, d_plus=0.415, d_minus=0.415, sigma_s=-0.015, allow_outside_design=True)
    with pytest.raises(InvalidInput, match="sigma_s"):
        ConfinedElectrolyte(h=4.4, c=0.5, d_plus=0.415, d_minus=0.415, sigma_s=0.01, allow_outside_design=True)


def test_paper_grid_has_4050_systems_and_exclusion_works():
    grid = paper_grid_systems()
    assert len(grid) == 4050
    rest = paper_grid_systems(exclude={"d_plus": 0.415, "d_minus": 0.415})
    assert len(rest) == 4050 - 6 * 9 * 3
    assert ConfinedElectrolyte(4.4, 1.0, 0.415, 0.415, -0.02).key() == "Z_4.4_p_1_n_-1_d_0.415_a_0.415_c_1_i_-0.02"


def test_mpi_launcher_can_be_replaced_for_clusters(monkeypatch):
    from mdsurrogate.simulation import runtime

    monkeypatch.delenv(runtime.MPI_LAUNCHER_ENV, raising=False)
    assert runtime.lmp_command(1)[-1].endswith("lmp") and len(runtime.lmp_command(1)) == 1
    assert runtime.lmp_command(4)[1:3] == ["-n", "4"]
    monkeypatch.setenv(runtime.MPI_LAUNCHER_ENV, "srun --mpi=pmi2 -n")
    assert runtime.lmp_command(8)[:4] == ["srun", "--mpi=pmi2", "-n", "8"]
    with pytest.raises(ValueError, match="mpi_ranks"):
        runtime.lmp_command(0)


def test_atomic_writes_leave_nothing_on_failure_and_readable_files(tmp_path):
    import os

    from mdsurrogate.io import atomic_path, write_text_atomic

    target = tmp_path / "result.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert not target.exists() and not list(tmp_path.iterdir())
    write_text_atomic(target, "whole")
    assert target.read_text() == "whole"
    assert os.stat(target).st_mode & 0o044  # group/other readable under the usual umask
    # the mask comes from the process's own (read without setting it, which would race other threads)
    from mdsurrogate.io import _umask

    old = os.umask(0o027)
    try:
        assert _umask() == 0o027 and os.umask(0o027) == 0o027
        write_text_atomic(tmp_path / "private.txt", "x")
        assert os.stat(tmp_path / "private.txt").st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
