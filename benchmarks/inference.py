"""Inference speed of a saved surrogate on CPU: single-profile latency and 1e6 profiles, beside the FLOP count.

Goals (issue 4): <= 1 ms per single profile (the papers: 0.1-0.3 s) and 1e6 profiles in <= 30 s on 2 cores;
issue 10: 1e6 profiles with ensemble mean and spread in <= 8 s (fp32, and the bf16 path with its error against
fp32). The 1e6 runs stream batches through the networks
and keep only a running checksum (1e6 x 1004 float32 = 4 GB). Beside the stacked path it times, in the same run,
the plain-GEMM limit (the bare batched matmuls of the same shapes, torch.bmm into preallocated buffers: what no
implementation of these networks can beat) and the previous stacked path (`old_mean_std`, the named baseline),
each as the median of --repeats, and prints the load average.

    .venv/bin/python benchmarks/inference.py [--model DIR] [--threads 2] [--n 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mdsurrogate.surrogate import INFERENCE_BATCH, load_surrogate
from mdsurrogate.surrogate.models import count_parameters, flops_per_profile


def median_time(fn, repeats: int) -> float:
    for _ in range(min(20, repeats)):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def stream(fn, X: np.ndarray, batch: int) -> tuple[float, float]:
    """Time to push X through fn in batches (keeping a checksum only); returns (seconds, checksum)."""
    total = 0.0
    t0 = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(X), batch):
            y = fn(torch.from_numpy(X[i:i + batch]))
            total += float(y[:, ::97].sum())
    return time.perf_counter() - t0, total


def old_mean_std(stacked, x):
    """The stacked path before issue 10 (the baseline): out-of-place activations, mean then the spread member by
    member, mirroring by an index gather."""
    h = ((x - stacked.x_min) / stacked.x_span).expand(stacked.n_members, *x.shape)
    for layer, act in enumerate(stacked.acts):
        h = act(torch.baddbmm(getattr(stacked, f"b{layer}"), h, getattr(stacked, f"w{layer}")))
    y = torch.baddbmm(stacked.b_out, h, stacked.w_out).clamp_min_(0.0)
    mean = y.mean(0)
    acc = (y[0] - mean).square_()
    for k in range(1, stacked.n_members):
        acc.add_((y[k] - mean).square_())
    spread = acc.div_(stacked.n_members - 1).sqrt_()
    if stacked.config.mirror:
        return mean[..., stacked.mirror_index], spread[..., stacked.mirror_index]
    return mean, spread


def gemm_limit(stacked, batch: int, dtype=torch.float32):
    """fn(x) doing only the batched matmuls of one forward pass (same shapes, preallocated operands and outputs);
    with dtype bfloat16 those after the first layer in bfloat16, as the bf16 path."""
    weights = [getattr(stacked, f"w{i}") for i in range(len(stacked.config.hidden))] + [stacked.w_out]
    weights = [w if i == 0 else w.to(dtype) for i, w in enumerate(weights)]
    M = stacked.n_members
    bufs = {}

    def fn(x):
        n = len(x)
        if n not in bufs:
            bufs[n] = [(torch.rand(M, n, w.shape[1]).to(w.dtype), torch.empty(M, n, w.shape[2], dtype=w.dtype))
                       for w in weights]
        for (a, out), w in zip(bufs[n], weights):
            torch.bmm(a, w, out=out)
        return out
    return fn


def sgemm_peak(n: int = 2048, repeats: int = 5, dtype=torch.float32) -> float:
    """This machine's matmul rate (FLOP/s) on one large square product of dtype: the hardware ceiling."""
    a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
    out = torch.empty(n, n, dtype=dtype)
    torch.mm(a, b, out=out)
    t = median_time(lambda: torch.mm(a, b, out=out), repeats)
    return 2 * n**3 / t


