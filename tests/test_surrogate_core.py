"""Data converter, network, soft-label loss, training and grid search of the surrogate."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mdsurrogate.dataset import Arrays, load_dataset, split_indices, to_arrays, validate_dataset, z_half_widths
from mdsurrogate.surrogate.losses import MSELoss, SoftLabelLoss, make_loss
from mdsurrogate.surrogate.models import (
    NetworkConfig,
    ProfileNet,
    count_parameters,
    flops_per_profile,
    output_scaling,
    paper_network,
)
from mdsurrogate.surrogate.search import apply_params, grid_points, grid_search
from mdsurrogate.surrogate.training import (
    TrainConfig,
    default_config,
    load_checkpoint,
    member_seeds,
    paper_config,
    predict_arrays,
    split_validation,
    train_network,
)

REF = Path("/work/shared/reference/nanoconfinement_d0415_subset.pk")
needs_ref = pytest.mark.skipif(not REF.exists(), reason="authors' reference pickle not available")


def toy_arrays(n=24, P=8, seed=0) -> Arrays:
    """Smooth toy profiles of the five inputs (within the design ranges)."""
    rng = np.random.default_rng(seed)
    lo = np.array([4.0, 0.1, 0.2, 0.2, -0.02])
    hi = np.array([5.0, 2.0, 0.63, 0.63, -0.01])
    X = lo + rng.random((n, 5)) * (hi - lo)
    k = np.linspace(0, 1, P)
    Y = 0.5 + X[:, 1:2] * (1 + np.sin(3 * k[None, :] * X[:, :1]))  # depends on h and c
    EPS = np.full_like(Y, 0.01)
    return Arrays(X, Y, EPS, np.tile(np.linspace(-2, 2, P // 2), (n, 1)))


@needs_ref
def test_authors_pickle_converter_format_and_error_scale():
    ds = load_dataset(REF)
    validate_dataset(ds)
    assert ds.sizes == {"system": 81, "point": 502}
    assert set(np.unique(ds.h.values)) == {4.0, 4.4, 4.8}
    assert np.all(ds.d_plus.values == 0.415)
    assert len(ds.attrs["source_sha256"]) == 64
    half = z_half_widths(ds)
    assert half[4.4] == pytest.approx(2.209875) and half[4.0] == pytest.approx(2.002375)
    ds2 = load_dataset(REF, error_scale=1 / 2.1)
    np.testing.assert_allclose(ds2.n_plus_err.values * 2.1, ds.n_plus_err.values)
    assert ds2.attrs["error_scale"] == pytest.approx(1 / 2.1)
    a = to_arrays(ds)
    assert a.X.shape == (81, 5) and a.Y.shape == (81, 1004)
    np.testing.assert_array_equal(a.Y[:, 502:], ds.n_minus.values)


def test_validate_dataset_names_missing_variable():
    import xarray as xr

    ds = xr.Dataset({"h": ("system", [4.0])})
    with pytest.raises(ValueError, match="'c'"):
        validate_dataset(ds)


def test_random_split_is_seeded_and_disjoint():
    rows = np.arange(81)
    tr, te = split_indices(rows, 16, seed=3)
    assert len(te) == 16 and len(tr) == 65 and not set(tr) & set(te)
    tr2, te2 = split_indices(rows, 16, seed=3)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(te, split_indices(rows, 16, seed=4)[1])
    with pytest.raises(ValueError, match="n_test"):
        split_indices(np.arange(5), 5, seed=0)
    for bad in (1.0, 1.5, -0.1):  # a fraction must leave both sides non-empty
        with pytest.raises(ValueError, match="n_test"):
            split_indices(rows, bad, seed=0)


def test_validation_split_keeps_replicas_together():
    """Early stopping must not validate on systems the network trains on under another seed."""
    groups = np.repeat(np.arange(20), 3)  # 20 systems x 3 replicas
    tr, va = split_validation(60, 0.2, seed=0, groups=groups)
    assert len(va) == 12 and len(tr) == 48 and not set(groups[tr]) & set(groups[va])
    # without replicas: the seeded row permutation as before (results cached under it stay valid)
    perm = np.random.default_rng([5, 7]).permutation(37)
    tr, va = split_validation(37, 0.2, seed=5)
    np.testing.assert_array_equal(va, np.sort(perm[:7]))
    np.testing.assert_array_equal(tr, split_validation(37, 0.2, 5, groups=np.arange(37) * 10)[0])
    with pytest.raises(ValueError, match="one label per row"):
        split_validation(10, 0.2, 0, groups=np.arange(9))


def test_paper_network_shape_init_and_flops():
    torch.manual_seed(0)
    net = ProfileNet(paper_network())
    linears = [m for m in net.mlp if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(5, 256), (256, 512), (512, 1004)]
    acts = [type(m).__name__ for m in net.mlp if not isinstance(m, torch.nn.Linear)]
    assert acts == ["ReLU", "Dropout", "Sigmoid", "Dropout"]
    w = linears[1].weight.detach().numpy()
    assert w.var() == pytest.approx(2 / (256 + 512), rel=0.05)  # Glorot normal
    assert all(float(l.bias.detach().abs().max()) == 0 for l in linears)
    assert count_parameters(net) == 5 * 256 + 256 + 256 * 512 + 512 + 512 * 1004 + 1004
    assert flops_per_profile(net.config) == 2 * (5 * 256 + 256 * 512 + 512 * 1004)
    net.eval()
    out = net(torch.rand(3, 5)).detach()
    assert out.shape == (3, 1004) and float(out.min()) >= 0.0  # ReLU output


def test_network_config_validation():
    with pytest.raises(ValueError, match="one activation per hidden layer"):
        NetworkConfig(hidden=(64, 64, 64), activations=("relu", "relu"))
    with pytest.raises(ValueError, match="activation"):
        NetworkConfig(hidden=(8,), activations=("bogus",))
    deep = NetworkConfig(hidden=(32, 32, 32), activations=("relu", "tanh", "relu"), dropout=0.0)
    assert NetworkConfig.from_dict(deep.as_dict()) == deep
    assert ProfileNet(deep)(torch.zeros(2, 5)).shape == (2, 1004)


def test_inputs_minmax_scaled_over_design_ranges():
    net = ProfileNet(NetworkConfig(hidden=(4,), activations=("relu",)))
    x = torch.tensor([[4.0, 0.1, 0.2, 0.2, -0.02], [5.0, 2.0, 0.63, 0.63, -0.01]])
    s = net.scale_inputs(x)
    torch.testing.assert_close(s, torch.tensor([[0.0] * 5, [1.0] * 5]))


def test_output_scaling_roundtrip_and_relu_in_physical_units():
    rng = np.random.default_rng(0)
    Y = rng.random((10, 6)) + 1.0
    for kind in ("none", "standard", "global"):
        shift, scale = output_scaling(Y, kind)
        assert np.all(scale > 0)
    shift, scale = output_scaling(Y, "standard")
    np.testing.assert_allclose(((Y - shift) / scale).std(axis=0), 1.0)
    cfg = NetworkConfig(hidden=(4,), activations=("relu",), dropout=0.0, n_outputs=6)
    net = ProfileNet(cfg, y_shift=shift, y_scale=scale)
    with torch.no_grad():
        net.mlp[-1].bias.fill_(-100.0)  # drive every output far negative
    assert float(net(torch.rand(2, 5)).detach().min()) == 0.0
    with pytest.raises(ValueError, match="output_scaling"):
        output_scaling(Y, "bogus")


def test_soft_label_loss_draws_targets_from_normal():
    g = torch.Generator().manual_seed(0)
    loss = SoftLabelLoss(g)
    y = torch.full((20000, 4), 2.0)
    eps = torch.tensor([0.0, 0.1, 0.5, 1.0]).expand(20000, 4)
    Y = loss.soft_labels(y, eps)
    torch.testing.assert_close(Y.mean(0), torch.full((4,), 2.0), atol=0.03, rtol=0)
    torch.testing.assert_close(Y.std(0), torch.tensor([0.0, 0.1, 0.5, 1.0]), atol=0.02, rtol=0)
    # E[L] = MSE + mean(eps^2); a new draw at every call
    y_hat = torch.full((20000, 4), 2.5)
    assert float(loss(y_hat, y, eps)) == pytest.approx(0.25 + np.mean([0, 0.01, 0.25, 1.0]), rel=0.03)
    assert float(loss(y_hat, y, eps)) != float(loss(y_hat, y, eps))
    a = SoftLabelLoss(torch.Generator().manual_seed(5)).soft_labels(y[:3], eps[:3])
    b = SoftLabelLoss(torch.Generator().manual_seed(5)).soft_labels(y[:3], eps[:3])
    torch.testing.assert_close(a, b)
    # zero errors reduce ModNN to BaseNN
    assert float(loss(y_hat, y, torch.zeros_like(y))) == pytest.approx(float(MSELoss()(y_hat, y)))
    assert isinstance(make_loss("mse"), MSELoss)
    with pytest.raises(ValueError, match="loss"):
        make_loss("huber")


def _small_config(**kw) -> TrainConfig:
    net = NetworkConfig(hidden=(32, 32), activations=("relu", "sigmoid"), dropout=0.0, n_outputs=8)
    base = TrainConfig(network=net, loss="soft", lr=3e-3, batch_size=8, max_epochs=300, patience=None,
                       schedule="cosine", output_scaling="standard", eval_every=5, seed=0, device="cpu")
    return replace(base, **kw)


def test_training_learns_is_seeded_and_checkpoints(tmp_path):
    torch.set_num_threads(1)
    data = toy_arrays()
    r = train_network(data, _small_config(), checkpoint_dir=tmp_path, checkpoint_every=100)
    first, last = r.history[0]["val_mse"], r.best_val_mse
    assert last < 0.2 * first
    assert r.best_epoch <= r.epochs_run == 300
    r2 = train_network(data, _small_config())
    assert r2.best_val_mse == pytest.approx(r.best_val_mse, rel=1e-6)  # same seed -> same result
    r3 = train_network(data, _small_config(seed=1))
    assert r3.best_val_mse != pytest.approx(r.best_val_mse, rel=1e-6)
    # checkpoints: best weights reload to the same predictions
    assert (tmp_path / "best.safetensors").exists() and (tmp_path / "last.safetensors").exists()
    model, meta = load_checkpoint(tmp_path, "best")
    assert meta["best_epoch"] == r.best_epoch
    np.testing.assert_allclose(predict_arrays([model], data.X), predict_arrays([r.model], data.X), atol=1e-6)
    # 'last' follows checkpoint_every also when evaluations fall off its multiples (every 7 epochs, checkpoint 100)
    train_network(data, _small_config(eval_every=7), checkpoint_dir=tmp_path / "odd", checkpoint_every=100)
    assert load_checkpoint(tmp_path / "odd", "last")[1]["epoch"] == 210  # saved at 105 and 210 (the next: >= 310)


def test_early_stopping_stops_before_max_epochs():
    data = toy_arrays(n=12)
    r = train_network(data, _small_config(lr=5e-2, max_epochs=5000, patience=20, schedule="constant"))
    assert r.epochs_run < 5000
    assert r.epochs_run - r.best_epoch >= 20


def test_paper_and_default_recipes():
    p = paper_config(max_epochs=100)
    assert (p.lr, p.batch_size, p.patience, p.output_scaling) == (1e-4, 32, None, "none")
    assert p.network.hidden == (256, 512) and p.network.dropout == 0.1
    d = default_config()
    assert d.patience is not None and d.lr > p.lr
    assert TrainConfig.from_dict(d.as_dict()) == d
    assert len(set(member_seeds(0, 5))) == 5 and member_seeds(0, 3) == member_seeds(0, 3)
    with pytest.raises(ValueError, match="lr"):
        replace(d, lr=-1.0)


def test_grid_search_process_pool_ranks_points():
    data = toy_arrays(n=20)
    base = _small_config(max_epochs=40, eval_every=10, schedule="constant")
    grid = {"n1": (8, 32), "lr": (1e-5, 3e-3)}
    assert len(grid_points(grid)) == 4
    res = grid_search(data, base, grid, n_workers=2)
    assert len(res) == 4 and res[0].val_mse <= res[-1].val_mse
    assert res[0].params["lr"] == 3e-3  # a tiny lr cannot win in 40 epochs
    cfg = apply_params(base, {"n1": 16, "n2": 24, "batch_size": 4})
    assert cfg.network.hidden == (16, 24) and cfg.batch_size == 4
    with pytest.raises(ValueError, match="unknown grid"):
        apply_params(base, {"depth": 3})


def test_mirror_network_predicts_symmetric_profiles_with_half_output_layer():
    from mdsurrogate.surrogate.models import symmetrize

    rng = np.random.default_rng(0)
    Y = rng.random((6, 1004))
    shift, scale = output_scaling(Y, "standard")
    cfg = NetworkConfig(hidden=(8, 16), activations=("relu", "sigmoid"), mirror=True)
    net = ProfileNet(cfg, y_shift=symmetrize(shift), y_scale=symmetrize(scale)).eval()
    assert net.mlp[-1].out_features == 502
    assert flops_per_profile(cfg) == 2 * (5 * 8 + 8 * 16 + 16 * 502)
    out = net(torch.rand(3, 5)).detach().numpy()
    np.testing.assert_allclose(out[:, :502], out[:, :502][:, ::-1], rtol=1e-6)
    np.testing.assert_allclose(out[:, 502:], out[:, 502:][:, ::-1], rtol=1e-6)
    assert not np.allclose(out[:, :502], out[:, 502:])
    s = symmetrize(np.arange(8.0))
    np.testing.assert_allclose(s, [1.5, 1.5, 1.5, 1.5, 5.5, 5.5, 5.5, 5.5])
    with pytest.raises(ValueError, match="mirror"):
        NetworkConfig(hidden=(4,), activations=("relu",), mirror=True, n_outputs=10)


@pytest.mark.parametrize("mirror", [False, True])
def test_fast_forward_equals_scaled_forward(mirror):
    from mdsurrogate.surrogate.models import symmetrize

    rng = np.random.default_rng(1)
    Y = rng.random((6, 1004)) * 2
    shift, scale = output_scaling(Y, "standard")
    if mirror:
        shift, scale = symmetrize(shift), symmetrize(scale)
    cfg = NetworkConfig(hidden=(8, 16), activations=("silu", "silu"), mirror=mirror, dropout=0.0)
    net = ProfileNet(cfg, y_shift=shift, y_scale=scale).eval()
    with torch.no_grad():
        net.mlp[-1].bias.normal_(0, 3)  # some outputs negative -> ReLU active
    x = torch.rand(7, 5)
    with torch.no_grad():
        ref = net.forward_scaled(x) * net.y_scale + net.y_shift
        fast = net(x)
    torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-5)
    assert float(fast.min()) == 0.0


def test_stacked_ensemble_equals_members():
    from mdsurrogate.surrogate.models import StackedEnsemble

    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    members = []
    for mirror in (True, True, True):
        Y = rng.random((5, 1004))
        shift, scale = output_scaling(Y, "standard")
        cfg = NetworkConfig(hidden=(8, 16), activations=("silu", "relu"), mirror=mirror, dropout=0.0)
        from mdsurrogate.surrogate.models import symmetrize
        members.append(ProfileNet(cfg, y_shift=symmetrize(shift), y_scale=symmetrize(scale)).eval())
    x = torch.rand(9, 5)
    with torch.no_grad():
        ref = torch.stack([m(x) for m in members])
        got = StackedEnsemble(members)(x)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(predict_arrays(members, x.numpy(), batch_size=4), ref.numpy(), rtol=1e-5, atol=1e-6)
    other = ProfileNet(NetworkConfig(hidden=(4, 4), activations=("relu", "relu")))
    with pytest.raises(ValueError, match="one architecture"):
        StackedEnsemble([members[0], other])


@needs_ref
def test_authors_pickle_keeps_the_authors_keys():
    """The training dataset of an authors' pickle names systems by the authors' own keys (the shipped cards
    list train/test systems by them) and carries the file's hash for the card's provenance."""
    from mdsurrogate.dataset.authors_pickle import load_authors_pickle

    ds = load_dataset(REF)
    raw = load_authors_pickle(REF)
    assert [str(k) for k in ds["key"].values] == sorted(raw)
    assert len(ds.attrs["source_sha256"]) == 64 and ds.attrs["format"] == "authors_pickle"
    k = sorted(raw)[5]
    np.testing.assert_array_equal(ds["n_plus"].values[5], raw[k]["pos"][:, 1])
