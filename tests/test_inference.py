"""The fast inference path (StackedEnsemble: batched matmuls, in-place activations, one-pass mean and spread,
mirroring by slice copies) equals the members one by one with torch's mean and std."""

import numpy as np
import pytest
import torch

from mdsurrogate.surrogate import load_surrogate
from mdsurrogate.surrogate.models import NetworkConfig, ProfileNet, StackedEnsemble

#: hidden activations, mirrored output, output activation: the layouts the stacked paths must handle
LAYOUTS = [(("relu", "sigmoid"), False, "relu"), (("tanh", "gelu"), True, "linear"), (("silu", "relu"), True, "relu")]


def reference(members, x):
    """The plain way, in float64: every member's forward, then mean and std (ddof 1) over the members."""
    with torch.inference_mode():
        y = torch.stack([m(x) for m in members]).double()
    return y.mean(0), y.std(0, correction=1)


def small_members(acts, mirror, out, shift_step=0.0, scale_step=0.0, n=3):
    """n random members (eval mode) of a 16-24 network with 40 outputs; member k's output scaling is
    shift linspace(0, 1) + k shift_step, scale 0.5 + k scale_step."""
    cfg = NetworkConfig(hidden=(16, 24), activations=acts, dropout=0.0, output_activation=out, n_outputs=40,
                        mirror=mirror)
    return [ProfileNet(cfg, y_shift=np.linspace(0, 1, 40) + shift_step * k,
                       y_scale=np.full(40, 0.5 + scale_step * k)).eval() for k in range(n)]


def random_inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    lo = np.array([4.0, 0.1, 0.2, 0.2, -0.02])
    hi = np.array([5.0, 2.0, 0.63, 0.63, -0.01])
    return torch.from_numpy((lo + rng.random((n, 5)) * (hi - lo)).astype(np.float32))


def test_shipped_ensemble_mean_and_spread_equal_the_plain_path():
    sur = load_surrogate(None)
    x = random_inputs(700)
    mean_ref, std_ref = reference(sur.members, x)
    with torch.inference_mode():
        mean, std = sur.stacked().mean_std(x)
        full = sur.stacked()(x)
    tol = 1e-5 * float(mean_ref.abs().max())  # float32 rounding of densities up to ~10 M
    np.testing.assert_allclose(mean.numpy(), mean_ref.numpy(), rtol=1e-5, atol=tol)
    np.testing.assert_allclose(std.numpy(), std_ref.numpy(), rtol=1e-3, atol=tol)
    np.testing.assert_allclose(full.double().mean(0).numpy(), mean_ref.numpy(), rtol=1e-5, atol=tol)
    assert float(std_ref.max()) > 1e-3  # the spread is not trivially zero
    # the numpy API path (batches, threads) gives the same
    m2, s2 = sur.predict_mean_std(x.numpy())
    np.testing.assert_allclose(m2, mean_ref.numpy(), rtol=1e-5, atol=tol)
    np.testing.assert_allclose(s2, std_ref.numpy(), rtol=1e-3, atol=tol)


