"""The simulation stage and the physical vocabulary every stage shares: the confined-electrolyte system (system),
its derived quantities (derived), profile statistics (profiles) and its LAMMPS engine (settings, deck, runner,
engine), with validation against the authors' MD, force-accuracy checks and the Poisson-Boltzmann limit."""

from mdsurrogate.simulation.engine import simulate
from mdsurrogate.simulation.settings import PRESETS, EngineSettings, RunControls, SimulationFailed
from mdsurrogate.simulation.system import ConfinedElectrolyte, InvalidInput, UnchargedElectrolyte, particle_counts

__all__ = ["PRESETS", "ConfinedElectrolyte", "EngineSettings", "InvalidInput", "RunControls", "SimulationFailed",
           "UnchargedElectrolyte", "particle_counts", "simulate"]
