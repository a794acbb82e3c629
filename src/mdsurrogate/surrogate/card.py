"""A saved surrogate: a directory with the weights (safetensors, never a pickle) and a JSON card.

card.json holds the system kind (`system_kind`; a card without it is of the charged-wall system, as the cards saved
before the uncharged system existed), the inputs and their design and training ranges, the output grid, the
architecture and training recipe, the training data provenance, test metrics, library versions and the sha256 of
the weights file. `load_surrogate` checks all of it and refuses a corrupted or mismatched directory with a clear
message.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from mdsurrogate.io import file_sha256
from mdsurrogate.provenance import provenance
from mdsurrogate.simulation.system import SYSTEM_SCHEMAS, system_schema
from mdsurrogate.surrogate.ensemble import Surrogate, default_surrogate_path

CARD_FILE = "card.json"
WEIGHTS_FILE = "weights.safetensors"
CARD_FORMAT = "mdsurrogate-surrogate"
CARD_VERSION = 1
MAX_CARD_BYTES = 16 * 2**20


class SurrogateLoadError(ValueError):
    """A saved surrogate directory is missing, corrupted or inconsistent."""


def build_card(members: list, *, name: str, training_X: np.ndarray, z_half_width: dict[float, float],
               train_config: dict, member_info: list[dict], training_data: dict, metrics: dict,
               description: str = "") -> dict:
    """The card of a new surrogate of the members' system kind; training ranges are the min/max of the inputs it was
    trained on."""
    schema = members[0].config.schema
    names, p = schema.input_names, schema.n_points
    ranges = {name_: (float(training_X[:, i].min()), float(training_X[:, i].max())) for i, name_ in enumerate(names)}
    rule = ("z = linspace(-a(h), a(h), 502); a(h) linear in h through these points" if schema.z_rule == "a_table"
            else f"z = linspace(-h/2, h/2, {p}) (the training grids' h and half widths are listed)")
    return {
        "format": CARD_FORMAT,
        "format_version": CARD_VERSION,
        "name": name,
        "description": description,
        "system_kind": schema.kind,
        "inputs": [{"name": k, "long_name": schema.long_names[k], "unit": schema.units[k],
                    "design_range": list(schema.design_ranges[k]), "training_range": list(ranges[k])}
                   for k in names],
        "outputs": {"variables": ["n_plus", "n_minus"], "units": "M", "n_points": p,
                    "layout": f"network output y[0:{p}] = n_plus, y[{p}:{2 * p}] = n_minus on the z grid",
                    "z_grid": {"rule": rule,
                               "h": list(z_half_width), "half_width": list(z_half_width.values())}},
        "architecture": members[0].config.as_dict(),
        "n_members": len(members),
        "training": {"config": train_config, "members": member_info},
        "training_data": training_data,
        "metrics": metrics,
        "versions": provenance("torch", "scikit-learn", "safetensors"),
    }


def save_surrogate(surrogate: Surrogate, directory: str | Path) -> Path:
    """Write weights + card into `directory` atomically (built in a sibling temp dir, then renamed)."""
    from safetensors.torch import save_file  # noqa: PLC0415 - torch

    directory = Path(directory)
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise ValueError(f"{directory} exists and is not a folder; refusing to replace it with a surrogate")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CARD_FILE).is_file():
        raise ValueError(f"{directory} is a folder that holds other files and no surrogate ({CARD_FILE}); refusing "
                         "to replace it: save into a new or empty folder, or one holding a surrogate")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        tensors = {f"member{i}.{k}": v.detach().cpu().contiguous().float()
                   for i, m in enumerate(surrogate.members) for k, v in m.state_dict().items()}
        card = dict(surrogate.card)
        card["n_members"] = len(surrogate.members)
        validate_card({**card, "weights": {"file": WEIGHTS_FILE, "sha256": "0" * 64}})
        bad = [k for k, v in tensors.items() if not bool(v.isfinite().all())]
        if bad:
            raise ValueError(f"refusing to save a surrogate with NaN or infinite weights ({bad[0]}); the training "
                             "diverged (lower the learning rate)")
        # one metadata entry: safetensors writes several in varying order, so identical weights hashed differently
        save_file(tensors, str(tmp / WEIGHTS_FILE), metadata={"card_sha256": card_binding(card)})
        card["weights"] = {"file": WEIGHTS_FILE, "sha256": file_sha256(tmp / WEIGHTS_FILE), "dtype": "float32",
                           "n_tensors": len(tensors), "bytes": (tmp / WEIGHTS_FILE).stat().st_size}
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2, sort_keys=False, default=str) + "\n")
        for f in tmp.iterdir():
            os.chmod(f, 0o644)
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o755)
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        surrogate.card = card
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def card_binding(card: dict) -> str:
    """sha256 of the card entries that decide what the weights compute (inputs and their ranges, outputs and the z
    grid, architecture, members). Stored in the weights file's metadata, so an edited card no longer matches the
    weights it describes (the card in turn pins the weights file by its sha256)."""
    bound = {k: card.get(k) for k in ("inputs", "outputs", "architecture", "n_members")}
    return hashlib.sha256(json.dumps(bound, sort_keys=True).encode()).hexdigest()


def _number_pair(v, where: str) -> tuple[float, float]:
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
        raise ValueError(f"{where} must be two finite numbers, got {v!r}")
    return float(v[0]), float(v[1])


def validate_card(card: dict) -> None:
    """Check a card against its schema: types, ranges and sizes (the weights' shapes are checked on loading).
    Raises ValueError naming the entry."""
    if not isinstance(card.get("name", ""), str):
        raise ValueError("name must be a string")
    kind = card.get("system_kind", "charged")
    if not isinstance(kind, str) or kind not in SYSTEM_SCHEMAS:
        raise ValueError(f"system_kind must be one of {sorted(SYSTEM_SCHEMAS)}, got {str(kind)[:40]!r}")
    schema = system_schema(kind)
    names, n_points = schema.input_names, schema.n_points
    inputs = card.get("inputs")
    if not isinstance(inputs, list) or [d.get("name") if isinstance(d, dict) else None for d in inputs] != list(
            names):
        raise ValueError(f"inputs must list {list(names)} in this order (system_kind {kind!r})")
    for d in inputs:
        k = d["name"]
        design = _number_pair(d.get("design_range"), f"inputs.{k}.design_range")
        if not np.allclose(design, schema.design_ranges[k], rtol=0, atol=1e-9):
            raise ValueError(f"inputs.{k}.design_range {list(design)} is not the design range "
                             f"{schema.design_ranges[k]}")
        lo, hi = _number_pair(d.get("training_range"), f"inputs.{k}.training_range")
        plo, phi = schema.physical_limits[k]
        if not plo <= lo <= hi <= phi:
            raise ValueError(f"inputs.{k}.training_range [{lo}, {hi}] must be an interval inside the physical "
                             f"limits [{plo}, {phi}] {schema.units[k]}")
    outputs = card.get("outputs")
    if not isinstance(outputs, dict) or outputs.get("variables") != ["n_plus", "n_minus"] \
            or outputs.get("n_points") != n_points:
        raise ValueError(f"outputs must be n_plus and n_minus on {n_points} points (system_kind {kind!r})")
    grid = outputs.get("z_grid", {})
    hs, aw = grid.get("h", []), grid.get("half_width", [])
    if (not isinstance(hs, list) or not isinstance(aw, list) or len(hs) != len(aw) or len(hs) > 1000
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                       for x in hs + aw)):
        raise ValueError("outputs.z_grid.h and half_width must be equally long lists of finite numbers")
    if np.any(np.diff(hs) <= 0) or any(not 0.4 * h <= a <= 0.6 * h for h, a in zip(hs, aw)):
        raise ValueError("outputs.z_grid: h must increase and every half_width lie within 20 % of h/2")
    arch = card.get("architecture")
    if not isinstance(arch, dict):
        raise ValueError("architecture must be an object")
    hidden = arch.get("hidden")
    if (not isinstance(hidden, list) or not 1 <= len(hidden) <= 16
            or not all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 65536 for w in hidden)):
        raise ValueError(f"architecture.hidden must be 1-16 integer widths in [1, 65536], got {hidden!r}")
    if arch.get("n_inputs") != len(names) or arch.get("n_outputs") != schema.n_outputs:
        raise ValueError(f"architecture must map {len(names)} inputs to {schema.n_outputs} outputs "
                         f"(system_kind {kind!r})")
    if arch.get("system", "charged") != kind:
        raise ValueError(f"architecture.system {arch.get('system')!r} is not the card's system_kind {kind!r}")
    n = card.get("n_members")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 256:
        raise ValueError(f"n_members must be an integer in [1, 256], got {n!r}")
    weights = card.get("weights")
    if not isinstance(weights, dict) or not isinstance(weights.get("sha256"), str) \
            or not re.fullmatch(r"[0-9a-f]{64}", weights["sha256"]):
        raise ValueError("weights must give the sha256 of the weights file")
    if not isinstance(weights.get("file", WEIGHTS_FILE), str) or Path(weights.get("file", WEIGHTS_FILE)).name \
            != weights.get("file", WEIGHTS_FILE):
        raise ValueError("weights.file must be a file name in the surrogate directory")


def load_surrogate(directory: str | Path | None = None, device: str = "cpu", system: str | None = None
                   ) -> Surrogate:
    """Load and verify a saved surrogate (default: the one shipped in the package for `system`, 'charged' unless
    given): the card's schema, the weights' sha256, the card-weights binding, every tensor's shape against the
    architecture (checked before anything is allocated) and that every weight is finite. With `system`, a
    surrogate of the other system kind is refused."""
    import torch  # noqa: PLC0415
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415
    from safetensors.torch import load_file  # noqa: PLC0415

    from mdsurrogate.surrogate.models import NetworkConfig, ProfileNet  # noqa: PLC0415 - torch

    if system is not None and system not in SYSTEM_SCHEMAS:
        raise SurrogateLoadError(f"unknown system kind {system!r}; known: {sorted(SYSTEM_SCHEMAS)}")
    shipped = directory is None
    directory = default_surrogate_path(system or "charged") if shipped else Path(directory)
    card_path = directory / CARD_FILE
    if shipped and not card_path.is_file():
        raise SurrogateLoadError(f"no {system}-wall surrogate ships with this mdsurrogate yet; train one "
                                 "(docs/surrogate.md) and load it by its directory (CLI: --model DIR)")
    if not directory.is_dir():
        raise SurrogateLoadError(f"{directory}: no such surrogate directory")
    if not card_path.is_file():
        raise SurrogateLoadError(f"{directory}: missing {CARD_FILE}; not a saved surrogate")
    if card_path.stat().st_size > MAX_CARD_BYTES:
        raise SurrogateLoadError(f"{card_path}: larger than {MAX_CARD_BYTES} bytes; not a surrogate card")
    try:
        card = json.loads(card_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise SurrogateLoadError(f"{card_path}: corrupted card, not valid JSON ({str(exc)[:100]})") from None
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        raise SurrogateLoadError(f"{card_path}: not a {CARD_FORMAT} card (format={card.get('format')!r})"
                                 if isinstance(card, dict) else f"{card_path}: card must be a JSON object")
    if card.get("format_version") != CARD_VERSION:
        raise SurrogateLoadError(f"{card_path}: card format_version {card.get('format_version')!r} is not supported "
                                 f"(this mdsurrogate reads version {CARD_VERSION})")
    try:
        validate_card(card)
        config = NetworkConfig.from_dict(card["architecture"])
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise SurrogateLoadError(f"{card_path}: invalid card: {exc}") from None
    kind = card.get("system_kind", "charged")
    if system is not None and kind != system:
        raise SurrogateLoadError(f"{directory}: a surrogate of the {kind}-wall system (inputs "
                                 f"{', '.join(system_schema(kind).input_names)}), not of the {system}-wall system")
    weights, n_members = card["weights"], card["n_members"]
    wpath = directory / weights.get("file", WEIGHTS_FILE)
    if not wpath.is_file():
        raise SurrogateLoadError(f"{directory}: weights file {wpath.name} is missing")
    digest = file_sha256(wpath)
    if digest != weights.get("sha256"):
        raise SurrogateLoadError(f"{wpath}: sha256 {digest[:12]}... does not match the card's "
                                 f"{str(weights.get('sha256'))[:12]}...; the weights are corrupted or belong to "
                                 "another surrogate")
    with torch.device("meta"):  # shapes only: nothing is allocated for an absurd architecture
        expected = {k: tuple(v.shape) for k, v in ProfileNet(config).state_dict().items()}
    try:
        with safe_open(str(wpath), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise SurrogateLoadError(f"{wpath}: unreadable safetensors file ({exc})") from None
    bound = meta.get("card_sha256")
    if bound is not None and bound != card_binding(card):
        raise SurrogateLoadError(f"{card_path}: the card's inputs, outputs or architecture were edited after the "
                                 "weights were saved (they no longer match the binding stored in the weights)")
    for i in range(n_members):
        for k, shape in expected.items():
            got = shapes.get(f"member{i}.{k}")
            if got != shape:
                raise SurrogateLoadError(f"{wpath}: member {i} tensor {k} has shape {got}, the card's architecture "
                                         f"needs {shape}")
    extra = {k for k in shapes if not any(k.startswith(f"member{i}.") for i in range(n_members))}
    if extra:
        raise SurrogateLoadError(f"{wpath}: tensors {sorted(extra)[:3]} are not described by the card "
                                 f"(n_members={n_members})")
    tensors = load_file(str(wpath))
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise SurrogateLoadError(f"{wpath}: tensor {bad[0]} holds NaN or infinite weights")
    members = []
    for i in range(n_members):
        prefix = f"member{i}."
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        model = ProfileNet(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise SurrogateLoadError(f"{wpath}: member {i} does not match the architecture in the card "
                                     f"({str(exc).splitlines()[0]})") from None
        model.eval()
        members.append(model.to(torch.device(device)))
    return Surrogate(members=members, card=card)
