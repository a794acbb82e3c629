"""Safe import and export of the authors' profile pickles (nanoconfinement-md dataset format).

Format: a pickle of a dict; key 'Z_{h}_p_1_n_-1_d_{d+}_a_{d-}_c_{c}_i_{sigma_s}'; value
{'pos': (P, 3), 'neg': (P, 3)} float arrays with columns [z in nm, density in M, error in M].

Unpickling runs code, so `load_authors_pickle` uses a restricted Unpickler that only resolves the few numpy
callables such files need (numpy 1.x: numpy.core.multiarray._reconstruct / numpy.core.numeric._frombuffer;
numpy 2: numpy._core.*) plus numpy.ndarray and numpy.dtype. Anything else raises UnsafePickle.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from mdsurrogate.io import atomic_path
from mdsurrogate.simulation.system import parse_key

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}

class UnsafePickle(pickle.UnpicklingError):
    """The file asks for a callable outside the numpy allow-list."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickle(f"refusing to unpickle {module}.{name}: only numpy array reconstruction is allowed")


def load_authors_pickle(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Load an authors' profile pickle safely and check its structure."""
    data = _NumpyOnlyUnpickler(io.BytesIO(Path(path).read_bytes())).load()
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict of profiles, got {type(data).__name__}")
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in data.items():
        parse_key(key)
        if not isinstance(value, dict) or not {"pos", "neg"} <= set(value):
            raise ValueError(f"{path}: entry {key!r} must be a dict with 'pos' and 'neg'")
        entry = {}
        for ion in ("pos", "neg"):
            arr = np.asarray(value[ion], dtype=float)
            if arr.ndim != 2 or arr.shape[1] != 3:
                raise ValueError(f"{path}: {key!r}[{ion!r}] must have shape (P, 3), got {arr.shape}")
            entry[ion] = arr
        out[key] = entry
    return out


def dump_authors_pickle(profiles: dict[str, dict[str, np.ndarray]], path: str | Path) -> Path:
    """Write profiles in the authors' format (plain numpy arrays only), atomically."""
    clean = {k: {ion: np.ascontiguousarray(v[ion], dtype=float) for ion in ("pos", "neg")}
             for k, v in profiles.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            pickle.dump(clean, fh, protocol=4)
    return Path(path)
