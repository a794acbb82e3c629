"""Stage 1: the physical system and its MD engine (LAMMPS)."""

from mdsurrogate.simulation.system import ConfinedElectrolyte, InvalidInput, particle_counts  # noqa: F401
