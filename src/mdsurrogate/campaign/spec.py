"""Campaign specs: which systems to run, with which run controls, and how (TOML via tomllib, or YAML).

A spec is a small file::

    [campaign]
    name = "demo"                 # used for the default output directory runs/campaigns/<name>
    system = "charged"            # or "uncharged": kadupitiya2020's inputs h, c, z_p, z_n, d (its own grid and
                                  # ranges, simulation.system.UNCHARGED_*; sobol/lhs need z_p and z_n in `fixed`)
    allow_outside_design = false  # true: points may leave the design ranges (physical limits still apply)
    reuse = ["data/part_*.nc"]    # datasets (glob patterns, relative to the working directory) whose runs
                                  # count as done: a run whose run_id is in one of them is not run again

    [[design]]                    # any number of blocks; their union (deduplicated) is the campaign
    type = "grid"                 # the papers' 4050 grid; an input given as a list makes a sub-grid
    c = [0.1, 0.5]

    [[design]]
    type = "random_subset"        # n systems drawn (seeded) from a grid minus the exclusions
                                  # (the papers' grid unless grid = { c = [...], ... } narrows it)
    n = 100
    seed = 7

    [[design]]
    type = "sobol"                # or "lhs": space-filling points within the ranges (scipy.stats.qmc)
    n = 64
    seed = 1
    ranges = { c = [0.1, 1.0] }   # optional sub-ranges (must lie inside the design ranges)
    fixed = { d_plus = 0.415 }    # optional inputs held fixed

    [[design]]
    type = "list"
    points = [{ h = 4.4, c = 0.5, d_plus = 0.415, d_minus = 0.415, sigma_s = -0.015 }]

    [[exclude]]                   # drop every system matching all items (a value or a list of values)
    d_plus = 0.415
    d_minus = 0.415

    [controls]                    # passed to the engine's RunControls (mdsurrogate.simulation.engine)
    preset = "production"         # "authors" or "production"
    time_tau = 2000.0             # at most one of time_tau, steps (target_rel_error may bound a run too)
    seeds = [1]                   # every system is run once per seed
    timeout_s = 7200
    n_blocks = 20                 # blocks for the standard errors
    overrides = { dt = 0.004 }    # replace fields of the preset (EngineSettings)

    [execution]
    workers = 2                   # concurrent runs
    cores_per_run = 1             # MPI ranks per run
    max_attempts = 3              # a failed run is retried until it has been tried this often
    reseed_on_retry = true        # retry k uses seed + 1000003*(k-1) (a run that lost atoms would repeat)
    backend = "local"             # "local" (process pool, no service) or "parsl"
    parsl_config = "local"        # "local", "threads" or a python file defining `config` or `make_config`
                                  # (SLURM and PBS examples: docs/campaign.md)

Every problem is reported as SpecError naming the key (e.g. ``design[2].n``) before anything runs. A campaign has
at most MAX_SYSTEMS systems and MAX_RUNS runs (checked before any design is expanded); seeds of designs and of the
start order must lie in [0, 2**32).
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import qmc

from mdsurrogate.campaign.parsl_configs import BUILTIN_CONFIGS
from mdsurrogate.simulation.settings import RunControls
from mdsurrogate.simulation.system import (
    DESIGN_RANGES,
    INPUT_NAMES,
    PAPER_GRID,
    UNCHARGED_DESIGN_RANGES,
    UNCHARGED_GRID,
    UNCHARGED_INPUT_NAMES,
    ConfinedElectrolyte,
    InvalidInput,
    UnchargedElectrolyte,
    grid_points,
    system_key,
    uncharged_grid_points,
)

SYSTEM_KINDS = ("charged", "uncharged")


@dataclass(frozen=True)
class _Vocabulary:
    """What a spec's designs refer to for one system kind."""

    names: tuple[str, ...]
    grid: dict
    ranges: dict
    points: Any  # grid_points-like
    cls: Any


_VOCABULARY = {
    "charged": _Vocabulary(INPUT_NAMES, PAPER_GRID, DESIGN_RANGES, grid_points, ConfinedElectrolyte),
    "uncharged": _Vocabulary(UNCHARGED_INPUT_NAMES, UNCHARGED_GRID, UNCHARGED_DESIGN_RANGES, uncharged_grid_points,
                             UnchargedElectrolyte),
}