@pytest.mark.parametrize("acts,mirror,out", LAYOUTS)
def test_stacked_equals_members_for_every_activation_and_layout(acts, mirror, out):
    torch.manual_seed(0)
    members = small_members(acts, mirror, out)
    x = random_inputs(33, seed=1)
    mean_ref, std_ref = reference(members, x)
    st = StackedEnsemble(members)
    with torch.inference_mode():
        mean, std = st.mean_std(x)
        y = st(x)
        one, none = StackedEnsemble(members[:1]).mean_std(x)
    np.testing.assert_allclose(mean.numpy(), mean_ref.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std.numpy(), std_ref.numpy(), rtol=1e-4, atol=1e-6)
    with torch.inference_mode():
        np.testing.assert_allclose(y.numpy(), torch.stack([m(x) for m in members]).numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(one.numpy(), members[0](x).numpy(), rtol=1e-5, atol=1e-6)
    assert none is None


def test_bf16_path_stays_within_a_fraction_of_the_model_error_on_the_shipped_ensemble():
    """precision='bf16' (bfloat16 products after the first layer, moments on a common output scaling): close to
    fp32, zero density stays zero, and the numpy API forwards it."""
    sur = load_surrogate(None)
    st = sur.stacked()
    x = random_inputs(2000, seed=5)
    with torch.inference_mode():
        m32, s32 = st.mean_std(x)
        m16, s16 = st.mean_std(x, precision="bf16")
        y32, y16 = st(x), st(x, precision="bf16")
    rms = float((m16 - m32).square().mean().sqrt())
    assert 0 < rms < 3e-3  # measured 8e-4 M; the model's own test error is 0.036 M
    assert float((m16 - m32).abs().max()) < 0.1
    assert float((s16 - s32).square().mean().sqrt()) < 3e-3
    assert float((y16 - y32).square().mean().sqrt()) < 5e-3  # each member's profile too
    zero = m32 == 0  # the wall layer the ions cannot enter
    assert int(zero.sum()) > 0 and float((m16[zero] == 0).float().mean()) > 0.995
    m_api, s_api = sur.predict_mean_std(x.numpy(), precision="bf16")
    np.testing.assert_allclose(m_api, m16.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(s_api, s16.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("acts,mirror,out", LAYOUTS)
def test_bf16_path_with_members_of_different_output_scalings(acts, mirror, out):
    """The members' output scalings differ (each its own training split): the bf16 path moves them onto one
    common scaling exactly, so only bfloat16 rounding separates it from the float64 reference."""
    torch.manual_seed(1)
    members = small_members(acts, mirror, out, shift_step=0.3, scale_step=0.4)
    x = random_inputs(64, seed=2)
    mean_ref, std_ref = reference(members, x)
    st = StackedEnsemble(members)
    with torch.inference_mode():
        mean, std = st.mean_std(x, precision="bf16")
        one, none = StackedEnsemble(members[:1]).mean_std(x, precision="bf16")
        one_ref = members[0](x)
        y16 = st(x, precision="bf16")
        y_ref = torch.stack([m(x) for m in members])
        mean_nostd, no_spread = st.mean_std(x, std=False, precision="bf16")
    scale = float(mean_ref.abs().max())
    np.testing.assert_allclose(mean.numpy(), mean_ref.numpy(), atol=5e-3 * scale)
    np.testing.assert_allclose(std.numpy(), std_ref.numpy(), atol=5e-3 * scale)
    np.testing.assert_allclose(one.numpy(), one_ref.numpy(), atol=5e-3 * scale)
    np.testing.assert_allclose(y16.numpy(), y_ref.numpy(), atol=1e-2 * scale)  # each member on its own scaling
    assert torch.equal(mean_nostd, mean) and none is None and no_spread is None


def _below_zero_members(n_members, hidden=(8,)):
    """Members whose every output lies far below zero density (a ReLU layer the ions cannot enter), with an
    output scaling whose -shift/scale rounds upwards in fp32 and is exact in bfloat16 (the case where a floor
    taken from it would come back as +1 ulp)."""
    cfg = NetworkConfig(hidden=hidden, activations=("silu",) * len(hidden), dropout=0.0, output_activation="relu",
                        n_outputs=8, mirror=False)
    members = []
    for _ in range(n_members):
        m = ProfileNet(cfg, y_shift=np.full(8, 9.765188217163086), y_scale=np.full(8, 2.976057291030884))
        with torch.no_grad():
            m.mlp[-1].bias.fill_(-50.0)
        members.append(m.eval())
    return members


@pytest.mark.parametrize("n_members", [1, 3])
def test_bf16_path_gives_exactly_zero_where_every_member_is_zeroed(n_members):
    members = _below_zero_members(n_members)
    st = StackedEnsemble(members)
    x = random_inputs(16, seed=4)
    with torch.inference_mode():
        assert torch.equal(torch.stack([m(x) for m in members]), torch.zeros(n_members, 16, 8))  # the fp32 truth
        mean, spread = st.mean_std(x, precision="bf16")
        y = st(x, precision="bf16")
    assert torch.equal(mean, torch.zeros_like(mean)) and torch.equal(y, torch.zeros_like(y))
    assert spread is None if n_members == 1 else torch.equal(spread, torch.zeros_like(spread))


def test_bf16_weights_follow_changes_of_the_ensemble():
    """The cached bfloat16 copies are rebuilt after load_state_dict and in-place edits, and the path works with
    gradients after an inference-mode call (the cache holds ordinary tensors)."""
    torch.manual_seed(3)
    cfg = NetworkConfig(hidden=(16, 24), activations=("silu", "silu"), dropout=0.0, output_activation="relu",
                        n_outputs=40, mirror=True)

    def ensemble(shift):
        members = [ProfileNet(cfg, y_shift=np.full(40, shift), y_scale=np.full(40, 0.5)).eval() for _ in range(2)]
        return members, StackedEnsemble(members)
    members_a, st = ensemble(1.0)
    members_b, st_b = ensemble(3.0)
    x = random_inputs(32, seed=6)
    with torch.inference_mode():
        st.mean_std(x, precision="bf16")  # builds the cache on A
    st.load_state_dict(st_b.state_dict())
    with torch.no_grad():
        ref_b = st_b.mean_std(x)[0]
        np.testing.assert_allclose(st.mean_std(x, precision="bf16")[0].numpy(), ref_b.numpy(), atol=0.02)
        st.w_out.mul_(0.0)
        st.b_out.zero_()
        assert torch.equal(st.mean_std(x, precision="bf16")[0], torch.zeros_like(ref_b))  # ReLU(0) everywhere
    xg = x.clone().requires_grad_(True)
    st_b.mean_std(xg, precision="bf16")[0].sum().backward()  # no "inference tensors" error
    assert xg.grad is not None


def test_unknown_precision_is_refused_with_the_allowed_values():
    sur = load_surrogate(None)
    x = random_inputs(4)
    with pytest.raises(ValueError, match=r"precision must be one of \('fp32', 'bf16'\), got 'fp16'"):
        sur.stacked().mean_std(x, precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        sur.predict_mean_std(x.numpy(), precision="float16")
