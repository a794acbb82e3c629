"""Speedup of a surrogate including the cost of its training data (sun2023 eqs. 4, 5, 8, 9, 10).

t_seq: time of one sequential MD run; t_train: average wall time to create one training element (the parallel
MD run); t_p: time of one surrogate prediction. The papers: t_seq ~ 24 h, t_train ~ 3.5 h, t_p ~ 0.1-0.3 s.
"""

from __future__ import annotations


def _positive(**kw: float) -> None:
    for name, value in kw.items():
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def speedup(n_predictions: float, t_seq: float, t_p: float, n_train: float, t_train: float) -> float:
    """S = N_p t_seq / (N_p t_p + N_train t_train) (eq. 4)."""
    _positive(n_predictions=n_predictions, t_seq=t_seq, n_train=n_train, t_train=t_train)
    if t_p < 0:
        raise ValueError(f"t_p must be >= 0, got {t_p}")
    return n_predictions * t_seq / (n_predictions * t_p + n_train * t_train)


def s_hpc(t_seq: float, t_train: float) -> float:
    """S_HPC = t_seq / t_train: the speedup of parallelising the MD run itself."""
    _positive(t_seq=t_seq, t_train=t_train)
    return t_seq / t_train


def speedup_approx(s_hpc_value: float, n_test: float, n_train: float) -> float:
    """S ~ S_HPC (1 + N_test/N_train), eq. 4 with N_p = N_test + N_train and t_p -> 0 (eq. 5)."""
    _positive(s_hpc=s_hpc_value, n_train=n_train)
    return s_hpc_value * (1.0 + n_test / n_train)


def baseline_speedup(s_hpc_value: float, n_total: float, n_train: float) -> float:
    """S_B = S_HPC N_total / N_train (eq. 8)."""
    _positive(s_hpc=s_hpc_value, n_total=n_total, n_train=n_train)
    return s_hpc_value * n_total / n_train


def net_speedup(s_hpc_value: float, n_total: float, n_train: float, f: float) -> float:
    """S' ~ S_HPC 2 N_total / (N_train + f N_total) after halving the step of one input (eq. 9); f in [0, 1]."""
    _positive(s_hpc=s_hpc_value, n_total=n_total, n_train=n_train)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"f (fraction of interpolated systems shown in training) must be in [0, 1], got {f}")
    return s_hpc_value * 2.0 * n_total / (n_train + f * n_total)


def net_speedup_from_baseline(s_b: float, s_hpc_value: float, f: float) -> float:
    """S' = 2 / (1/S_B + f/S_HPC) (eq. 10)."""
    _positive(s_b=s_b, s_hpc=s_hpc_value)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"f must be in [0, 1], got {f}")
    return 2.0 / (1.0 / s_b + f / s_hpc_value)
