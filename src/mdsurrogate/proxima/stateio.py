"""Safe PROXIMA state files: arrays in safetensors, everything else as JSON in its header; never a pickle.

`pack(tree, kind)` splits a tree of dicts, lists, scalars, NumPy arrays, torch tensors and ASE Atoms into named
arrays (safetensors) and a JSON document kept in the header metadata. `unpack(blob, kind, source)` reverses it
with `json` and `safetensors` only, so a hostile file can be wrong but can never run code. Every problem is a
`StateFormatError` (a ValueError) naming the source and what is wrong, in one line. Tuples come back as lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.constraints import dict2constraint
from safetensors import SafetensorError
from safetensors.numpy import load, save

FORMAT = "mdsurrogate-proxima"
FORMAT_VERSION = "1"
_ARRAY, _TENSOR, _ATOMS = "__array__", "__tensor__", "__atoms__"
_MARKERS = (_ARRAY, _TENSOR, _ATOMS)


class StateFormatError(ValueError):
    """A PROXIMA state file or blob is malformed, of another kind or of an unsafe format (pickle)."""


def one_line(exc: BaseException) -> str:
    """`exc` as a short single line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def pack(tree, kind: str) -> bytes:
    """Serialise `tree` to safetensors bytes whose header metadata holds the JSON part and `kind`."""
    arrays: dict[str, np.ndarray] = {}

    def add(arr: np.ndarray, where: str) -> str:
        if arr.dtype.hasobject or arr.dtype.kind not in "biuf":
            raise TypeError(f"{where}: arrays of dtype {arr.dtype} cannot be saved")
        name = f"t{len(arrays)}"
        arrays[name] = np.ascontiguousarray(arr)
        return name

    def enc(x, where: str):
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        if isinstance(x, np.generic):
            return x.item()
        if isinstance(x, np.ndarray):
            return {_ARRAY: add(x, where)}
        if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
            return {_TENSOR: add(x.detach().cpu().contiguous().numpy(), where)}
        if isinstance(x, dict):
            bad = [k for k in x if not isinstance(k, str) or k in _MARKERS]
            if bad:
                raise TypeError(f"{where}: key {bad[0]!r} cannot be saved (keys must be strings, not {_MARKERS})")
            return {k: enc(v, f"{where}.{k}") for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [enc(v, f"{where}[{i}]") for i, v in enumerate(x)]
        if isinstance(x, Atoms):
            return {_ATOMS: {
                "arrays": {k: enc(v, f"{where}.arrays.{k}") for k, v in x.arrays.items()},
                "cell": enc(np.asarray(x.cell), where), "pbc": [bool(p) for p in x.pbc],
                "celldisp": enc(np.asarray(x.get_celldisp(), dtype=float), where),
                "info": enc(dict(x.info), f"{where}.info"),
                "constraints": [enc(c.todict(), f"{where}.constraints") for c in x.constraints]}}
        raise TypeError(f"{where}: objects of type {type(x).__name__} cannot be saved")

    doc = json.dumps(enc(tree, "state"))
    return save(arrays, metadata={"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "tree": doc})


def _header(blob: bytes, source: str) -> dict:
    def fail(what: str, unparsed: bool = False):
        if unparsed and (blob[:1] == b"\x80" and blob[1:2] in b"\x02\x03\x04\x05" or blob[:4] == b"PK\x03\x04"):
            what = ("a pickle / torch.save file (the old format), refused because unpickling can run code; "
                    "re-create it with this version")
        raise StateFormatError(f"{source}: {what}") from None

    if len(blob) < 8:
        fail(f"not a PROXIMA state file ({len(blob)} bytes, too short)")
    n = int.from_bytes(blob[:8], "little")
    if not 2 <= n <= len(blob) - 8:
        fail(f"not a safetensors file (header length {n} does not fit the {len(blob)}-byte file)", True)
    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        fail("not a safetensors file (header is not JSON)", True)
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        fail(f"not a {FORMAT} file (format {found!r})")
    return meta


def unpack(blob: bytes, kind: str, source: str | Path):
    """Parse `pack` output of this `kind`; `source` (a file name) heads every error message."""
    source = str(source)
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise StateFormatError(f"{source}: expected bytes, got {type(blob).__name__}")
    blob = bytes(blob)
    meta = _header(blob, source)
    if meta.get("format_version") != FORMAT_VERSION:
        raise StateFormatError(f"{source}: format_version {meta.get('format_version')!r} is not supported "
                               f"(this mdsurrogate reads {FORMAT_VERSION})")
    if meta.get("kind") != kind:
        raise StateFormatError(f"{source}: holds kind {meta.get('kind')!r}, expected {kind!r}")
    try:
        tree = json.loads(meta["tree"])
    except (KeyError, TypeError, ValueError, RecursionError) as exc:
        raise StateFormatError(f"{source}: corrupted JSON part ({one_line(exc)})") from None
    try:
        arrays = load(blob)
    except (SafetensorError, ValueError, TypeError) as exc:
        raise StateFormatError(f"{source}: corrupted tensor data ({one_line(exc)})") from None
    used: set[str] = set()
    try:
        out = _decode(tree, arrays, used)
    except (KeyError, TypeError, ValueError, AssertionError, IndexError, AttributeError, RecursionError) as exc:
        raise StateFormatError(f"{source}: invalid {kind} ({one_line(exc)})") from None
    extra = sorted(set(arrays) - used)
    if extra:
        raise StateFormatError(f"{source}: tensors {extra[:3]} are not referenced by the JSON part")
    return out


def _decode(x, arrays: dict, used: set):
    if isinstance(x, list):
        return [_decode(v, arrays, used) for v in x]
    if not isinstance(x, dict):
        return x
    if len(x) == 1 and (_ARRAY in x or _TENSOR in x):
        name = x.get(_ARRAY, x.get(_TENSOR))
        if not isinstance(name, str) or name not in arrays:
            raise KeyError(f"missing tensor {name!r}")
        used.add(name)
        arr = arrays[name]
        if _ARRAY in x:
            return arr
        import torch  # noqa: PLC0415 - heavy; only for arrays saved as torch tensors

        return torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    if len(x) == 1 and _ATOMS in x:
        return _atoms(_decode(x[_ATOMS], arrays, used))
    return {k: _decode(v, arrays, used) for k, v in x.items()}


def _atoms(d: dict) -> Atoms:
    arrs = dict(d["arrays"])
    if not all(isinstance(v, np.ndarray) for v in arrs.values()):
        raise TypeError("atoms arrays must be tensors")
    atoms = Atoms(numbers=arrs.pop("numbers"), positions=arrs.pop("positions"), cell=d["cell"], pbc=d["pbc"],
                  celldisp=d["celldisp"], info=dict(d["info"]),
                  constraint=[dict2constraint(c) for c in d["constraints"]])
    for k, v in arrs.items():
        if len(v) != len(atoms):
            raise ValueError(f"atoms array {k!r} has {len(v)} rows for {len(atoms)} atoms")
        atoms.arrays[k] = v
    return atoms
