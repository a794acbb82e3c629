"""Ensemble surrogate S: ANI-style networks (torchani AEVs + element networks) trained on energy, forces, stress.

Paper section 2.3: ANI networks (TorchANI), weighted sum of Huber losses on energy, forces and stress, Adam with
learning rate 1e-3, an ensemble of two networks each fit to its own random subset of the data; forces are
-dE/dx and the stress is (1/V) dE/d(strain), both by automatic differentiation.

Neighbour lists come from ASE (periodic, any cell) and are fed to torchani's AEV terms through
`AEVComputer.compute_from_neighbors`, so frames with different cells batch together.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols
from ase.neighborlist import primitive_neighbor_list

from mdsurrogate.io import atomic_path
from mdsurrogate.proxima.stateio import StateFormatError, one_line, pack, unpack

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")  # CPU only: the CUDA extensions are not needed

from torchani.aev import AEVComputer  # noqa: E402
from torchani.neighbors import Neighbors  # noqa: E402
from torchani.nn import ANINetworks  # noqa: E402

EV_A3_TO_GPA = 160.21766
ENSEMBLE_KIND = "ensemble"


@dataclass
class SurrogateConfig:
    """Architecture and training settings of one ensemble (paper 2.3; defaults sized for 2 CPU cores)."""

    symbols: tuple[str, ...] = ("Si",)
    radial_cutoff: float = 5.0
    angular_cutoff: float = 3.6
    radial_shifts: int = 16
    angular_shifts: int = 4
    angular_sections: int = 8
    hidden: tuple[int, ...] = (64, 32)
    n_members: int = 2
    epochs: int = 32
    batch_size: int = 16
    lr: float = 1e-3
    valid_fraction: float = 0.1
    w_energy: float = 1.0  # per-atom energy, eV
    w_forces: float = 1.0  # eV/A
    w_stress: float = 0.1  # GPa
    huber_delta: float = 1.0
    valid_every: int = 0  # > 0: validation errors every this many epochs (the training curve), best state kept
    patience: int = 0  # > 0 (with valid_every): stop after this many checks without a 1 % better force error
    lr_decay: float = 0.0  # in (0, 1) (with valid_every): multiply lr by this after 2 checks without a 1 % gain


def _aev(cfg: SurrogateConfig) -> AEVComputer:
    rs = np.linspace(0.8, cfg.radial_cutoff, cfg.radial_shifts, endpoint=False).tolist()
    sa = np.linspace(0.8, cfg.angular_cutoff, cfg.angular_shifts, endpoint=False).tolist()
    sections = (np.pi / cfg.angular_sections * (np.arange(cfg.angular_sections) + 0.5)).tolist()
    return AEVComputer.from_constants(
        radial_cutoff=cfg.radial_cutoff, angular_cutoff=cfg.angular_cutoff, radial_eta=16.0,
        radial_shifts=rs, angular_eta=8.0, angular_zeta=8.0, angular_shifts=sa, sections=sections,
        num_species=len(cfg.symbols))


def _networks(cfg: SurrogateConfig, in_dim: int) -> ANINetworks:
    return ANINetworks.build(list(cfg.symbols), in_dim, {}, default_dims=tuple(cfg.hidden), activation="celu",
                             bias=True)


@dataclass
class Frames:
    """A batch of frames prepared for the model: flat atoms, pairs and per-frame cells."""

    elem: torch.Tensor  # (B, N) long
    coords: torch.Tensor  # (B, N, 3)
    cell: torch.Tensor  # (B, 3, 3)
    pair_i: torch.Tensor  # (P,) flat atom index
    pair_j: torch.Tensor
    pair_shift: torch.Tensor  # (P, 3) integer cell shifts (float)
    pair_frame: torch.Tensor  # (P,)
    volume: torch.Tensor  # (B,)


_OFFSETS = np.array([[a, b, c] for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], dtype=float)


def _pairs(atoms: Atoms, cutoff: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each periodic pair within `cutoff` once: (i, j, S) with vector pos[j] - pos[i] + S @ cell.

    Fast path when the cutoff is below half the smallest cell height (then at most one image of j lies within
    the cutoff of i, found among the 27 cells around the rounded fractional difference); ASE otherwise.
    """
    cell = atoms.cell.array
    if atoms.pbc.all():
        heights = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        if cutoff < 0.5 * heights.min():
            frac = atoms.positions @ np.linalg.inv(cell)
            i, j = np.triu_indices(len(atoms), k=1)
            d = frac[j] - frac[i]
            base = -np.round(d)
            cand = (d + base)[:, None, :] + _OFFSETS[None]  # (P, 27, 3) fractional
            cart = cand @ cell
            dist2 = np.einsum("pki,pki->pk", cart, cart)
            best = np.argmin(dist2, axis=1)
            keep = dist2[np.arange(len(i)), best] < cutoff**2
            shift = (base + _OFFSETS[best])[keep]
            return i[keep], j[keep], np.round(shift).astype(int)
    i, j, s = primitive_neighbor_list("ijS", atoms.pbc, cell, atoms.positions, cutoff, self_interaction=False)
    sign = np.zeros(len(i), dtype=int)
    for k in range(3):  # lexicographic sign of the shift vector, to keep one of each self-image pair
        sign = np.where(sign == 0, np.sign(s[:, k]), sign)
    keep = (i < j) | ((i == j) & (sign > 0))
    return i[keep], j[keep], s[keep]