DESIGN_TYPES = ("grid", "random_subset", "sobol", "lhs", "list")
CONTROL_KEYS = ("preset", "time_tau", "steps", "target_rel_error", "timeout_s", "seeds", "n_blocks", "overrides")
PRESETS = ("authors", "production")
BACKENDS = ("local", "parsl")
RESEED_STRIDE = 1_000_003
#: each retry runs with seed + RESEED_STRIDE * (attempt - 1), and the seeds' bound leaves room for 10 retries
MAX_ATTEMPTS = 11
MAX_SYSTEMS = 1_000_000  # systems per design block, per random_subset grid and per campaign (checked before expanding)
MAX_RUNS = 1_000_000  # runs (systems x seeds) per campaign
SEED_LIMIT = 2**32  # numpy/scipy generators take seeds in [0, 2**32)


class SpecError(ValueError):
    """An invalid campaign spec; the message starts with the offending key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


@dataclass(frozen=True)
class Run:
    """One run of the campaign: a system and a seed."""

    run_id: str
    inputs: dict[str, float]
    seed: int


#: "shuffled" starts the runs in a seeded random order, so that a campaign stopped part-way (or run in pieces)
#: is at every moment a uniform random subsample of its design, not the first rows of the grid.
EXECUTION_ORDERS = ("spec", "shuffled")


@dataclass(frozen=True)
class Execution:
    workers: int = 1
    cores_per_run: int = 1
    max_attempts: int = 3
    reseed_on_retry: bool = True
    backend: str = "local"
    parsl_config: str = "local"
    order: str = "spec"  # "spec": runs start in spec order; "shuffled": in a seeded random order
    order_seed: int = 0


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    runs: tuple[Run, ...]
    controls: dict[str, Any]  # RunControls keyword arguments except seed and mpi_ranks
    seeds: tuple[int, ...]
    execution: Execution = field(default_factory=Execution)
    directory: str | None = None
    allow_outside_design: bool = False
    source: str = ""  # the spec text, copied into the campaign directory
    source_suffix: str = ".toml"
    reuse: tuple[str, ...] = ()  # glob patterns of datasets whose runs count as done (see reused_runs)

    @property
    def systems(self) -> list[dict[str, float]]:
        seen: dict[str, dict[str, float]] = {}
        for r in self.runs:
            seen.setdefault(system_key(r.inputs), r.inputs)
        return list(seen.values())

    def controls_fingerprint(self) -> str:
        """The run controls that change results; a ledger refuses to resume under different ones."""
        return json.dumps(self.controls, sort_keys=True)


# ---------------------------------------------------------------------------------------------- loading

def load_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a TOML (.toml) or YAML (.yaml/.yml) campaign spec (a regular UTF-8 file)."""
    from mdsurrogate.io import BadPath, check_input  # noqa: PLC0415

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"campaign spec not found: {path}")
    try:
        check_input(path, "campaign spec")  # a folder or a FIFO would fail or block on reading
    except BadPath as exc:
        raise SpecError("<file>", str(exc)) from None
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError("<file>", f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise SpecError("<file>", f"{path} cannot be read: {exc.strerror or exc}") from None
    if path.suffix.lower() in (".yaml", ".yml"):

        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError("<file>", f"{path} is not valid YAML: {exc}") from None
    elif path.suffix.lower() == ".toml":
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError("<file>", f"{path} is not valid TOML: {exc}") from None
    else:
        raise SpecError("<file>", f"{path}: use a .toml, .yaml or .yml file")
    spec = parse_spec(raw, source=text, default_name=path.stem)
    return dataclasses.replace(spec, source_suffix=".yaml" if path.suffix.lower() in (".yaml", ".yml") else ".toml")


def parse_spec(raw: Any, source: str = "", default_name: str = "campaign") -> CampaignSpec:
    """Validate a spec given as a dict (the parsed file) and expand it into runs."""
    if not isinstance(raw, dict):
        raise SpecError("<root>", "a campaign spec must be a table/mapping")
    _check_keys(raw, ("campaign", "design", "exclude", "controls", "execution"), "")
    camp = _table(raw.get("campaign", {}), "campaign")
    _check_keys(camp, ("name", "description", "directory", "allow_outside_design", "reuse", "system"), "campaign")
    kind = camp.get("system", "charged")
    if kind not in SYSTEM_KINDS:
        raise SpecError("campaign.system", f"must be one of {list(SYSTEM_KINDS)}, got {kind!r}")
    name = camp.get("name", default_name)
    if not isinstance(name, str) or not name or any(ch in name for ch in "/\\ "):
        raise SpecError("campaign.name", f"must be a non-empty string without '/', '\\' or spaces, got {name!r}")
    directory = camp.get("directory")
    if directory is not None and not isinstance(directory, str):
        raise SpecError("campaign.directory", f"must be a path string, got {directory!r}")
    allow = _bool(camp.get("allow_outside_design", False), "campaign.allow_outside_design")
    reuse = camp.get("reuse", [])
    if isinstance(reuse, str):
        reuse = [reuse]
    if not isinstance(reuse, list) or not all(isinstance(r, str) and r for r in reuse):
        raise SpecError("campaign.reuse", f"must be a list of dataset paths or glob patterns, got {reuse!r}")

    designs = raw.get("design")
    if designs is None:
        raise SpecError("design", "missing: give at least one [[design]] block")
    if isinstance(designs, dict):
        designs = [designs]
    if not isinstance(designs, list) or not designs:
        raise SpecError("design", "must be a list of [[design]] blocks")
    excludes = raw.get("exclude", [])
    if isinstance(excludes, dict):
        excludes = [excludes]
    if not isinstance(excludes, list):
        raise SpecError("exclude", "must be a list of [[exclude]] tables")
    rules = [_exclusion(e, f"exclude[{i}]", kind) for i, e in enumerate(excludes)]
    points: dict[str, dict[str, float]] = {}
    for i, block in enumerate(designs):
        for p in expand_design(block, f"design[{i}]", allow, rules, kind):
            points.setdefault(system_key(p), p)
        if len(points) > MAX_SYSTEMS:
            raise SpecError(f"design[{i}]", f"the designs up to this block have {len(points)} systems; a campaign "
                                            f"may have at most {MAX_SYSTEMS:,}")
    kept = [p for p in points.values() if not any(_matches(p, r) for r in rules)]
    if not kept:
        raise SpecError("exclude", "the exclusions remove every system of the design")

    controls, seeds = _controls(raw.get("controls", {}))
    if len(kept) * len(seeds) > MAX_RUNS:
        raise SpecError("controls.seeds", f"{len(kept)} systems x {len(seeds)} seeds = {len(kept) * len(seeds)} "
                                          f"runs; a campaign may have at most {MAX_RUNS:,} runs")
    execution = _execution(raw.get("execution", {}))
    runs = tuple(Run(run_id=f"{system_key(p)}_s{s}", inputs=p, seed=s) for p in kept for s in seeds)
    _check_engine_accepts(controls, seeds[0], execution.cores_per_run)
    return CampaignSpec(name=name, runs=runs, controls=controls, seeds=seeds, execution=execution,
                        directory=directory, allow_outside_design=allow, source=source, reuse=tuple(reuse))


# ---------------------------------------------------------------------------------------------- designs

def expand_design(block: Any, where: str, allow_outside_design: bool = False,
                  exclude: list[dict[str, tuple[float, ...]]] | None = None,
                  kind: str = "charged") -> list[dict[str, float]]:
    """The points of one [[design]] block, validated (each becomes a ConfinedElectrolyte, or an
    UnchargedElectrolyte for kind="uncharged"). A random subset is drawn from the grid minus the exclusions, so
    that it has exactly n systems."""
    voc = _VOCABULARY[kind]
    INPUT_NAMES, grid_points = voc.names, voc.points  # noqa: N806 - this kind's names, shadowing the charged ones
    block = _table(block, where)
    if block.get("type") not in DESIGN_TYPES:
        raise SpecError(f"{where}.type", f"must be one of {list(DESIGN_TYPES)}, got {block.get('type')!r}")
    if block.get("type") == "grid":
        _check_keys(block, ("type", *INPUT_NAMES), where)
        values = _grid_values(block, where, kind)
        _check_grid_size(values, where, "a grid design")
        pts = grid_points(values)
    elif block.get("type") == "random_subset":
        _check_keys(block, ("type", "n", "seed", "grid"), where)
        grid_table = _table(block.get("grid", {}), f"{where}.grid")
        _check_keys(grid_table, INPUT_NAMES, f"{where}.grid")
        grid = _grid_values(grid_table, f"{where}.grid", kind)
        _check_grid_size(grid, f"{where}.grid", "the grid a random subset is drawn from")
        n = _positive_int(block.get("n"), f"{where}.n")
        _check_count(n, f"{where}.n")
        seed = _seed(block.get("seed"), f"{where}.seed")
        full = [p for p in grid_points(grid) if not any(_matches(p, r) for r in exclude or [])]
        if n > len(full):
            raise SpecError(f"{where}.n", f"asks for {n} systems but the grid has only {len(full)} "
                                          "(after exclusions)")
        idx = np.sort(np.random.default_rng(seed).choice(len(full), size=n, replace=False))
        pts = [full[i] for i in idx]
    elif block.get("type") in ("sobol", "lhs"):
        _check_keys(block, ("type", "n", "seed", "ranges", "fixed", "decimals"), where)
        pts = _space_filling(block, where, block["type"], voc)
    else:  # list
        _check_keys(block, ("type", "points"), where)
        raw_pts = block.get("points")
        if not isinstance(raw_pts, list) or not raw_pts:
            raise SpecError(f"{where}.points", "must be a non-empty list of tables with the five inputs")
        pts = []
        for j, p in enumerate(raw_pts):
            p = _table(p, f"{where}.points[{j}]")
            _check_keys(p, INPUT_NAMES, f"{where}.points[{j}]")
            missing = [k for k in INPUT_NAMES if k not in p]
            if missing:
                raise SpecError(f"{where}.points[{j}]", f"missing inputs {missing}")
            pts.append({k: _number(p[k], f"{where}.points[{j}].{k}") for k in INPUT_NAMES})
    out = []
    for j, p in enumerate(pts):
        try:
            sys_ = voc.cls(**p, allow_outside_design=allow_outside_design)
        except InvalidInput as exc:
            raise SpecError(f"{where}" + (f".points[{j}]" if block.get("type") == "list" else ""), str(exc)) from None
        out.append(sys_.inputs())
    return out


def _check_count(n: int, where: str) -> None:
    if n > MAX_SYSTEMS:
        raise SpecError(where, f"asks for {n} systems; a campaign may have at most {MAX_SYSTEMS:,}")


def _check_grid_size(values: dict[str, tuple[float, ...]], where: str, what: str) -> None:
    """Refuse a grid of more than MAX_SYSTEMS points before any point is made (its size is a product)."""
    size = math.prod(len(v) for v in values.values())
    if size > MAX_SYSTEMS:
        raise SpecError(where, f"{what} has {' x '.join(str(len(v)) for v in values.values())} = {size} points; "
                               f"a campaign may have at most {MAX_SYSTEMS:,} systems")


def _grid_values(block: dict, where: str, kind: str = "charged") -> dict[str, tuple[float, ...]]:
    voc = _VOCABULARY[kind]
    values = {}
    for k in voc.names:
        v = block.get(k, voc.grid[k])
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, (list, tuple)) or not v:
            raise SpecError(f"{where}.{k}", f"must be a number or a non-empty list of numbers, got {v!r}")
        values[k] = tuple(_number(x, f"{where}.{k}") for x in v)
    return values


