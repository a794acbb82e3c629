"""The physical vocabulary every stage shares: the confined-electrolyte system of the papers, its five inputs
(names, units, design ranges, the 4050-point grid), the 502-point profile grid, the system key codec and the
rules that build a system.

A monovalent electrolyte in implicit water (epsilon_r = 80, T = 298 K) between planar walls at z = -h/2 and
z = +h/2 that carry surface charge density sigma_s; periodic in x and y. Construction follows the authors'
code (softmaterialslab/nanoconfinement-md): reduced LJ units with the length unit = the smaller ion diameter,
energy unit kT, box L = 10 nm for c > 0.5 M else 15 nm, 2*int(|sigma_s| L^2/e) counterions, N- = int(c 0.6022
L^2 h), N+ = N- + counterions.

The first paper (kadupitiya2020) uses a second system, `UnchargedElectrolyte`: ions of valencies z_p and z_n (one
diameter d) between identical uncharged walls; its inputs, ranges, grid and key are the `UNCHARGED_*` names below
(docs/engine.md, "Uncharged walls, multivalent ions").
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np

ELEMENTARY_CHARGE = 1.602176634e-19  # C
AVOGADRO_PER_NM3_PER_MOLAR = 0.6022  # ions per nm^3 at 1 mol/L (authors use 0.6022)
BJERRUM_LENGTH_NM = 0.714  # water, epsilon_r = 80, T = 298 K (authors' value)

INPUT_NAMES: tuple[str, ...] = ("h", "c", "d_plus", "d_minus", "sigma_s")
INPUT_UNITS = {"h": "nm", "c": "M", "d_plus": "nm", "d_minus": "nm", "sigma_s": "C/m^2"}
INPUT_LONG_NAMES = {
    "h": "confinement length",
    "c": "salt concentration",
    "d_plus": "cation diameter",
    "d_minus": "anion diameter",
    "sigma_s": "surface charge density",
}
#: Design ranges of the papers (min, max); the surrogate's inputs are min-max scaled over these.
DESIGN_RANGES: dict[str, tuple[float, float]] = {
    "h": (4.0, 5.0),
    "c": (0.1, 2.0),
    "d_plus": (0.2, 0.63),
    "d_minus": (0.2, 0.63),
    "sigma_s": (-0.02, -0.01),
}
#: The 4050-system grid of the papers (6 x 9 x 5 x 5 x 3).
PAPER_GRID: dict[str, tuple[float, ...]] = {
    "h": (4.0, 4.2, 4.4, 4.6, 4.8, 5.0),
    "c": (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
    "d_plus": (0.2, 0.3075, 0.415, 0.5225, 0.63),
    "d_minus": (0.2, 0.3075, 0.415, 0.5225, 0.63),
    "sigma_s": (-0.01, -0.015, -0.02),
}
#: Profile variables of every run and dataset (M): the densities and their MD standard errors.
DENSITY_VARS: tuple[str, ...] = ("n_plus", "n_minus")
ERROR_VARS: tuple[str, ...] = ("n_plus_err", "n_minus_err")
PROFILE_VARS: tuple[str, ...] = (*DENSITY_VARS, *ERROR_VARS)
#: Derived profiles stored beside them: rho(z) in C/m^3 and S(z) in C/m^2 (`simulation.derived`).
DERIVED_VARS: tuple[str, ...] = ("charge_density", "integrated_charge")
#: Points of the papers' resampled profiles (per ion species; the surrogate predicts 2 x N_GRID outputs).
N_GRID = 502

#: Physical limits that apply even with allow_outside_design=True.
PHYSICAL_LIMITS: dict[str, tuple[float, float]] = {
    "h": (1.0, 20.0),
    "c": (0.005, 4.0),
    "d_plus": (0.1, 1.5),
    "d_minus": (0.1, 1.5),
    "sigma_s": (-0.2, 0.0),
}


def design_minmax() -> tuple[np.ndarray, np.ndarray]:
    """(min, max) over DESIGN_RANGES in INPUT_NAMES order."""
    lo = np.array([DESIGN_RANGES[k][0] for k in INPUT_NAMES], dtype=float)
    hi = np.array([DESIGN_RANGES[k][1] for k in INPUT_NAMES], dtype=float)
    return lo, hi


class InvalidInput(ValueError):
    """An input outside its allowed range; the message names the parameter and the range."""


def _check_continuous_inputs(system, names: tuple[str, ...], long_names: dict[str, str], units: dict[str, str],
                             design_ranges: dict[str, tuple[float, float]],
                             physical_limits: dict[str, tuple[float, float]], design_note: str = "") -> None:
    """Check the continuous inputs `names` of a (frozen) system in its __post_init__ and store them as floats.

    Each must be a finite real number (not a bool) within its physical limits, and within its design range
    (1e-12 slack) unless system.allow_outside_design. Raises InvalidInput naming the input, its long name, the
    value, the unit and the allowed range; `design_note` follows the design range in that message."""
    for name in names:
        value = getattr(system, name)
        try:
            number = float(value) if isinstance(value, (int, float, np.floating, np.integer)) \
                and not isinstance(value, (bool, np.bool_)) else math.nan
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise InvalidInput(f"{name} ({long_names[name]}) must be a finite number, got {str(value)[:40]!r}")
        object.__setattr__(system, name, number)
        lo, hi = design_ranges[name]
        plo, phi = physical_limits[name]
        unit = units[name]
        if not (plo <= number <= phi):
            raise InvalidInput(f"{name} ({long_names[name]}) = {number} {unit} is outside the physically "
                               f"supported range [{plo}, {phi}] {unit}")
        if not system.allow_outside_design and not (lo - 1e-12 <= number <= hi + 1e-12):
            raise InvalidInput(f"{name} ({long_names[name]}) = {number} {unit} is outside the design range "
                               f"[{lo}, {hi}] {unit}{design_note}; pass allow_outside_design=True "
                               "(CLI: --allow-outside-design) to simulate it anyway")


@dataclass(frozen=True)
class ConfinedElectrolyte:
    """The five physical inputs of one system (the surrogate's features).

    h: confinement length (nm); c: salt concentration (M); d_plus, d_minus: ion diameters (nm);
    sigma_s: surface charge density of each wall (C/m^2, negative). Values outside DESIGN_RANGES raise
    InvalidInput unless allow_outside_design=True (then only PHYSICAL_LIMITS apply).
    """

    h: float
    c: float
    d_plus: float
    d_minus: float
    sigma_s: float
    allow_outside_design: bool = field(default=False, compare=False)
    #: Not inputs: the fixed valencies and wall kind of this system (the engine reads them from any system).
    kind: ClassVar[str] = "charged"
    z_p: ClassVar[int] = 1
    z_n: ClassVar[int] = -1

    def __post_init__(self) -> None:
        _check_continuous_inputs(self, INPUT_NAMES, INPUT_LONG_NAMES, INPUT_UNITS, DESIGN_RANGES, PHYSICAL_LIMITS)

    def inputs(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in INPUT_NAMES}

    def key(self) -> str:
        """The system key, e.g. 'Z_4.4_p_1_n_-1_d_0.415_a_0.415_c_0.1_i_-0.01' (`system_key`)."""
        return system_key(self.inputs())

    @property
    def counts(self) -> "ParticleCounts":
        return particle_counts(self)


@dataclass(frozen=True)
class ParticleCounts:
    """Particle numbers and the quantised wall charge of a system (authors' preprocessor rules)."""

    box_length_nm: float  # L (x and y)
    counterions: int  # 2 * int(|sigma_s| L^2 / e)
    n_anions: int  # N- = int(c * 0.6022 * L^2 * h)
    n_cations: int  # N+ = N- + counterions
    mesh_per_wall: int  # M point charges per wall (square mesh)
    mesh_charge: float  # charge of each mesh point in e: -(counterions/2)/M
    sigma_s_effective: float  # C/m^2 actually carried by each wall

    def as_dict(self) -> dict:
        return asdict(self)


def box_length_nm(c: float) -> float:
    """L = 10 nm when c > 0.5 M, else 15 nm."""
    return 10.0 if c > 0.5 else 15.0


def mesh_points_per_wall(box_length: float) -> int:
    """M = 784 (28 x 28) for L = 10 nm and 1764 (42 x 42) for L = 15 nm: a mesh spacing of about 0.357 nm."""
    n_side = int(round(box_length / (10.0 / 28.0)))
    return n_side * n_side


def particle_counts(system: "ConfinedElectrolyte | UnchargedElectrolyte") -> ParticleCounts:
    if isinstance(system, UnchargedElectrolyte):
        return uncharged_particle_counts(system)
    L = box_length_nm(system.c)
    area_m2 = (L * 1e-9) ** 2
    counterions = 2 * int(abs(system.sigma_s) * area_m2 / ELEMENTARY_CHARGE)
    n_minus = int(system.c * AVOGADRO_PER_NM3_PER_MOLAR * L * L * system.h)
    n_plus = n_minus + counterions
    m = mesh_points_per_wall(L)
    mesh_charge = -(counterions / 2) / m
    sigma_eff = -(counterions / 2) * ELEMENTARY_CHARGE / area_m2
    return ParticleCounts(L, counterions, n_minus, n_plus, m, mesh_charge, sigma_eff)


def grid_points(values: dict[str, tuple[float, ...]] | None = None) -> list[dict[str, float]]:
    """Every combination of the given input values (default: the papers' 4050-point grid), in the order h, c,
    d+, d-, sigma_s; an input left out takes its PAPER_GRID values."""
    values = {**PAPER_GRID, **(values or {})}
    return [dict(zip(INPUT_NAMES, map(float, combo))) for combo in itertools.product(*(values[k] for k in INPUT_NAMES))]


def paper_grid_systems(exclude: dict[str, float] | None = None) -> list[ConfinedElectrolyte]:
    """All 4050 systems of the papers' grid (optionally excluding every system whose inputs match all items of
    `exclude`)."""
    return [ConfinedElectrolyte(**p) for p in grid_points()
            if not (exclude and all(abs(p[k] - v) < 1e-9 for k, v in exclude.items()))]


def paper_grid(h_nm: float, n: int = N_GRID) -> np.ndarray:
    """The 502-point z grid of the papers' dataset for confinement length h (nm): the grid of the authors'
    reference files spans slightly more than [-h/2, h/2]; we use exactly [-h/2, h/2]."""
    return np.linspace(-h_nm / 2, h_nm / 2, n)


# ---------------------------------------------------------------------------------------------- system keys

KEY_PATTERN = re.compile(
    r"^Z_(?P<h>[-0-9.eE]+)_p_(?P<zp>-?\d+)_n_(?P<zn>-?\d+)_d_(?P<d_plus>[-0-9.eE]+)"
    r"_a_(?P<d_minus>[-0-9.eE]+)_c_(?P<c>[-0-9.eE]+)_i_(?P<sigma_s>[-0-9.eE]+)$"
)


#: Ends the key of every UnchargedElectrolyte, so that it never equals a charged key (a charged system with
#: sigma_s = 0 and d+ = d- has the same authors' fields as the uncharged system with z_p = 1, z_n = -1).
UNCHARGED_KEY_SUFFIX = "_uncharged"


def system_key(inputs: dict[str, float], authors_spelling: bool = False) -> str:
    """The authors' key of a system, 'Z_{h}_p_1_n_-1_d_{d+}_a_{d-}_c_{c}_i_{sigma_s}' (for the inputs of an
    UnchargedElectrolyte: 'Z_{h}_p_{z_p}_n_{z_n}_d_{d}_a_{d}_c_{c}_i_0_uncharged').

    Ours writes every number like '%g' ('Z_4.4_p_1_n_-1_d_0.415_a_0.415_c_1_i_-0.01'); with authors_spelling the
    numbers after h are Python floats as in the authors' files ('..._c_1.0_i_-0.01')."""
    num = (lambda x: repr(float(x))) if authors_spelling else (lambda x: f"{float(x):g}")
    if system_kind(inputs) == "uncharged":  # 'Z_3_p_3_n_-1_d_0.5_a_0.5_c_0.9_i_0_uncharged': valencies, one d
        return (f"Z_{float(inputs['h']):g}_p_{int(inputs['z_p'])}_n_{int(inputs['z_n'])}_d_{num(inputs['d'])}"
                f"_a_{num(inputs['d'])}_c_{num(inputs['c'])}_i_{num(0.0)}{UNCHARGED_KEY_SUFFIX}")
    return (f"Z_{float(inputs['h']):g}_p_1_n_-1_d_{num(inputs['d_plus'])}_a_{num(inputs['d_minus'])}"
            f"_c_{num(inputs['c'])}_i_{num(inputs['sigma_s'])}")


def parse_key(key: str) -> dict[str, float]:
    """Inputs encoded in a system key (either spelling): {'h', 'c', 'd_plus', 'd_minus', 'sigma_s'}; valencies
    must be +1/-1."""
    if key.endswith(UNCHARGED_KEY_SUFFIX):
        raise ValueError(f"{key!r} is the key of an uncharged-wall system (parse_uncharged_key), not a charged one")
    m = KEY_PATTERN.match(key)
    if m is None:
        raise ValueError(f"not an authors' profile key: {key!r}")
    if (int(m["zp"]), int(m["zn"])) != (1, -1):
        raise ValueError(f"only monovalent (+1, -1) systems are supported, key {key!r}")
    return {k: float(m[k]) for k in INPUT_NAMES}


# ---------------------------------------------------------------------------------------------- uncharged walls

#: The first paper's system (kadupitiya2020): ions of valencies z_p, z_n and one diameter d between identical
#: uncharged walls at z = -h/2 and h/2. Its five inputs (the surrogate's features), in this order:
UNCHARGED_INPUT_NAMES: tuple[str, ...] = ("h", "c", "z_p", "z_n", "d")
UNCHARGED_INPUT_UNITS = {"h": "nm", "c": "M", "z_p": "1", "z_n": "1", "d": "nm"}
UNCHARGED_LONG_NAMES = {
    "h": "confinement length",
    "c": "salt concentration (anions per volume)",
    "z_p": "cation valency",
    "z_n": "anion valency",
    "d": "ion diameter",
}
#: Design ranges of kadupitiya2020 for the continuous inputs, and the allowed valencies (z_n = -2 is its Fig. 3).
UNCHARGED_DESIGN_RANGES: dict[str, tuple[float, float]] = {"h": (3.0, 4.0), "c": (0.3, 0.9), "d": (0.5, 0.75)}
UNCHARGED_VALENCIES: dict[str, tuple[int, ...]] = {"z_p": (1, 2, 3), "z_n": (-1, -2)}
#: With allow_outside_design=True: the continuous inputs within these limits, valencies 1..4 in magnitude.
UNCHARGED_PHYSICAL_LIMITS: dict[str, tuple[float, float]] = {"h": (1.0, 20.0), "c": (0.005, 4.0), "d": (0.1, 1.5)}
UNCHARGED_PHYSICAL_VALENCIES: dict[str, tuple[int, ...]] = {"z_p": (1, 2, 3, 4), "z_n": (-1, -2, -3, -4)}
#: The default grid over the paper's ranges (campaigns/uncharged_multivalent.toml draws from it): 11 x 7 x 3 x 1 x 6
#: = 1386 systems, steps of 0.1 nm in h, 0.1 M in c and 0.05 nm in d; z_n = -2 only when a design asks for it.
UNCHARGED_GRID: dict[str, tuple[float, ...]] = {
    "h": (3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.7, 3.8, 3.9, 4.0),
    "c": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "z_p": (1, 2, 3),
    "z_n": (-1,),
    "d": (0.5, 0.55, 0.6, 0.65, 0.7, 0.75),
}
#: Points of the resampled profile of an uncharged-wall run over [-h/2, h/2] (the native bins of the authors'
#: template, 0.05 sigma adjusted to a whole number across the slit, number 80-160 over the design ranges).
N_GRID_UNCHARGED = 150


@dataclass(frozen=True)
class UnchargedElectrolyte:
    """kadupitiya2020's system: h confinement length (nm), c salt concentration (M, *anions* per volume, as the
    paper defines it), z_p cation valency (1, 2, 3), z_n anion valency (-1, -2), d diameter of every ion (nm);
    walls uncharged. Counts follow the authors' preprocessor: N- = int(c 0.6022 L^2 h) rounded up to a multiple
    of z_p, N+ = |z_n| N- / z_p (electroneutral). Values outside the design ranges raise InvalidInput unless
    allow_outside_design=True (then only UNCHARGED_PHYSICAL_LIMITS/VALENCIES apply)."""

    h: float
    c: float
    z_p: int
    z_n: int
    d: float
    allow_outside_design: bool = field(default=False, compare=False)
    kind: ClassVar[str] = "uncharged"
    sigma_s: ClassVar[float] = 0.0

    def __post_init__(self) -> None:
        for name in ("z_p", "z_n"):
            value = getattr(self, name)
            ok = isinstance(value, (int, np.integer, float, np.floating)) and not isinstance(value, (bool, np.bool_))
            if ok and isinstance(value, (float, np.floating)):
                ok = math.isfinite(value) and float(value).is_integer()
            allowed = UNCHARGED_PHYSICAL_VALENCIES[name] if self.allow_outside_design else UNCHARGED_VALENCIES[name]
            if not ok or int(value) not in allowed:
                extra = "" if self.allow_outside_design else (
                    f" (design values; with allow_outside_design=True (CLI: --allow-outside-design): "
                    f"{list(UNCHARGED_PHYSICAL_VALENCIES[name])})")
                raise InvalidInput(f"{name} ({UNCHARGED_LONG_NAMES[name]}) = {str(value)[:40]} is not one of the "
                                   f"allowed valencies {list(allowed)}{extra}")
            object.__setattr__(self, name, int(value))
        _check_continuous_inputs(self, ("h", "c", "d"), UNCHARGED_LONG_NAMES, UNCHARGED_INPUT_UNITS,
                                 UNCHARGED_DESIGN_RANGES, UNCHARGED_PHYSICAL_LIMITS,
                                 design_note=" of the uncharged-wall system")

    @property
    def d_plus(self) -> float:
        return self.d

    @property
    def d_minus(self) -> float:
        return self.d

    def inputs(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in UNCHARGED_INPUT_NAMES}

    def key(self) -> str:
        """The authors' key with the valencies, a zero wall charge and the suffix '_uncharged', e.g.
        'Z_3_p_3_n_-1_d_0.5_a_0.5_c_0.9_i_0_uncharged'."""
        return system_key(self.inputs())

    @property
    def counts(self) -> ParticleCounts:
        return uncharged_particle_counts(self)


def uncharged_particle_counts(system: UnchargedElectrolyte) -> ParticleCounts:
    """The authors' preprocessor (INTERFACE::put_saltions_inside) for uncharged walls: L as for charged walls,
    N- = int(c 0.6022 L^2 h) rounded up to a multiple of z_p, N+ = |z_n| N- / z_p; no wall charge, no mesh."""
    L = box_length_nm(system.c)
    n_minus = int(system.c * AVOGADRO_PER_NM3_PER_MOLAR * L * L * system.h)
    if n_minus % system.z_p:
        n_minus += system.z_p - n_minus % system.z_p
    n_plus = abs(system.z_n) * n_minus // system.z_p
    return ParticleCounts(L, 0, n_minus, n_plus, 0, 0.0, 0.0)


def uncharged_grid(h_nm: float, n: int = N_GRID_UNCHARGED) -> np.ndarray:
    """The z grid of an uncharged-wall run's profiles: n points over exactly [-h/2, h/2]."""
    return np.linspace(-h_nm / 2, h_nm / 2, n)


def uncharged_grid_points(values: dict[str, tuple[float, ...]] | None = None) -> list[dict[str, float]]:
    """Every combination of the given uncharged-system input values (default `UNCHARGED_GRID`), in the order
    h, c, z_p, z_n, d; an input left out takes its UNCHARGED_GRID values. Valencies come back as ints."""
    values = {**UNCHARGED_GRID, **(values or {})}
    return [{k: (int(v) if k in ("z_p", "z_n") else float(v)) for k, v in zip(UNCHARGED_INPUT_NAMES, combo)}
            for combo in itertools.product(*(values[k] for k in UNCHARGED_INPUT_NAMES))]


def system_kind(inputs: dict) -> str:
    """'uncharged' for the inputs of an UnchargedElectrolyte (they name z_p), else 'charged'."""
    return "uncharged" if "z_p" in inputs else "charged"


def make_system(inputs: dict, allow_outside_design: bool = False) -> "ConfinedElectrolyte | UnchargedElectrolyte":
    """The system of either kind from its inputs (`system_kind` decides)."""
    cls = UnchargedElectrolyte if system_kind(inputs) == "uncharged" else ConfinedElectrolyte
    return cls(**inputs, allow_outside_design=allow_outside_design)


def parse_uncharged_key(key: str) -> dict[str, float]:
    """Inputs {'h', 'c', 'z_p', 'z_n', 'd'} of an uncharged-wall key
    ('Z_{h}_p_{z_p}_n_{z_n}_d_{d}_a_{d}_c_{c}_i_0_uncharged', `UnchargedElectrolyte.key`); the key must end in
    '_uncharged', the wall charge must be 0 and the two diameters equal."""
    if not key.endswith(UNCHARGED_KEY_SUFFIX):
        raise ValueError(f"not an uncharged-wall key (needs the suffix {UNCHARGED_KEY_SUFFIX!r}): {key!r}")
    m = KEY_PATTERN.match(key[:-len(UNCHARGED_KEY_SUFFIX)])
    if m is None:
        raise ValueError(f"not an authors' profile key: {key!r}")
    if float(m["sigma_s"]) != 0.0 or float(m["d_plus"]) != float(m["d_minus"]):
        raise ValueError(f"not an uncharged-wall key (needs i_0 and d = a): {key!r}")
    return {"h": float(m["h"]), "c": float(m["c"]), "z_p": int(m["zp"]), "z_n": int(m["zn"]), "d": float(m["d_plus"])}


# ---------------------------------------------------------------------------------------------- learning problems

@dataclass(frozen=True)
class SystemSchema:
    """The learning problem of one system kind, as the surrogate stage sees it: the inputs (names in network order,
    units, long names, design ranges the inputs are min-max scaled over, physical limits that extrapolation never
    crosses, which are integer valencies), the profile grid (points per ion species, the z rule) and the interface
    width of the papers' E_I/E_B metrics. Two instances: CHARGED_SCHEMA and UNCHARGED_SCHEMA (`system_schema`)."""

    kind: str
    input_names: tuple[str, ...]
    units: dict[str, str]
    long_names: dict[str, str]
    design_ranges: dict[str, tuple[float, float]]
    physical_limits: dict[str, tuple[float, float]]
    n_points: int
    #: 'a_table': z = linspace(-a(h), a(h), n_points), a(h) from the training grids (the authors' bins, not
    #: exactly h/2); 'half_h': z = linspace(-h/2, h/2, n_points) (`uncharged_grid`).
    z_rule: str
    integer_inputs: tuple[str, ...] = ()
    #: Points at each end of a profile in the interface set I of sun2023 eqs. 6-7 (50 of 502: about 10 %).
    n_interface: int = 50

    @property
    def n_outputs(self) -> int:
        """Network outputs: n+ then n-, n_points each."""
        return 2 * self.n_points

    def design_minmax(self) -> tuple[np.ndarray, np.ndarray]:
        """(min, max) over the design ranges in input order (the networks' input scaling)."""
        lo = np.array([self.design_ranges[k][0] for k in self.input_names], dtype=float)
        hi = np.array([self.design_ranges[k][1] for k in self.input_names], dtype=float)
        return lo, hi

    def valencies(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(z_p, z_n) per row of X (N, n_inputs): the inputs z_p, z_n, or +1/-1 for a system without them."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if "z_p" in self.input_names:
            return X[:, self.input_names.index("z_p")], X[:, self.input_names.index("z_n")]
        return np.ones(len(X)), -np.ones(len(X))

    def describe(self) -> str:
        """'h, c, z_p, z_n, d (h in nm, ...)': the inputs with their units, for messages."""
        return f"{', '.join(self.input_names)} ({', '.join(f'{k} in {self.units[k]}' for k in self.input_names)})"


CHARGED_SCHEMA = SystemSchema(
    kind="charged", input_names=INPUT_NAMES, units=INPUT_UNITS, long_names=INPUT_LONG_NAMES,
    design_ranges=DESIGN_RANGES, physical_limits=PHYSICAL_LIMITS, n_points=N_GRID, z_rule="a_table")
UNCHARGED_SCHEMA = SystemSchema(
    kind="uncharged", input_names=UNCHARGED_INPUT_NAMES, units=UNCHARGED_INPUT_UNITS, long_names=UNCHARGED_LONG_NAMES,
    design_ranges={**UNCHARGED_DESIGN_RANGES,
                   **{k: (float(min(v)), float(max(v))) for k, v in UNCHARGED_VALENCIES.items()}},
    physical_limits={**UNCHARGED_PHYSICAL_LIMITS,
                     **{k: (float(min(v)), float(max(v))) for k, v in UNCHARGED_PHYSICAL_VALENCIES.items()}},
    n_points=N_GRID_UNCHARGED, z_rule="half_h", integer_inputs=("z_p", "z_n"), n_interface=15)
SYSTEM_SCHEMAS: dict[str, SystemSchema] = {s.kind: s for s in (CHARGED_SCHEMA, UNCHARGED_SCHEMA)}


def system_schema(kind: str | None = None) -> SystemSchema:
    """The SystemSchema of a system kind ('charged', 'uncharged'; None: 'charged')."""
    kind = "charged" if kind is None else kind
    if kind not in SYSTEM_SCHEMAS:
        raise ValueError(f"unknown system kind {kind!r}; known: {sorted(SYSTEM_SCHEMAS)}")
    return SYSTEM_SCHEMAS[kind]