def prepare(atoms_list: list[Atoms], symbols: tuple[str, ...], cutoff: float) -> Frames:
    """Batch frames with equal atom counts into one `Frames` (neighbour lists from ASE)."""
    n = len(atoms_list[0])
    index = {s: k for k, s in enumerate(symbols)}
    elem, coords, cells, pi, pj, ps, pf = [], [], [], [], [], [], []
    for b, at in enumerate(atoms_list):
        if len(at) != n:
            raise ValueError("all frames in a batch need the same number of atoms")
        elem.append([index[s] for s in at.get_chemical_symbols()])
        coords.append(at.positions)
        cells.append(at.cell.array)
        i, j, s = _pairs(at, cutoff)
        pi.append(i + b * n)
        pj.append(j + b * n)
        ps.append(s)
        pf.append(np.full(len(i), b))
    cell = torch.tensor(np.array(cells), dtype=torch.float32)
    return Frames(
        elem=torch.tensor(elem, dtype=torch.long), coords=torch.tensor(np.array(coords), dtype=torch.float32),
        cell=cell, pair_i=torch.tensor(np.concatenate(pi), dtype=torch.long),
        pair_j=torch.tensor(np.concatenate(pj), dtype=torch.long),
        pair_shift=torch.tensor(np.concatenate(ps), dtype=torch.float32),
        pair_frame=torch.tensor(np.concatenate(pf), dtype=torch.long),
        volume=torch.abs(torch.linalg.det(cell)))