def _space_filling(block: dict, where: str, kind: str, voc: _Vocabulary = _VOCABULARY["charged"]
                   ) -> list[dict[str, float]]:
    INPUT_NAMES, DESIGN_RANGES = voc.names, voc.ranges  # noqa: N806 - this system kind's names and ranges
    if voc is _VOCABULARY["uncharged"]:
        fixed_keys = _table(block.get("fixed", {}), f"{where}.fixed")
        if not {"z_p", "z_n"} <= set(fixed_keys):
            raise SpecError(f"{where}.fixed", "a sobol/lhs design of the uncharged system needs the valencies z_p "
                                              "and z_n fixed (use a grid or random_subset to vary them)")

    n = _positive_int(block.get("n"), f"{where}.n")
    _check_count(n, f"{where}.n")
    seed = _seed(block.get("seed"), f"{where}.seed")
    decimals = _int(block.get("decimals", 4), f"{where}.decimals")
    if not 1 <= decimals <= 8:
        raise SpecError(f"{where}.decimals", f"must be in [1, 8], got {decimals}")
    fixed = _table(block.get("fixed", {}), f"{where}.fixed")
    _check_keys(fixed, INPUT_NAMES, f"{where}.fixed")
    ranges = _table(block.get("ranges", {}), f"{where}.ranges")
    _check_keys(ranges, INPUT_NAMES, f"{where}.ranges")
    free = [k for k in INPUT_NAMES if k not in fixed]
    if not free:
        raise SpecError(f"{where}.fixed", "fixes every input; use type = \"list\" for single points")
    bounds = []
    for k in free:
        lo, hi = DESIGN_RANGES[k]
        if k in ranges:
            r = ranges[k]
            if not isinstance(r, list) or len(r) != 2:
                raise SpecError(f"{where}.ranges.{k}", f"must be [min, max], got {r!r}")
            rlo, rhi = (_number(x, f"{where}.ranges.{k}") for x in r)
            if not (lo - 1e-12 <= rlo < rhi <= hi + 1e-12):
                raise SpecError(f"{where}.ranges.{k}", f"[{rlo}, {rhi}] must be increasing and inside the design "
                                                       f"range [{lo}, {hi}]")
            lo, hi = rlo, rhi
        bounds.append((lo, hi))
    if kind == "sobol":
        if n & (n - 1):
            raise SpecError(f"{where}.n", f"a Sobol design needs a power of 2 (balance properties), got {n}")
        sampler = qmc.Sobol(d=len(free), scramble=True, seed=seed)
    else:
        sampler = qmc.LatinHypercube(d=len(free), seed=seed)
    unit = sampler.random(n)
    scaled = qmc.scale(unit, [b[0] for b in bounds], [b[1] for b in bounds])
    pts = []
    for row in scaled:
        p = {k: _number(fixed[k], f"{where}.fixed.{k}") for k in fixed}
        for k, x in zip(free, row):
            lo, hi = bounds[free.index(k)]
            p[k] = float(min(max(round(float(x), decimals), lo), hi))
        pts.append({k: p[k] for k in INPUT_NAMES})
    return pts


