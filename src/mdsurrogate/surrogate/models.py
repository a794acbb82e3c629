"""The surrogate network of the papers (sun2023, kadupitiya2021) on PyTorch.

Paper network: 5 -> 256 (ReLU) -> dropout 0.1 -> 512 (sigmoid) -> dropout 0.1 -> 1004 (ReLU), Glorot-normal
weights, inputs min-max scaled to [0, 1] over the design ranges. Widths, depth and activations are configurable.
Scaling lives inside the module as buffers, so a saved state holds everything needed to predict from raw inputs.
The same network serves either system kind (`simulation.system.SystemSchema`): `NetworkConfig.system` names the
kind, whose inputs, design ranges (the input scaling) and profile points fix n_inputs and n_outputs
(`NetworkConfig.for_system`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import nn

from mdsurrogate.simulation.system import INPUT_NAMES, N_GRID, SystemSchema, system_schema

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU}
#: The same functions applied in place (inference: no second activation buffer).
INPLACE_ACTIVATIONS = {"relu": torch.relu_, "sigmoid": torch.sigmoid_, "tanh": torch.tanh_,
                       "gelu": torch.nn.functional.gelu, "silu": lambda t: torch.nn.functional.silu(t, inplace=True)}
OUTPUT_SCALINGS = ("none", "standard", "global")
#: Arithmetic of StackedEnsemble's inference: fp32 throughout, or bfloat16 matrix products after the first layer.
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    """Refuse an arithmetic StackedEnsemble does not have, naming the allowed ones."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
N_OUTPUTS = 2 * N_GRID


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture: hidden widths with one activation each, dropout after every hidden layer, output activation.

    output_activation 'relu' clips the densities at zero in physical units (the papers' ReLU output layer);
    'linear' leaves them unclipped.
    """

    hidden: tuple[int, ...] = (256, 512)
    activations: tuple[str, ...] = ("relu", "sigmoid")
    dropout: float = 0.1
    output_activation: str = "relu"
    n_inputs: int = len(INPUT_NAMES)
    n_outputs: int = N_OUTPUTS
    mirror: bool = False  # predict half of each profile and mirror it about z = 0 (equal walls)
    system: str = "charged"  # the system kind (`SystemSchema`): its design ranges scale the inputs

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(w) for w in self.hidden))
        object.__setattr__(self, "activations", tuple(self.activations))
        if not self.hidden or any(w < 1 for w in self.hidden):
            raise ValueError(f"hidden widths must be positive integers, got {self.hidden}")
        if len(self.activations) != len(self.hidden):
            raise ValueError(f"need one activation per hidden layer: {len(self.hidden)} widths, "
                             f"{len(self.activations)} activations")
        for act in self.activations:
            if act not in ACTIVATIONS:
                raise ValueError(f"activation {act!r} not in {sorted(ACTIVATIONS)}")
        if self.output_activation not in ("relu", "linear"):
            raise ValueError(f"output_activation must be 'relu' or 'linear', got {self.output_activation!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        system_schema(self.system)  # raises for an unknown kind (the card checks the sizes against the kind)
        if self.mirror and self.n_outputs % 4:
            raise ValueError(f"mirror needs n_outputs divisible by 4 (two even profiles), got {self.n_outputs}")

    @property
    def schema(self) -> SystemSchema:
        return system_schema(self.system)

    def for_system(self, kind: str) -> "NetworkConfig":
        """This architecture for the system kind `kind` (its n_inputs, n_outputs and input scaling)."""
        schema = system_schema(kind)
        return replace(self, system=kind, n_inputs=len(schema.input_names), n_outputs=schema.n_outputs)

    @property
    def n_network_outputs(self) -> int:
        """Width of the last layer: n_outputs, or half of it with mirror."""
        return self.n_outputs // 2 if self.mirror else self.n_outputs

    def as_dict(self) -> dict:
        d = asdict(self)
        d["hidden"], d["activations"] = list(self.hidden), list(self.activations)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def paper_network(n1: int = 256, n2: int = 512) -> NetworkConfig:
    """5 -> n1 (ReLU) -> n2 (sigmoid) -> 1004 (ReLU), dropout 0.1 (sun2023 section 2.2)."""
    return NetworkConfig(hidden=(n1, n2), activations=("relu", "sigmoid"))


def output_scaling(Y: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) per output so that (Y - shift)/scale is the network's target.

    'none': the papers (raw molar densities); 'standard': per-output mean and std (std floored at 1e-3 of the
    largest); 'global': per-output mean and one std over all outputs (keeps the loss proportional to the MSE).
    """
    P = Y.shape[1]
    if kind == "none":
        return np.zeros(P), np.ones(P)
    shift = Y.mean(axis=0)
    if kind == "standard":
        std = Y.std(axis=0)
        return shift, np.maximum(std, 1e-3 * max(std.max(), 1e-12))
    if kind == "global":
        return shift, np.full(P, max(float((Y - shift).std()), 1e-12))
    raise ValueError(f"output_scaling must be one of {OUTPUT_SCALINGS}, got {kind!r}")


class ProfileNet(nn.Module):
    """MLP from the five raw inputs to the densities [n+(z_1..P), n-(z_1..P)] in molar (P = 502 for the charged
    system, 150 for the uncharged one; inputs min-max scaled over the design ranges of `config.system`)."""

    def __init__(self, config: NetworkConfig, x_min: np.ndarray | None = None, x_max: np.ndarray | None = None,
                 y_shift: np.ndarray | None = None, y_scale: np.ndarray | None = None) -> None:
        super().__init__()
        self.config = config
        lo, hi = config.schema.design_minmax() if x_min is None else (np.asarray(x_min), np.asarray(x_max))
        span = np.where(hi > lo, hi - lo, 1.0)
        P = config.n_outputs
        self.register_buffer("x_min", torch.as_tensor(lo, dtype=torch.float32))
        self.register_buffer("x_span", torch.as_tensor(span, dtype=torch.float32))
        self.register_buffer("y_shift", torch.as_tensor(np.zeros(P) if y_shift is None else y_shift,
                                                        dtype=torch.float32))
        self.register_buffer("y_scale", torch.as_tensor(np.ones(P) if y_scale is None else y_scale,
                                                        dtype=torch.float32))
        layers: list[nn.Module] = []
        width = config.n_inputs
        for w, act in zip(config.hidden, config.activations):
            layers += [nn.Linear(width, w), ACTIVATIONS[act]()]
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = w
        layers.append(nn.Linear(width, config.n_network_outputs))
        self.mlp = nn.Sequential(*layers)
        if config.mirror:  # indices for the mirrored output (not saved: they follow from the config)
            q = config.n_outputs // 4
            a = torch.arange(q)
            self.register_buffer("half_index", torch.cat([a, a + 2 * q]), persistent=False)
            self.register_buffer("mirror_index", torch.cat([a, a.flip(0), a + q, (a + q).flip(0)]),
                                 persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-normal weights (variance 2/(fan_in + fan_out)) and zero biases, as Keras' glorot_normal."""
        for m in self.mlp.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def scale_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_min) / self.x_span

    def forward_scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Network output in scaled units, (y - y_shift)/y_scale, with the output activation applied."""
        out = self.mlp(self.scale_inputs(x))
        if self.config.mirror:
            out = mirror_profiles(out)
        if self.config.output_activation == "relu":
            # ReLU on the physical density <=> max(out, -shift/scale) in scaled units (scale > 0).
            out = torch.maximum(out, -self.y_shift / self.y_scale)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Densities in molar: forward_scaled(x) * y_scale + y_shift, computed with the output scaling folded into
        the last layer, the ReLU applied in place and the mirror done by one gather (fast inference)."""
        h = self.mlp[:-1](self.scale_inputs(x))
        weight, bias = self._folded_last_layer()
        y = torch.addmm(bias, h, weight.t()) if h.dim() == 2 else torch.nn.functional.linear(h, weight, bias)
        if self.config.output_activation == "relu":
            y = y.clamp_min_(0.0) if not y.requires_grad else y.clamp_min(0.0)
        if self.config.mirror:
            y = y[..., self.mirror_index]
        return y

    def _folded_last_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W * scale, b * scale + shift) of the last layer; cached while the weights are unchanged and no
        gradient is needed (recomputing it per call costs more than a single-profile forward)."""
        last = self.mlp[-1]
        scale, shift = self.y_scale, self.y_shift
        if self.config.mirror:
            scale, shift = scale[self.half_index], shift[self.half_index]
        if torch.is_grad_enabled() and last.weight.requires_grad:
            return last.weight * scale[:, None], last.bias * scale + shift
        key = (last.weight._version, last.bias._version, self.y_scale._version, self.y_shift._version,
               last.weight.data_ptr(), self.y_scale.data_ptr(), str(last.weight.device))
        cache = self.__dict__.get("_folded_cache")
        if cache is None or cache[0] != key:
            with torch.no_grad():
                cache = (key, (last.weight * scale[:, None]).contiguous(), last.bias * scale + shift)
            self.__dict__["_folded_cache"] = cache
        return cache[1], cache[2]


def moments(y: torch.Tensor, std: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Mean and spread (ddof 1; None for one member or std=False) over the members of y (M, N, P), fp32.

    One pass, shifted by the first member (no cancellation: the spread is small next to the densities):
    d_k = y_k - y_0, mean = y_0 + sum d / M, var = (sum d^2 - (sum d)^2 / M) / (M - 1). bfloat16 y: the deviations
    in bfloat16, their sums in fp32 (a bfloat16 reduction is slower)."""
    M = y.shape[0]
    if M == 1:
        return y[0].float(), None
    y0 = y[0]
    d = torch.sub(y[1:], y0)
    if d.dtype != torch.float32:
        d = d.float()
    s1 = d.sum(0)
    mean = torch.add(y0, s1, alpha=1.0 / M)
    if not std:
        return mean, None
    s2 = d.square_().sum(0)
    return mean, s2.sub_(s1.square_(), alpha=1.0 / M).div_(M - 1).clamp_min_(0.0).sqrt_()