def median_stream(fn, X, batch: int, repeats: int) -> float:
    return float(np.median([stream(fn, X, batch)[0] for _ in range(repeats)]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=None, help="saved surrogate (default: the shipped one)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=INFERENCE_BATCH)
    p.add_argument("--repeats", type=int, default=3, help="median of this many runs of each 1e6 timing")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    sur = load_surrogate(a.model)
    members = sur.members
    cfg = members[0].config
    flops = flops_per_profile(cfg)
    print(f"surrogate {sur.name}: {len(members)} members of {cfg.n_inputs}->{'->'.join(map(str, cfg.hidden))}->"
          f"{cfg.n_network_outputs}{' (mirrored to ' + str(cfg.n_outputs) + ')' if cfg.mirror else ''}, "
          f"{count_parameters(members[0]):,} parameters each; torch {torch.__version__}, "
          f"{a.threads} threads")
    print(f"FLOPs per profile: {flops / 1e6:.2f} MFLOP per member, {len(members) * flops / 1e6:.2f} MFLOP for the "
          f"ensemble; 1e6 profiles = {len(members) * flops * 1e6 / 1e12:.2f} TFLOP")

    lo = np.array([r[0] for r in sur.training_ranges.values()])
    hi = np.array([r[1] for r in sur.training_ranges.values()])
    x1 = torch.tensor(lo[None, :] + 0.5 * (hi - lo)[None, :], dtype=torch.float32)
    system = dict(zip(sur.training_ranges, x1[0].tolist()))
    with torch.inference_mode():
        t_net = median_time(lambda: members[0](x1), 2000)
    t_ens = median_time(lambda: sur.predict_array(x1.numpy()), 1000)
    t_api = median_time(lambda: sur.predict(system), 300)
    print(f"single profile: one network {t_net * 1e3:.3f} ms, ensemble of {len(members)} (stacked) "
          f"{t_ens * 1e3:.3f} ms, Surrogate.predict (input checks + xarray Dataset with mean and std) "
          f"{t_api * 1e3:.3f} ms  [goal <= 1 ms; papers 100-300 ms]")

    rng = np.random.default_rng(0)
    X = (lo + rng.random((a.n, 5)) * (hi - lo)).astype(np.float32)
    t1, _ = stream(members[0], X, a.batch)
    print(f"{a.n:,} profiles, one network: {t1:.1f} s ({flops * a.n / t1 / 1e9:.0f} GFLOP/s)  [goal <= 30 s]",
          flush=True)
    if len(members) > 1:
        stacked = sur.stacked()
        tm, _ = stream(lambda x: stacked.mean_std(x, std=False)[0], X, a.batch)
        print(f"{a.n:,} profiles, ensemble mean of {len(members)} (stacked): {tm:.1f} s "
              f"({len(members) * flops * a.n / tm / 1e9:.0f} GFLOP/s)  [goal <= 30 s]", flush=True)
        load0 = os.getloadavg()[0]
        ts = median_stream(lambda x: stacked.mean_std(x, std=True)[1], X, a.batch, a.repeats)
        tg = median_stream(gemm_limit(stacked, a.batch), X, a.batch, a.repeats)
        to = median_stream(lambda x: old_mean_std(stacked, x)[1], X, a.batch, a.repeats)
        peak = sgemm_peak()
        floor = len(members) * flops * a.n / peak
        print(f"sgemm peak of this machine (2048^3 fp32 matmul, {a.threads} threads): {peak / 1e9:.0f} GFLOP/s, so "
              f"the {len(members) * flops * a.n / 1e12:.2f} TFLOP of {a.n:,} ensemble profiles need >= {floor:.1f} s "
              f"in fp32 here (the 8 s goal needs >= {len(members) * flops * a.n / 8 / 1e9:.0f} GFLOP/s)", flush=True)
        print(f"{a.n:,} profiles, ensemble mean and spread: {ts:.1f} s [goal <= 8 s]; plain-GEMM limit (bare "
              f"batched matmuls, same shapes) {tg:.1f} s: ratio {ts / tg:.2f}; old stacked path {to:.1f} s "
              f"({to / ts:.2f}x slower); medians of {a.repeats}, load average {load0:.1f} -> "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
        # the bf16 path (matrix products after the first layer in bfloat16): time, its GEMM limit, its error
        tb = median_stream(lambda x: stacked.mean_std(x, std=True, precision="bf16")[1], X, a.batch, a.repeats)
        tgb = median_stream(gemm_limit(stacked, a.batch, torch.bfloat16), X, a.batch, a.repeats)
        peak_b = sgemm_peak(dtype=torch.bfloat16)
        xe = torch.from_numpy(X[:20_000])
        with torch.inference_mode():
            ref = [torch.cat(t) for t in zip(*(stacked.mean_std(xe[i:i + a.batch]) for i in range(0, len(xe),
                                                                                                  a.batch)))]
            low = [torch.cat(t) for t in zip(*(stacked.mean_std(xe[i:i + a.batch], precision="bf16")
                                               for i in range(0, len(xe), a.batch)))]
        em, es = low[0] - ref[0], low[1] - ref[1]
        model_E = sur.card.get("metrics", {}).get("test_ensemble", {}).get("E", float("nan"))
        print(f"{a.n:,} profiles, ensemble mean and spread, bf16 path (precision='bf16'): {tb:.1f} s [goal <= 8 s]; "
              f"{ts / tb:.2f}x the fp32 path; its plain-GEMM limit (bf16 after the first layer) {tgb:.1f} s: ratio "
              f"{tb / tgb:.2f}; bf16 matmul peak {peak_b / 1e9:.0f} GFLOP/s ({peak_b / peak:.1f}x fp32)", flush=True)
        print(f"bf16 path error against fp32 over {len(xe):,} random design points: mean RMS "
              f"{float(em.square().mean().sqrt()):.1e} M (max {float(em.abs().max()):.1e}), spread RMS "
              f"{float(es.square().mean().sqrt()):.1e} M (max {float(es.abs().max()):.1e}); the model's own test "
              f"error E {model_E:.4f} M, median spread {float(ref[1].median()):.4f} M", flush=True)
        # baseline in the same run: the members one after the other, torch's std, large batches (the plain way)
        nb = min(a.n, 100_000)

        def plain(x):
            y = torch.stack([m(x) for m in members])
            return y.std(0, correction=1)

        tb, _ = stream(plain, X[:nb], 16384)
        tf, _ = stream(lambda x: stacked.mean_std(x, std=True)[1], X[:nb], a.batch)
        print(f"baseline 'members one by one, torch.std, batch 16384' on {nb:,} profiles: {tb:.2f} s; "
              f"stacked + batch {a.batch}: {tf:.2f} s; ratio {tb / tf:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