# ---------------------------------------------------------------------------------------------- exclusions

def _exclusion(rule: Any, where: str, kind: str = "charged") -> dict[str, tuple[float, ...]]:
    rule = _table(rule, where)
    if not rule:
        raise SpecError(where, "an empty exclusion would remove every system")
    _check_keys(rule, _VOCABULARY[kind].names, where)
    out = {}
    for k, v in rule.items():
        vals = v if isinstance(v, list) else [v]
        out[k] = tuple(_number(x, f"{where}.{k}") for x in vals)
    return out


def _matches(p: dict[str, float], rule: dict[str, tuple[float, ...]]) -> bool:
    return all(any(abs(p[k] - v) < 1e-9 for v in vals) for k, vals in rule.items())


# ---------------------------------------------------------------------------------------------- controls

def _controls(raw: Any) -> tuple[dict[str, Any], tuple[int, ...]]:
    raw = _table(raw, "controls")
    _check_keys(raw, CONTROL_KEYS, "controls")
    preset = raw.get("preset", "production")
    if preset not in PRESETS:
        raise SpecError("controls.preset", f"must be one of {list(PRESETS)}, got {preset!r}")
    out: dict[str, Any] = {"preset": preset}
    if "time_tau" in raw and "steps" in raw:
        raise SpecError("controls.steps", "give the run length as time_tau or steps, not both")
    if "time_tau" in raw:
        out["time_tau"] = _positive_float(raw["time_tau"], "controls.time_tau")
    if "steps" in raw:
        out["steps"] = _positive_int(raw["steps"], "controls.steps")
    if "target_rel_error" in raw:
        v = _positive_float(raw["target_rel_error"], "controls.target_rel_error")
        if v >= 1:
            raise SpecError("controls.target_rel_error", f"must be in (0, 1), got {v}")
        out["target_rel_error"] = v
    if "timeout_s" in raw:
        out["timeout_s"] = _positive_float(raw["timeout_s"], "controls.timeout_s")
    if "n_blocks" in raw:
        out["n_blocks"] = _positive_int(raw["n_blocks"], "controls.n_blocks")
    if "overrides" in raw:
        overrides = _table(raw["overrides"], "controls.overrides")
        for k, v in overrides.items():
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise SpecError(f"controls.overrides.{k}", f"must be a number or string, got {v!r}")
        out["overrides"] = dict(overrides)
    seeds = raw.get("seeds", [1])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds:
        raise SpecError("controls.seeds", f"must be a non-empty list of positive integers, got {seeds!r}")
    seeds_t = tuple(_positive_int(s, "controls.seeds") for s in seeds)
    if len(set(seeds_t)) != len(seeds_t):
        raise SpecError("controls.seeds", f"repeats a seed: {list(seeds_t)}")
    if max(seeds_t) >= 2**31 - 1 - (MAX_ATTEMPTS - 1) * RESEED_STRIDE:
        raise SpecError("controls.seeds", f"seeds must be below {2**31 - 1 - (MAX_ATTEMPTS - 1) * RESEED_STRIDE}")
    return out, seeds_t