def mirror_profiles(half: torch.Tensor) -> torch.Tensor:
    """[a+, a-] (each P/4 points from the left wall to the centre) -> [a+, flip(a+), a-, flip(a-)]."""
    q = half.shape[-1] // 2
    plus, minus = half[..., :q], half[..., q:]
    return torch.cat([plus, plus.flip(-1), minus, minus.flip(-1)], dim=-1)


def symmetrize(v: np.ndarray) -> np.ndarray:
    """Average each of the two profiles in v (..., P) with its mirror image about the centre."""
    half = v.shape[-1] // 2
    parts = [v[..., :half], v[..., half:]]
    return np.concatenate([(p + p[..., ::-1]) / 2 for p in parts], axis=-1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_profile(config: NetworkConfig) -> int:
    """Multiply-adds x 2 of one forward pass (dense layers only; activations and scaling not counted)."""
    widths = [config.n_inputs, *config.hidden, config.n_network_outputs]
    return int(sum(2 * a * b for a, b in zip(widths[:-1], widths[1:])))


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class StackedEnsemble(nn.Module):
    """Members with one architecture evaluated together by batched matmuls (one call instead of M).

    forward(x (N, 5)) -> (M, N, n_outputs) in molar, equal to stacking each member's forward (eval mode: no
    dropout). Built from trained members; their weights are copied, so rebuild after changing them.
    """

    def __init__(self, members: list[ProfileNet]) -> None:
        super().__init__()
        cfg = members[0].config
        if any(m.config != cfg for m in members):
            raise ValueError("StackedEnsemble needs members with one architecture")
        if any(not torch.equal(m.x_min, members[0].x_min) or not torch.equal(m.x_span, members[0].x_span)
               for m in members):
            raise ValueError("StackedEnsemble needs members with one input scaling")
        self.config = cfg
        self.n_members = len(members)
        self.register_buffer("x_min", members[0].x_min.clone())
        self.register_buffer("x_span", members[0].x_span.clone())
        self.acts = nn.ModuleList(ACTIVATIONS[a]() for a in cfg.activations)
        n_layers = len(cfg.hidden)
        with torch.no_grad():
            linears = [[m for m in member.mlp if isinstance(m, nn.Linear)] for member in members]
            for layer in range(n_layers):
                self.register_buffer(f"w{layer}", torch.stack([lin[layer].weight.t() for lin in linears]).contiguous())
                self.register_buffer(f"b{layer}", torch.stack([lin[layer].bias for lin in linears])[:, None, :])
            folded = [m._folded_last_layer() for m in members]
            self.register_buffer("w_out", torch.stack([w.t() for w, _ in folded]).contiguous())
            self.register_buffer("b_out", torch.stack([b for _, b in folded])[:, None, :])
            # bf16 path: the last layer in scaled units common to all members, y = shift + scale * (h W' + b'),
            # with the members' mean output scaling (W' = W_molar / scale, b' = (b_molar - shift) / scale: exact
            # algebra, rounded once in fp32 before bf16)
            half = [(m.y_scale[m.half_index], m.y_shift[m.half_index]) if cfg.mirror else (m.y_scale, m.y_shift)
                    for m in members]
            scale = torch.stack([a for a, _ in half]).mean(0)
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
            shift = torch.stack([b for _, b in half]).mean(0)
            self.register_buffer("out_scale", scale)
            self.register_buffer("out_shift", shift)
        if cfg.mirror:
            self.register_buffer("mirror_index", members[0].mirror_index.clone(), persistent=False)

    def forward_half(self, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """(M, N, width of the last layer): the members' densities before mirroring, fp32 (precision: mean_std)."""
        check_precision(precision)
        if precision == "bf16":
            scaled, floor = self._scaled_bf16(x)
            y = torch.addcmul(self.out_shift, scaled, self.out_scale)
            if self.config.output_activation == "relu":  # exactly zero where the ReLU floored the member
                y = y.masked_fill_(scaled <= floor, 0.0)
        else:
            h = ((x - self.x_min) / self.x_span).expand(self.n_members, *x.shape)
            for layer, act in enumerate(self.config.activations):
                h = torch.baddbmm(getattr(self, f"b{layer}"), h, getattr(self, f"w{layer}"))
                h = INPLACE_ACTIVATIONS[act](h)  # in place: no second (M, N, width) buffer
            y = torch.baddbmm(self.b_out, h, self.w_out)
        if self.config.output_activation == "relu":
            y = y.clamp_min_(0.0)
        return y

    def _scaled_bf16(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """((M, N, P) bfloat16 outputs in the network's scaled units, the floor (P,)): the first layer in fp32 (the
        inputs keep their resolution), the later products in bfloat16; with a ReLU output, floored at the largest
        bfloat16 value <= the scaled zero density -shift/scale (the callers set exactly 0 where the floor was
        reached). The floor is up to one bfloat16 step below zero density (<= 0.008 M on the shipped model): where
        only some members are zero it biases the mean by about -6e-4 M, the size of bfloat16 rounding."""
        low = self._bf16_weights()
        h = ((x - self.x_min) / self.x_span).expand(self.n_members, *x.shape)
        for layer, act in enumerate(self.config.activations):
            if layer == 0:
                h = torch.baddbmm(self.b0, h, self.w0)
            else:
                h = torch.baddbmm(low[layer][1], h.to(torch.bfloat16), low[layer][0])
            h = INPLACE_ACTIVATIONS[act](h)
        y = torch.baddbmm(low[-1][1], h.to(torch.bfloat16), low[-1][0])
        if self.config.output_activation == "relu":
            y = y.clamp_min_(low[-1][2])
        return y, low[-1][2]

    def _bf16_weights(self) -> list[tuple[torch.Tensor, ...]]:
        """bfloat16 copies of the layers after the first and of the scaled last layer, the last with the scaled
        zero-density floor; rebuilt when any source buffer moves or changes (device, load_state_dict, in-place
        edits; an ensemble built in inference mode has no version counters, only the moves are seen), built
        outside inference mode so that later calls with gradients can use it."""
        n = len(self.config.hidden)
        sources = [getattr(self, f"{k}{i}") for i in range(1, n) for k in ("w", "b")]
        sources += [self.w_out, self.b_out, self.out_scale, self.out_shift]
        key = tuple((t.device, t.dtype, t.data_ptr(), -1 if t.is_inference() else t._version) for t in sources)
        cache = self.__dict__.get("_bf16_cache")
        if cache is None or cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                cache = (key, self._build_bf16())
            self.__dict__["_bf16_cache"] = cache
        return cache[1]

    def _build_bf16(self) -> list[tuple[torch.Tensor, ...]]:
        bf = torch.bfloat16
        low = [(getattr(self, f"w{i}").to(bf).contiguous(), getattr(self, f"b{i}").to(bf))
               for i in range(len(self.config.hidden))]
        exact = -self.out_shift / self.out_scale
        zero = exact.to(bf)
        zero = torch.where(zero.float() > exact, torch.nextafter(zero, torch.full_like(zero, -float("inf"))), zero)
        w = (self.w_out / self.out_scale).to(bf).contiguous()
        low.append((w, ((self.b_out - self.out_shift) / self.out_scale).to(bf), zero))
        return low

    def _full(self, y: torch.Tensor) -> torch.Tensor:
        """[a+, a-] -> [a+, flip(a+), a-, flip(a-)] by four slice copies (an index gather is ~9x slower)."""
        if not self.config.mirror:
            return y
        q = y.shape[-1] // 2
        out = y.new_empty(*y.shape[:-1], 4 * q)
        plus, minus = y[..., :q], y[..., q:]
        out[..., :q] = plus
        out[..., q:2 * q] = plus.flip(-1)
        out[..., 2 * q:3 * q] = minus
        out[..., 3 * q:] = minus.flip(-1)
        return out

    def forward(self, x: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        return self._full(self.forward_half(x, precision))

    def mean_std(self, x: torch.Tensor, std: bool = True, precision: str = "fp32"
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Ensemble mean and spread (std, ddof 1; None for one member or std=False), (N, n_outputs) each: `moments`
        of the members' outputs. Mirroring commutes with both, so it is applied once to the (N, P) results.

        precision "bf16": the matrix products after the first layer in bfloat16 (fast where the CPU has AMX or
        AVX512-BF16; `benchmarks/inference.py` measures its speed and its error against fp32: the mean's RMS error
        is about 1e-3 M, 1/40 of the shipped model's own error): the moments are taken on outputs in one scaling
        common to the members (sums in fp32), then scaled to molar once. Not for variance-based sensitivity to
        narrow input distributions: there its rounding is noise next to the tiny output changes and shifts Sobol
        indices by ~0.1 (`benchmarks/inference_fewer_flops.py`)."""
        check_precision(precision)
        scaled = precision == "bf16"
        y, floor = self._scaled_bf16(x) if scaled else (self.forward_half(x), None)
        mean, spread = moments(y, std)
        if scaled:
            molar = torch.addcmul(self.out_shift, mean, self.out_scale)
            if self.config.output_activation == "relu":  # every member at the floor: exactly zero density
                molar = molar.masked_fill_(mean <= floor, 0.0).clamp_min_(0.0)
            mean = molar
            spread = spread.mul_(self.out_scale) if spread is not None else None
        return self._full(mean), (self._full(spread) if spread is not None else None)
