"""Figures of a trained surrogate: the training history every saved surrogate carries in its card."""

from __future__ import annotations

from pathlib import Path


def plot_training_history(card: dict, path: str | Path) -> Path | None:
    """Training loss and validation MSE vs epoch of every member (kadupitiya2021 Fig. 3) from the card's
    `training.members[*].history`; writes `path` (PNG) and returns it, or None when the card has no history (a
    surrogate saved before histories were recorded)."""
    import matplotlib  # noqa: PLC0415 - matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - matplotlib

    members = card.get("training", {}).get("members", [])
    if not any(m.get("history") for m in members):
        return None
    loss = card.get("training", {}).get("config", {}).get("loss", "?")
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, m in enumerate(members):
        h = m.get("history") or []
        ep = [r["epoch"] for r in h]
        ax[0].semilogy(ep, [r.get("train_loss", float("nan")) for r in h], lw=1, label=f"member {i}")
        ax[1].semilogy(ep, [r.get("val_mse", float("nan")) for r in h], lw=1, label=f"member {i}")
        if "best_epoch" in m:
            ax[1].axvline(m["best_epoch"], color=f"C{i}", ls=":", lw=0.8)
    ax[0].set(xlabel="epoch", ylabel=f"training loss ({'ModNN soft labels' if loss == 'soft' else 'MSE'}, scaled)",
              title=f"{card.get('name', 'surrogate')}: training")
    ax[1].set(xlabel="epoch", ylabel="validation MSE (M^2)", title="validation (dotted: the epoch kept)")
    ax[1].legend(fontsize=7)
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path