def _execution(raw: Any) -> Execution:
    raw = _table(raw, "execution")
    _check_keys(raw, ("workers", "cores_per_run", "max_attempts", "reseed_on_retry", "backend", "parsl_config",
                      "order", "order_seed"), "execution")
    backend = raw.get("backend", "local")
    if backend not in BACKENDS:
        raise SpecError("execution.backend", f"must be one of {list(BACKENDS)}, got {backend!r}")
    parsl_config = raw.get("parsl_config", "local")
    if not isinstance(parsl_config, str) or not (parsl_config in BUILTIN_CONFIGS or parsl_config.endswith(".py")):
        raise SpecError("execution.parsl_config", f"must be one of {list(BUILTIN_CONFIGS)} or a python file "
                                                  f"(.py) defining `config` or `make_config`, got {parsl_config!r}")
    order = raw.get("order", "spec")
    if order not in EXECUTION_ORDERS:
        raise SpecError("execution.order", f"must be one of {list(EXECUTION_ORDERS)}, got {order!r}")
    order_seed = _seed(raw.get("order_seed", 0), "execution.order_seed")
    return Execution(
        order=order,
        order_seed=order_seed,
        workers=_positive_int(raw.get("workers", 1), "execution.workers"),
        cores_per_run=_positive_int(raw.get("cores_per_run", 1), "execution.cores_per_run"),
        max_attempts=_attempts(raw.get("max_attempts", 3), "execution.max_attempts"),
        reseed_on_retry=_bool(raw.get("reseed_on_retry", True), "execution.reseed_on_retry"),
        backend=backend,
        parsl_config=parsl_config,
    )


