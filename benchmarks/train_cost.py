"""Training cost at equal test error: the papers' recipe vs our default, same split, one run.

The paper recipe (Adam lr 1e-4, batch 32, raw outputs, fixed epochs; sun2023/kadupitiya2021) is trained for
--paper-epochs; its final test error E (sun2023 eq. 3) is the target. Our default then trains until its test E
reaches the target. Test errors are computed outside the timed region. Prints the wall-time ratio.

    .venv/bin/python benchmarks/train_cost.py [--paper-epochs 15000] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from mdsurrogate.dataset import load_dataset, split_indices, to_arrays
from mdsurrogate.evaluation.metrics import overall_rmse
from mdsurrogate.surrogate.training import default_config, paper_config, predict_arrays, train_network

REF = Path("/work/shared/reference/nanoconfinement_d0415_subset.pk")


def run(train, test, config, target: float | None = None) -> dict:
    curve: list[tuple[float, int, float]] = []

    def callback(epoch, model, t):
        model.eval()
        e = overall_rmse(test.Y, predict_arrays([model], test.X)[0])
        model.train()
        curve.append((t, epoch, e))
        return target is not None and e <= target

    t0 = time.perf_counter()
    r = train_network(train, config, callback=callback)
    wall = time.perf_counter() - t0
    final_e = overall_rmse(test.Y, predict_arrays([r.model], test.X)[0])
    return {"train_time_s": r.train_time_s, "wall_s": wall, "epochs": r.epochs_run, "best_epoch": r.best_epoch,
            "final_test_E": final_e, "curve": curve}


def first_time_reaching(curve, target: float) -> float | None:
    for t, _, e in curve:
        if e <= target:
            return t
    return None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REF)
    p.add_argument("--n-test", type=float, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loss", default="soft", choices=("soft", "mse"))
    p.add_argument("--paper-epochs", type=int, default=15000, help="paper checkpointed at 15000 (sun2023 3.1)")
    p.add_argument("--paper-eval-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    arr = to_arrays(load_dataset(a.data))
    n_test = int(a.n_test) if a.n_test >= 1 else a.n_test
    tr, te = split_indices(np.arange(len(arr)), n_test, seed=a.seed)
    train, test = arr.take(tr), arr.take(te)
    print(f"data {a.data.name}: {len(tr)} train (80/20 train/val inside), {len(te)} test; loss={a.loss}; "
          f"torch threads={a.threads}", flush=True)

    paper = replace(paper_config(max_epochs=a.paper_epochs, loss=a.loss, seed=a.seed),
                    eval_every=a.paper_eval_every, device="cpu")
    rp = run(train, test, paper)
    target = rp["final_test_E"]
    t_paper_reach = first_time_reaching(rp["curve"], target) or rp["train_time_s"]
    print(f"paper recipe : {a.paper_epochs} epochs, Adam 1e-4, batch 32: train time {rp['train_time_s']:.1f} s, "
          f"test E = {target:.4f} M (first reached at {t_paper_reach:.1f} s)", flush=True)

    ours_cfg = replace(default_config(loss=a.loss, seed=a.seed), device="cpu", patience=None)
    ro = run(train, test, ours_cfg, target=target)
    t_ours = first_time_reaching(ro["curve"], target)
    if t_ours is None:
        print(f"our default  : did not reach E = {target:.4f} (final {ro['final_test_E']:.4f} after "
              f"{ro['train_time_s']:.1f} s)")
        ratio = ratio_strict = float("nan")
    else:
        ratio, ratio_strict = rp["train_time_s"] / t_ours, t_paper_reach / t_ours
        ep = next(e for t, e, _ in ro["curve"] if t == t_ours)
        net = ours_cfg.network
        print(f"our default  : {'-'.join(map(str, net.hidden))} {net.activations[0]}, mirror={net.mirror}, Adam "
              f"lr {ours_cfg.lr:g} cosine, batch {ours_cfg.batch_size or 'full'}, outputs "
              f"'{ours_cfg.output_scaling}': reached E <= {target:.4f} at epoch {ep} after {t_ours:.1f} s")
        print(f"time ratio at equal test error: {ratio:.1f}x (vs the paper run's first arrival at its final "
              f"error: {ratio_strict:.1f}x); goal >= 10x")
    if a.json:
        from mdsurrogate.io import write_json_atomic
        from mdsurrogate.provenance import provenance

        write_json_atomic(a.json, {"paper": rp, "ours": ro, "target_E": target, "ratio": ratio,
                                   "ratio_strict": ratio_strict, "args": {k: str(v) for k, v in vars(a).items()},
                                   "provenance": provenance("torch")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