def _energy_with_grads(aev: AEVComputer, nets: list[ANINetworks], fr: Frames, e0: torch.Tensor,
                       create_graph: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Energies (M, B), forces (M, B, N, 3) and stress (M, B, 3, 3) for each member network."""
    coords = fr.coords.clone().requires_grad_(True)
    strain = torch.zeros_like(fr.cell, requires_grad=True)
    sym = 0.5 * (strain + strain.transpose(1, 2))
    flat = coords.reshape(-1, 3)
    shift = torch.einsum("pk,pkl->pl", fr.pair_shift, fr.cell[fr.pair_frame])
    # torchani convention: diff = coords[idx0] - coords[idx1] + shift, with idx0 = i, idx1 = j
    diff = flat[fr.pair_i] - flat[fr.pair_j] - shift
    diff = diff + torch.einsum("pk,pkl->pl", diff, sym[fr.pair_frame])
    dist = diff.norm(dim=-1)
    feats = aev.compute_from_neighbors(fr.elem, coords, Neighbors(torch.stack([fr.pair_i, fr.pair_j]), dist, diff))
    energies, forces, stresses = [], [], []
    for k, net in enumerate(nets):
        e = net(fr.elem, feats) + e0[fr.elem].sum(dim=1)
        g_x, g_s = torch.autograd.grad(e.sum(), [coords, strain], create_graph=create_graph,
                                       retain_graph=create_graph or k < len(nets) - 1)
        energies.append(e)
        forces.append(-g_x)
        stresses.append(g_s / fr.volume[:, None, None])
    return torch.stack(energies), torch.stack(forces), torch.stack(stresses)


def _voigt(s: np.ndarray) -> np.ndarray:
    """(..., 3, 3) -> ASE Voigt order xx yy zz yz xz xy."""
    return np.stack([s[..., 0, 0], s[..., 1, 1], s[..., 2, 2], s[..., 1, 2], s[..., 0, 2], s[..., 0, 1]], axis=-1)


def _full(v: np.ndarray) -> np.ndarray:
    xx, yy, zz, yz, xz, xy = (v[..., k] for k in range(6))
    return np.stack([np.stack([xx, xy, xz], -1), np.stack([xy, yy, yz], -1), np.stack([xz, yz, zz], -1)], -2)


@dataclass
class Prediction:
    """Per-member predictions of the ensemble for one frame."""

    energy: np.ndarray  # (M,)
    forces: np.ndarray  # (M, N, 3)
    stress: np.ndarray  # (M, 6) Voigt, eV/A^3

    @property
    def uq(self) -> float:
        """UQ as in the reference code (cascade/proxima): max over atoms of the mean over members of
        |F_m - F_mean|."""
        mean = self.forces.mean(axis=0)
        return float(np.linalg.norm(self.forces - mean[None], axis=-1).mean(axis=0).max())


@dataclass
class EnsembleSurrogate:
    """An ensemble of ANI-style networks sharing one AEV featuriser."""

    config: SurrogateConfig = field(default_factory=SurrogateConfig)
    version: int = 0
    e0: np.ndarray | None = None  # per-element energy shift
    states: list[dict] | None = None  # member state_dicts
    train_log: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self._aev = _aev(self.config)
        self._nets: list[ANINetworks] | None = None
        if self.states is not None:
            self._load_nets()

    @property
    def trained(self) -> bool:
        return self.states is not None

    def _load_nets(self):
        self._nets = []
        for st in self.states:
            net = _networks(self.config, self._aev.out_dim)
            net.load_state_dict(st)
            net.eval()
            self._nets.append(net)

    def predict(self, atoms: Atoms) -> Prediction:
        """Energy, forces and stress of every member for `atoms`."""
        if not self.trained:
            raise RuntimeError("surrogate not trained")
        fr = prepare([atoms], self.config.symbols, self.config.radial_cutoff)
        e, f, s = _energy_with_grads(self._aev, self._nets, fr, torch.tensor(self.e0, dtype=torch.float32),
                                     create_graph=False)
        return Prediction(energy=e[:, 0].detach().double().numpy(), forces=f[:, 0].detach().double().numpy(),
                          stress=_voigt(s[:, 0].detach().double().numpy()))

    def fit(self, frames: list[Atoms], rng: np.random.Generator, progress=None, warm_start: bool = False
            ) -> list[dict]:
        """Train every member on its own random (1 - valid_fraction) split (paper 2.3).

        `frames` carry target energy/forces/stress (e.g. read from the ASE db). `warm_start`: continue from the
        current member weights and energy shift e0 (fine-tuning on extended data) instead of a fresh start.
        Returns per-member logs.
        """
        cfg = self.config
        if warm_start and not self.trained:
            raise RuntimeError("warm_start needs a trained ensemble")
        init_states = self.states if warm_start else None
        energies = np.array([a.get_potential_energy() for a in frames])
        forces = np.array([a.get_forces() for a in frames])
        stress = np.array([a.get_stress() for a in frames])
        counts = np.array([[sum(1 for s in a.get_chemical_symbols() if s == sym) for sym in cfg.symbols]
                           for a in frames], dtype=float)
        e0 = np.asarray(self.e0, dtype=float) if warm_start else np.linalg.lstsq(counts, energies, rcond=None)[0]
        self.e0 = e0
        e0_t = torch.tensor(e0, dtype=torch.float32)
        data = prepare(frames, cfg.symbols, cfg.radial_cutoff)
        n_atoms = data.elem.shape[1]
        y_e = torch.tensor(energies, dtype=torch.float32)
        y_f = torch.tensor(forces, dtype=torch.float32)
        y_s = torch.tensor(_full(stress), dtype=torch.float32)
        states, logs = [], []
        for m in range(cfg.n_members):
            seed = int(rng.integers(2**31))
            gen = torch.Generator().manual_seed(seed)
            split_rng = np.random.default_rng(seed)
            is_train = split_rng.random(len(frames)) > cfg.valid_fraction
            train_idx = np.flatnonzero(is_train)
            valid_idx = np.flatnonzero(~is_train)
            torch.manual_seed(seed)
            net = _networks(cfg, self._aev.out_dim)
            if init_states is not None:
                net.load_state_dict(init_states[m])
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=cfg.lr_decay, patience=1, threshold=0.01) \
                if 0 < cfg.lr_decay < 1 else None
            valid = _subset(data, valid_idx) if len(valid_idx) else None
            curve: list[dict] = []
            best = (np.inf, None, 0)  # (valid force MAE, state, epoch)
            ref, stale = np.inf, 0
            for epoch in range(cfg.epochs):
                order = train_idx[torch.randperm(len(train_idx), generator=gen).numpy()]
                total, n_batches = 0.0, 0
                for start in range(0, len(order), cfg.batch_size):
                    idx = order[start:start + cfg.batch_size]
                    loss = self._loss(net, _subset(data, idx), e0_t, y_e[idx], y_f[idx], y_s[idx], n_atoms)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += float(loss.detach())
                    n_batches += 1
                if progress is not None:
                    progress(m, epoch)
                if cfg.valid_every and valid is not None and ((epoch + 1) % cfg.valid_every == 0
                                                              or epoch + 1 == cfg.epochs):
                    errs = self._valid_errors(net, valid, e0_t, y_e[valid_idx], y_f[valid_idx], y_s[valid_idx])
                    curve.append({"epoch": epoch + 1, "train_loss": total / max(n_batches, 1),
                                  "lr": opt.param_groups[0]["lr"], **errs})
                    net.train()
                    err = errs["valid_force_mae"]
                    if sched is not None:
                        sched.step(err)
                    if err < best[0]:  # keep the lowest validation force error seen
                        best = (err, {k: v.detach().clone() for k, v in net.state_dict().items()}, epoch + 1)
                    if err < 0.99 * ref:  # patience counts checks without a 1 % improvement
                        ref, stale = err, 0
                    else:
                        stale += 1
                        if cfg.patience and stale >= cfg.patience:
                            break
            if best[1] is not None:  # the state with the best validation force error
                net.load_state_dict(best[1])
            log = {"member": m, "seed": seed, "n_train": int(len(train_idx)), "n_valid": int(len(valid_idx)),
                   "warm_start": bool(warm_start)}
            if curve:
                log |= {"curve": curve, "best_epoch": best[2], "epochs_run": curve[-1]["epoch"]}
            if valid is not None:
                log |= self._valid_errors(net, valid, e0_t, y_e[valid_idx], y_f[valid_idx], y_s[valid_idx])
            states.append({k: v.detach().clone() for k, v in net.state_dict().items()})
            logs.append(log)
        self.states = states
        self.version += 1
        self.train_log = logs
        self._load_nets()
        return logs

    def _valid_errors(self, net, fr: Frames, e0, y_e, y_f, y_s) -> dict:
        """Mean absolute errors of one member on prepared validation frames (eval mode)."""
        net.eval()
        n_atoms = fr.elem.shape[1]
        e, f, s = _energy_with_grads(self._aev, [net], fr, e0, False)
        e, f, s = e.detach(), f.detach(), s.detach()
        return {"valid_energy_mae_per_atom": float((e[0] - y_e).abs().mean() / n_atoms),
                "valid_force_mae": float((f[0] - y_f).abs().mean()),
                "valid_force_max_atom_err": float((f[0] - y_f).norm(dim=-1).amax(dim=-1).mean()),
                "valid_stress_mae_gpa": float((s[0] - y_s).abs().mean() * EV_A3_TO_GPA)}

    def _loss(self, net, fr: Frames, e0, y_e, y_f, y_s, n_atoms):
        cfg = self.config
        e, f, s = _energy_with_grads(self._aev, [net], fr, e0, create_graph=True)
        hub = torch.nn.functional.huber_loss
        return (cfg.w_energy * hub(e[0] / n_atoms, y_e / n_atoms, delta=cfg.huber_delta)
                + cfg.w_forces * hub(f[0], y_f, delta=cfg.huber_delta)
                + cfg.w_stress * hub(s[0] * EV_A3_TO_GPA, y_s * EV_A3_TO_GPA, delta=cfg.huber_delta))

    # --- state -------------------------------------------------------------------------------------
    def get_state(self) -> dict:
        """Config, version, e0, member weights (torch tensors) and the training log."""
        return {"config": asdict(self.config), "version": self.version,
                "e0": None if self.e0 is None else np.asarray(self.e0).tolist(),
                "states": self.states, "train_log": self.train_log}

    @classmethod
    def from_state(cls, state: dict, source: str = "ensemble state") -> "EnsembleSurrogate":
        """Rebuild from `get_state` output; a malformed state raises StateFormatError naming `source`."""
        try:
            cfg = dict(state["config"])
            cfg["symbols"] = tuple(cfg["symbols"])
            cfg["hidden"] = tuple(cfg["hidden"])
            config = SurrogateConfig(**cfg)
            _check_config(config)
            e0 = None if state["e0"] is None else np.asarray(state["e0"], dtype=float)
            states = state["states"]
            if states is not None:
                if len(states) != config.n_members:
                    raise ValueError(f"{len(states)} member weights for n_members = {config.n_members}")
                if not all(isinstance(st, dict) and all(isinstance(v, torch.Tensor) for v in st.values())
                           for st in states):
                    raise TypeError("member weights must be dicts of tensors")
                if e0 is None or e0.shape != (len(config.symbols),) or not np.isfinite(e0).all():
                    raise ValueError(f"e0 must hold one finite energy per symbol {config.symbols}")
            version = state["version"]
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                raise ValueError(f"version must be an integer >= 0, got {version!r}")
            return cls(config=config, version=version, e0=e0, states=states, train_log=list(state["train_log"]))
        except StateFormatError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as exc:
            raise StateFormatError(f"{source}: invalid ensemble state ({one_line(exc)})") from None

    def to_bytes(self) -> bytes:
        """The ensemble as safetensors bytes: weights as tensors, config, e0 and log as JSON (no pickle)."""
        return pack(self.get_state(), ENSEMBLE_KIND)

    @classmethod
    def from_bytes(cls, blob: bytes, source: str = "ensemble blob") -> "EnsembleSurrogate":
        """Inverse of `to_bytes`; never unpickles. Malformed input raises StateFormatError (a ValueError)."""
        return cls.from_state(unpack(blob, ENSEMBLE_KIND, source), str(source))

    def save(self, path: str | Path) -> Path:
        """Write `to_bytes()` to `path` atomically."""
        with atomic_path(path) as tmp:
            tmp.write_bytes(self.to_bytes())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "EnsembleSurrogate":
        """Read a `save` file; a malformed or hostile file raises StateFormatError naming it."""
        return cls.from_bytes(Path(path).read_bytes(), source=str(path))


_POSITIVE = ("radial_shifts", "angular_shifts", "angular_sections", "n_members", "batch_size")


class SurrogateCalculator(Calculator):
    """The ensemble mean as a plain ASE calculator (energy, forces, stress): relaxations, NEB, pure-surrogate MD."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, surrogate: "EnsembleSurrogate", **kwargs):
        super().__init__(**kwargs)
        self.surrogate = surrogate

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        pred = self.surrogate.predict(self.atoms)
        e = float(pred.energy.mean())
        self.results = {"energy": e, "free_energy": e, "forces": pred.forces.mean(axis=0),
                        "stress": pred.stress.mean(axis=0)}


def _check_config(cfg: SurrogateConfig) -> None:
    """Types and sane sizes of a loaded config (a hostile file must not allocate huge networks)."""
    if not cfg.symbols or any(s not in chemical_symbols[1:] for s in cfg.symbols):
        raise ValueError(f"symbols {cfg.symbols!r} are not chemical symbols")
    ints = {"radial_shifts": 256, "angular_shifts": 256, "angular_sections": 256, "n_members": 64,
            "epochs": 10**6, "batch_size": 10**6, "valid_every": 10**6, "patience": 10**6}
    for name, hi in ints.items():
        v = getattr(cfg, name)
        if not isinstance(v, int) or isinstance(v, bool) or not int(name in _POSITIVE) <= v <= hi:
            raise ValueError(f"{name} = {v!r} is not an integer in range")
    if not 1 <= len(cfg.hidden) <= 16 or any(not isinstance(h, int) or not 1 <= h <= 4096 for h in cfg.hidden):
        raise ValueError(f"hidden = {cfg.hidden!r} is not 1-16 layer widths in [1, 4096]")
    for name in ("radial_cutoff", "angular_cutoff", "lr", "valid_fraction", "w_energy", "w_forces", "w_stress",
                 "huber_delta", "lr_decay"):
        v = getattr(cfg, name)
        if not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise ValueError(f"{name} = {v!r} is not a finite number >= 0")
    if not 0 < cfg.angular_cutoff <= cfg.radial_cutoff <= 20:
        raise ValueError(f"cutoffs {cfg.angular_cutoff}, {cfg.radial_cutoff} A are not 0 < angular <= radial <= 20")


def _subset(fr: Frames, idx: np.ndarray) -> Frames:
    """Frames `idx` of a prepared batch, with pair indices renumbered."""
    idx_t = torch.as_tensor(np.asarray(idx), dtype=torch.long)
    n = fr.elem.shape[1]
    remap = torch.full((fr.elem.shape[0],), -1, dtype=torch.long)
    remap[idx_t] = torch.arange(len(idx_t))
    keep = remap[fr.pair_frame] >= 0
    new_frame = remap[fr.pair_frame[keep]]
    pi = fr.pair_i[keep] % n + new_frame * n
    pj = fr.pair_j[keep] % n + new_frame * n
    return Frames(elem=fr.elem[idx_t], coords=fr.coords[idx_t], cell=fr.cell[idx_t], pair_i=pi, pair_j=pj,
                  pair_shift=fr.pair_shift[keep], pair_frame=new_frame, volume=fr.volume[idx_t])