def _check_engine_accepts(controls: dict[str, Any], seed: int, mpi_ranks: int) -> None:
    """Let the engine's RunControls validate the controls too."""
    try:
        RunControls(**controls, seed=seed, mpi_ranks=mpi_ranks)
    except TypeError as exc:
        raise SpecError("controls", f"the engine's RunControls rejects these controls: {exc}") from None
    except ValueError as exc:
        first = str(exc).split()[0] if str(exc) else ""
        known = first in CONTROL_KEYS or first.startswith("overrides.")
        raise SpecError(f"controls.{first}" if known else "controls", str(exc)) from None


def attempt_seed(seed: int, attempt: int, reseed: bool) -> int:
    """The seed of attempt number `attempt` (1-based) of a run."""
    return seed + RESEED_STRIDE * (attempt - 1) if reseed else seed


# ---------------------------------------------------------------------------------------------- helpers

def _check_keys(table: dict, allowed: tuple[str, ...], where: str) -> None:
    for k in table:
        if k not in allowed:
            key = f"{where}.{k}" if where else str(k)
            raise SpecError(key, f"unknown key; allowed here: {list(allowed)}")


def _table(v: Any, where: str) -> dict:
    if not isinstance(v, dict):
        raise SpecError(where, f"must be a table/mapping, got {type(v).__name__}")
    return v


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SpecError(where, f"must be a finite number, got {v!r}")
    return float(v)


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise SpecError(where, f"must be an integer, got {v!r}")
    return v


def _seed(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < SEED_LIMIT:
        raise SpecError(where, f"must be an integer in [0, 2**32 - 1], got {v!r}")
    return v


def _attempts(v: Any, where: str) -> int:
    v = _positive_int(v, where)
    if v > MAX_ATTEMPTS:
        raise SpecError(where, f"must be in [1, {MAX_ATTEMPTS}] (each retry takes the seed + {RESEED_STRIDE} x the "
                               f"attempts before it, within the engine's seed range), got {v}")
    return v


def _positive_int(v: Any, where: str) -> int:
    v = _int(v, where)
    if v < 1:
        raise SpecError(where, f"must be >= 1, got {v}")
    return v


def _positive_float(v: Any, where: str) -> float:
    v = _number(v, where)
    if v <= 0:
        raise SpecError(where, f"must be > 0, got {v}")
    return v


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        raise SpecError(where, f"must be true or false, got {v!r}")
    return v
