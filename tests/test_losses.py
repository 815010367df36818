"""antiforge_lib.losses against hand-computed values and independent references (numpy, closed forms)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from antiforge_lib import losses as L


def _vec(*xs, d=6):
    """A (1, d) embedding whose leading entries are xs (so its norm is known by hand)."""
    c = torch.zeros(1, d, dtype=torch.float64)
    c[0, : len(xs)] = torch.tensor(xs, dtype=torch.float64)
    return c


# ---------------------------------------------------------------------------------------------------------------
# metric_loss (eq. 6)


@pytest.mark.parametrize(
    ("c", "fake", "expected"),
    [
        (_vec(0.03, 0.04), 0, 0.0),  # real, norm 0.05 inside r- = 0.1
        (_vec(3, 4), 0, 5 - 0.1),  # real, norm 5 outside r-
        (_vec(3, 4), 1, 18 - 5),  # fake, norm 5 inside r+ = 18
        (_vec(12, 16), 1, 0.0),  # fake, norm 20 beyond r+
    ],
)
def test_metric_loss_each_hinge_case_by_hand(c, fake, expected):
    got = L.metric_loss(c, torch.tensor([fake]))
    assert got.item() == pytest.approx(expected, abs=1e-12)


def test_metric_loss_is_the_batch_mean_and_accepts_label_dtypes():
    c = torch.cat([_vec(0.03, 0.04), _vec(3, 4), _vec(3, 4), _vec(12, 16)])
    expected = (0 + 4.9 + 13 + 0) / 4
    for labels in ([0, 0, 1, 1], [False, False, True, True], [0.0, 0.0, 1.0, 1.0]):
        assert L.metric_loss(c, torch.tensor(labels)).item() == pytest.approx(expected)
    # The mean, not the paper's sum: repeating the batch leaves the value unchanged.
    assert L.metric_loss(c.repeat(3, 1), torch.tensor([0, 0, 1, 1] * 3)).item() == pytest.approx(expected)
    # Custom radii.
    assert L.metric_loss(_vec(3, 4), torch.tensor([0]), r_minus=1.0, r_plus=2.0).item() == pytest.approx(4.0)
    # reduction="sum" is eq. 6 as printed: the hinges added up, so repeating the batch triples it.
    labels = torch.tensor([0, 0, 1, 1])
    assert L.metric_loss(c, labels, reduction="sum").item() == pytest.approx(0 + 4.9 + 13 + 0)
    assert L.metric_loss(c.repeat(3, 1), labels.repeat(3), reduction="sum").item() == pytest.approx(3 * 17.9)
    with pytest.raises(ValueError, match="reduction"):
        L.metric_loss(c, labels, reduction="max")


def test_metric_loss_zero_when_reals_inside_and_fakes_beyond():
    g = torch.Generator().manual_seed(0)
    d = 16
    direction = F.normalize(torch.randn(8, d, generator=g), dim=1)
    radius = torch.tensor([0.01, 0.05, 0.09, 0.0, 18.5, 30.0, 100.0, 18.01]).unsqueeze(1)
    is_fake = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert L.metric_loss(direction * radius, is_fake).item() == 0.0


def test_metric_loss_gradient_pushes_norm_the_right_way():
    # Real outside r-: gradient = c / ||c||, so a descent step shrinks ||c||.
    c = _vec(3, 4).requires_grad_(True)
    L.metric_loss(c, torch.tensor([0])).backward()
    torch.testing.assert_close(c.grad, _vec(0.6, 0.8))
    assert torch.linalg.vector_norm(c - 0.1 * c.grad) < 5
    # Fake inside r+: the gradient is -c / ||c||, so descent grows ||c||.
    c = _vec(3, 4).requires_grad_(True)
    L.metric_loss(c, torch.tensor([1])).backward()
    torch.testing.assert_close(c.grad, _vec(-0.6, -0.8))
    # Satisfied hinges give no gradient, even at the origin (no NaN from the norm).
    c = torch.zeros(2, 4, requires_grad=True)
    L.metric_loss(c, torch.tensor([0, 0])).backward()
    assert torch.equal(c.grad, torch.zeros(2, 4))


def test_metric_loss_validation_messages():
    c = torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"r_minus < r_plus"):
        L.metric_loss(c, torch.tensor([0, 1, 0]), r_minus=18.0, r_plus=0.1)
    with pytest.raises(ValueError, match=r"\{0, 1\}"):
        L.metric_loss(c, torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        L.metric_loss(c, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\(B, d\)"):
        L.metric_loss(torch.randn(3, 4, 5), torch.tensor([0, 1, 0]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        L.metric_loss(c, [0, 1, 0])


# ---------------------------------------------------------------------------------------------------------------
# pair_loss (eq. 6, last line)


def test_pair_loss_by_hand():
    c_hq = torch.tensor([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    c_lq = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 2.0]])
    assert L.pair_loss(c_hq, c_lq).item() == pytest.approx((5 + 1) / 2)
    assert L.pair_loss(c_hq, c_lq, reduction="sum").item() == pytest.approx(5 + 1)
    assert L.pair_loss(c_hq, c_hq).item() == 0.0
    with pytest.raises(ValueError, match="same shape"):
        L.pair_loss(c_hq, c_lq[:, :2])


# ---------------------------------------------------------------------------------------------------------------
# resize_mask and attention_loss (eq. 5, first two lines)


def test_resize_mask_is_area_average_then_threshold():
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :2] = 1  # a 2x2 block exactly filling the top-left output pixel
    torch.testing.assert_close(L.resize_mask(mask, 2), torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))

    # A 2x2 block straddling all four windows covers 1/4 of each -> all 0. Nearest-neighbour sampling would
    # pick pixel (2, 2) and give a 1 in the corner, so this separates area averaging from it.
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., 1:3, 1:3] = 1
    assert L.resize_mask(mask, (2, 2)).sum().item() == 0.0

    three_quarters = torch.tensor([[[[1, 1], [1, 0]]]], dtype=torch.uint8)
    one_quarter = torch.tensor([[[[0, 0], [1, 0]]]], dtype=torch.bool)
    half = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert L.resize_mask(three_quarters, 1).item() == 1.0
    assert L.resize_mask(one_quarter, 1).item() == 0.0
    assert L.resize_mask(half, 1).item() == 1.0  # the threshold is inclusive: >= 0.5
    assert L.resize_mask(three_quarters, 1).dtype == torch.float32


def test_resize_mask_uneven_sizes_and_validation():
    g = torch.Generator().manual_seed(1)
    mask = (torch.rand(3, 1, 299, 299, generator=g) > 0.5).float()
    out = L.resize_mask(mask, (19, 19))
    assert out.shape == (3, 1, 19, 19)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="binary"):
        L.resize_mask(torch.full((1, 1, 4, 4), 0.3), 2)
    with pytest.raises(ValueError, match=r"unsqueeze\(1\)"):
        L.resize_mask(torch.zeros(1, 4, 4), 2)


def test_attention_loss_matches_bce_and_hand_formula():
    g = torch.Generator().manual_seed(2)
    m = torch.rand(4, 1, 5, 7, generator=g, dtype=torch.float64) * 0.98 + 0.01
    mask = (torch.rand(4, 1, 5, 7, generator=g) > 0.5).double()
    got = L.attention_loss(m, mask)
    torch.testing.assert_close(got, F.binary_cross_entropy(m, mask).float())
    # The intended eq. 5, written out with numpy: -mean[t log m + (1 - t) log(1 - m)].
    mn, t = m.numpy(), mask.numpy()
    ref = -np.mean(t * np.log(mn) + (1 - t) * np.log(1 - mn))
    assert got.item() == pytest.approx(ref, rel=1e-6)


def test_attention_loss_resizes_high_resolution_mask():
    g = torch.Generator().manual_seed(3)
    m = torch.rand(2, 1, 2, 2, generator=g)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, :2, :2] = 1  # sample 0: top-left manipulated
    mask[1, :, :, 1:] = 1  # sample 1: left windows half covered (-> 1, inclusive threshold), right ones full
    mask[1, :, 2:, :2] = 0  # ... except the bottom-left window, now empty
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[1.0, 1.0], [0.0, 1.0]]]])
    torch.testing.assert_close(L.attention_loss(m, mask), F.binary_cross_entropy(m, target))


def test_attention_loss_is_finite_for_saturated_maps_and_low_precision():
    m = torch.tensor([[[[0.0, 1.0]]]])
    mask = torch.tensor([[[[1.0, 0.0]]]])
    assert L.attention_loss(m, mask).item() == pytest.approx(100.0)  # log clamped at -100
    m16 = torch.full((1, 1, 2, 2), 0.5, dtype=torch.bfloat16)
    got = L.attention_loss(m16, torch.zeros(1, 1, 2, 2))
    assert got.dtype == torch.float32 and got.item() == pytest.approx(math.log(2), rel=1e-6)


def test_attention_loss_validation():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.attention_loss(torch.full((1, 1, 2, 2), 2.0), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, 1, h, w\)"):
        L.attention_loss(torch.rand(1, 3, 2, 2), torch.zeros(1, 1, 2, 2))
    with pytest.raises(ValueError, match="same number of samples"):
        L.attention_loss(torch.rand(2, 1, 2, 2), torch.zeros(3, 1, 2, 2))


# ---------------------------------------------------------------------------------------------------------------
# attention_transfer_loss (eq. 5, third line)


def test_transfer_zero_for_proportional_maps_and_matches_numpy():
    g = torch.Generator().manual_seed(4)
    m_hq = torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64)
    assert L.attention_transfer_loss(m_hq, 3 * m_hq).item() == pytest.approx(0.0, abs=1e-7)
    m_lq = torch.rand(3, 1, 6, 6, generator=g, dtype=torch.float64)
    a, b = m_hq.numpy().reshape(3, -1), m_lq.numpy().reshape(3, -1)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    ref = np.linalg.norm(a - b, axis=1).mean()
    assert L.attention_transfer_loss(m_hq, m_lq).item() == pytest.approx(ref, rel=1e-12)


def test_transfer_orthogonal_one_hot_maps_give_sqrt2():
    m_hq = torch.zeros(2, 1, 3, 3)
    m_lq = torch.zeros(2, 1, 3, 3)
    m_hq[:, 0, 0, 0] = 0.7
    m_lq[:, 0, 2, 1] = 0.2
    assert L.attention_transfer_loss(m_hq, m_lq).item() == pytest.approx(math.sqrt(2))


def test_transfer_detach_and_symmetry():
    g = torch.Generator().manual_seed(5)
    a = torch.rand(2, 1, 4, 4, generator=g, requires_grad=True)
    b = torch.rand(2, 1, 4, 4, generator=g, requires_grad=True)
    sym_ab = L.attention_transfer_loss(a, b, detach_hq=False)
    sym_ba = L.attention_transfer_loss(b, a, detach_hq=False)
    assert sym_ab.item() == pytest.approx(sym_ba.item())
    sym_ab.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0

    a.grad = b.grad = None
    L.attention_transfer_loss(a, b).backward()  # default: HQ -> LQ
    assert a.grad is None
    assert b.grad is not None and b.grad.abs().sum() > 0


def test_transfer_finite_for_all_zero_maps():
    for hq_scale in (0.0, 1.0):
        m_hq = (hq_scale * torch.rand(2, 1, 4, 4)).requires_grad_(True)
        m_lq = torch.zeros(2, 1, 4, 4, requires_grad=True)
        loss = L.attention_transfer_loss(m_hq, m_lq, detach_hq=False)
        loss.backward()
        assert torch.isfinite(loss)
        assert torch.isfinite(m_hq.grad).all() and torch.isfinite(m_lq.grad).all()
        # Zero vs zero costs 0; a map vs zero costs ||u - 0|| = 1.
        assert loss.item() == pytest.approx(hq_scale)


# ---------------------------------------------------------------------------------------------------------------
# Adversarial alignment (eq. 2, WGAN-GP)


def test_critic_inputs_orders():
    v_hq = torch.full((2, 3, 4, 4), 1.0)
    v_lq = torch.full((2, 3, 4, 4), 2.0)
    a, b = L.critic_inputs(v_hq, v_lq)
    assert a.shape == b.shape == (2, 6, 4, 4)
    assert torch.equal(a[:, :3], v_hq) and torch.equal(a[:, 3:], v_lq)
    assert torch.equal(b[:, :3], v_lq) and torch.equal(b[:, 3:], v_hq)
    with pytest.raises(ValueError, match="same shape"):
        L.critic_inputs(v_hq, v_lq[:, :2])


def test_critic_and_adversarial_signs():
    d_a = torch.tensor([1.0, 3.0])
    d_b = torch.tensor([[0.0], [0.0]])[:, 0]
    # The critic scores order a higher: it is winning, so its loss is negative.
    assert L.critic_loss(d_a, d_b).item() == pytest.approx(-2.0)
    assert L.adversarial_loss(d_a, d_b).item() == pytest.approx(2.0)
    g = torch.Generator().manual_seed(6)
    for _ in range(3):
        x, y = torch.randn(5, 1, generator=g), torch.randn(5, 1, generator=g)
        assert L.adversarial_loss(x, y).item() == pytest.approx(-L.critic_loss(x, y).item())
    with pytest.raises(ValueError, match="same shape"):
        L.critic_loss(torch.randn(4), torch.randn(3))


def _linear_critic(w):
    return lambda x: x.flatten(1) @ w


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gradient_penalty_linear_critic_closed_form(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)
    w = torch.randn(18, generator=g, dtype=torch.float64) * (seed + 1) / 3
    expected = 10.0 * (torch.linalg.vector_norm(w).item() - 1) ** 2
    got = L.gradient_penalty(_linear_critic(w), a, b, generator=g)
    assert got.item() == pytest.approx(expected, rel=1e-10)
    got = L.gradient_penalty(_linear_critic(w), a, b, weight=2.5, eps=torch.rand(4, generator=g))
    assert got.item() == pytest.approx(expected / 4, rel=1e-10)


def test_gradient_penalty_is_differentiable_in_critic_weights():
    g = torch.Generator().manual_seed(7)
    a = torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, 4, 2, 2, generator=g, dtype=torch.float64)
    w = torch.randn(16, generator=g, dtype=torch.float64, requires_grad=True)
    L.gradient_penalty(_linear_critic(w), a, b).backward()
    n = torch.linalg.vector_norm(w.detach())
    torch.testing.assert_close(w.grad, 10.0 * 2 * (n - 1) * w.detach() / n)
    assert a.grad is None  # the penalty trains the critic only


def test_gradient_penalty_interpolates_between_a_and_b():
    # D(x) = sum x^2 has gradient 2 x, so the penalty reveals where x_hat lies.
    a = torch.full((2, 1, 1, 2), 3.0, dtype=torch.float64)
    b = torch.zeros(2, 1, 1, 2, dtype=torch.float64)
    critic = lambda x: (x**2).flatten(1).sum(1)  # noqa: E731
    eps = torch.tensor([1.0, 0.25], dtype=torch.float64)
    x_hat_norm = torch.tensor([3.0, 0.75]) * math.sqrt(2)  # ||eps * a + (1 - eps) * b||
    expected = 10.0 * ((2 * x_hat_norm - 1) ** 2).mean()
    assert L.gradient_penalty(critic, a, b, eps=eps).item() == pytest.approx(expected.item())
    assert L.gradient_penalty(critic, a, b, eps=eps.reshape(2, 1, 1, 1)).item() == pytest.approx(expected.item())
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.gradient_penalty(critic, a, b, eps=1.5)
    with pytest.raises(ValueError, match="one score per sample"):
        L.gradient_penalty(lambda x: x, a, b)


# ---------------------------------------------------------------------------------------------------------------
# AntiCompressionLoss (eq. 1)


def _batch(seed=8, attention=True):
    g = torch.Generator().manual_seed(seed)
    B, d = 4, 8
    out = SimpleNamespace(
        c_hq=(torch.randn(B, d, generator=g) * 3).requires_grad_(True),
        c_lq=(torch.randn(B, d, generator=g) * 3).requires_grad_(True),
        m_hq=torch.rand(B, 1, 5, 5, generator=g).requires_grad_(True) if attention else None,
        m_lq=torch.rand(B, 1, 5, 5, generator=g).requires_grad_(True) if attention else None,
    )
    is_fake = torch.tensor([0, 1, 0, 1])
    mask = torch.zeros(B, 1, 20, 20)
    mask[1, :, 4:16, 2:18] = 1
    mask[3, :, 8:, :] = 1
    d_a, d_b = torch.randn(B, 1, generator=g), torch.randn(B, 1, generator=g)
    return out, is_fake, mask, d_a, d_b


ALL_OFF = dict(use_metric=False, use_pair=False, use_attention=False, use_transfer=False, use_gan=False)


@pytest.mark.parametrize("term", ["metric", "pair", "attention", "transfer", "gan"])
def test_total_equals_the_single_switched_on_term(term):
    out, is_fake, mask, d_a, d_b = _batch()
    expected = {
        "metric": lambda: L.metric_loss(out.c_hq, is_fake) + L.metric_loss(out.c_lq, is_fake),
        "pair": lambda: L.pair_loss(out.c_hq, out.c_lq),
        "attention": lambda: L.attention_loss(out.m_hq, mask) + L.attention_loss(out.m_lq, mask),
        "transfer": lambda: L.attention_transfer_loss(out.m_hq, out.m_lq),
        "gan": lambda: L.adversarial_loss(d_a, d_b),
    }[term]()
    loss = L.AntiCompressionLoss(lambda_gan=1.0, lambda_at=1.0, lambda_pair=1.0, **{**ALL_OFF, f"use_{term}": True})
    total, parts = loss(out, is_fake, mask, d_a, d_b)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    nonzero = {k for k, v in parts.items() if v.item() != 0}
    names = {"metric": "metric_hq metric_lq", "attention": "attention_hq attention_lq", "gan": "adversarial"}
    assert nonzero == set(names.get(term, term).split()) | {"total"}


def test_zero_weights_switch_terms_off():
    out, is_fake, mask, d_a, d_b = _batch()
    loss = L.AntiCompressionLoss(lambda_gan=0.0, lambda_at=0.0, lambda_pair=0.0, use_metric=False)
    total, parts = loss(out, is_fake, mask, d_a, d_b)
    assert total.item() == 0.0
    assert all(v.item() == 0.0 for v in parts.values())


def test_default_total_matches_hand_assembled_eq1():
    out, is_fake, mask, d_a, d_b = _batch()
    total, parts = L.AntiCompressionLoss()(out, is_fake, mask, d_a, d_b)
    l_dis = L.metric_loss(out.c_hq, is_fake) + L.metric_loss(out.c_lq, is_fake) + 0.1 * L.pair_loss(out.c_hq, out.c_lq)
    l_at = (
        L.attention_loss(out.m_hq, mask)
        + L.attention_loss(out.m_lq, mask)
        + L.attention_transfer_loss(out.m_hq, out.m_lq)
    )
    l_gan = d_a.mean() - d_b.mean()
    expected = l_dis + 0.001 * l_gan + 1.0 * l_at
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == set(L.PART_NAMES)
    assert parts["total"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert all(not v.requires_grad and v.dtype == torch.float32 and v.dim() == 0 for v in parts.values())

    total.backward()
    for name in ("c_hq", "c_lq", "m_hq", "m_lq"):
        assert getattr(out, name).grad is not None, name


def test_transfer_only_leaves_hq_map_without_gradient():
    out, is_fake, mask, _, _ = _batch()
    total, _ = L.AntiCompressionLoss(**{**ALL_OFF, "use_transfer": True})(out, is_fake, mask)
    total.backward()
    assert out.m_hq.grad is None and out.m_lq.grad.abs().sum() > 0


def test_no_attention_maps_and_no_critic_scores_skip_those_terms():
    out, is_fake, _, _, _ = _batch(attention=False)
    total, parts = L.AntiCompressionLoss()(out, is_fake, None)
    for name in ("attention_hq", "attention_lq", "transfer", "adversarial"):
        assert parts[name].item() == 0.0
    expected = (
        L.metric_loss(out.c_hq, is_fake) + L.metric_loss(out.c_lq, is_fake) + 0.1 * L.pair_loss(out.c_hq, out.c_lq)
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_total_loss_validation():
    out, is_fake, mask, d_a, _ = _batch()
    loss = L.AntiCompressionLoss()
    with pytest.raises(ValueError, match="both"):
        loss(out, is_fake, mask, d_a, None)
    with pytest.raises(ValueError, match="mask is None"):
        loss(out, is_fake, None)
    with pytest.raises(AttributeError, match="c_hq"):
        loss(SimpleNamespace(c_lq=out.c_lq, m_hq=None, m_lq=None), is_fake, None)
    with pytest.raises(ValueError, match="non-negative"):
        L.AntiCompressionLoss(lambda_gan=-1.0)
    with pytest.raises(ValueError, match="r_minus < r_plus"):
        L.AntiCompressionLoss(r_minus=20.0)


# ---------------------------------------------------------------------------------------------------------------
# Validation at the API boundary: value checks (host syncs on a GPU) only with validate=True


VALUE_CHECKS = ("_check_label_values", "_check_binary_mask", "_check_probabilities")


def test_direct_calls_check_values_and_validate_false_skips_only_those_checks(monkeypatch):
    c, bad_labels = torch.randn(3, 4), torch.tensor([0, 2, 1])
    grey_mask, wide_map = torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), 2.0)
    with pytest.raises(ValueError, match=r"is_fake must hold labels in \{0, 1\}"):
        L.metric_loss(c, bad_labels)
    with pytest.raises(ValueError, match="mask must be binary"):
        L.resize_mask(grey_mask, 1)
    with pytest.raises(ValueError, match=r"m must hold probabilities in \[0, 1\]"):
        L.attention_loss(wide_map, torch.zeros(1, 1, 2, 2))
    # Without validation the value checks are not called at all; the free shape checks still are.
    calls = []
    for name in VALUE_CHECKS:
        monkeypatch.setattr(L, name, lambda *a, name=name: calls.append(name))
    L.metric_loss(c, bad_labels, validate=False)
    L.resize_mask(grey_mask, 1, validate=False)
    L.attention_loss(torch.rand(1, 1, 2, 2), grey_mask, validate=False)
    assert calls == []
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        L.metric_loss(c, torch.tensor([0, 1]), validate=False)
    L.metric_loss(c, bad_labels)  # and the default still calls them
    assert calls == ["_check_label_values"]


def test_total_loss_without_validation_is_the_same_number():
    out, is_fake, mask, d_a, d_b = _batch()
    checked, _ = L.AntiCompressionLoss()(out, is_fake, mask, d_a, d_b)
    unchecked, _ = L.AntiCompressionLoss(validate=False)(out, is_fake, mask, d_a, d_b)
    assert torch.equal(checked, unchecked)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: device -> host syncs exist only there")
def test_unvalidated_total_loss_does_not_sync_on_cuda():
    out, is_fake, mask, d_a, d_b = _batch()
    out = SimpleNamespace(**{k: v.detach().cuda() for k, v in vars(out).items()})
    is_fake, mask, d_a, d_b = (t.cuda() for t in (is_fake, mask, d_a, d_b))
    loss = L.AntiCompressionLoss(validate=False)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss(out, is_fake, mask, d_a, d_b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(RuntimeError, match="synchroniz"):  # the check can fail: validation does sync
        torch.cuda.set_sync_debug_mode("error")
        try:
            L.AntiCompressionLoss()(out, is_fake, mask, d_a, d_b)
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_sum_reduction_reweights_l_dis_against_the_other_terms():
    """eq. 6 summed over the batch grows with B; the transfer term (no sum in eq. 5) does not."""
    torch.manual_seed(0)
    b = 8
    out = SimpleNamespace(
        c_hq=torch.randn(b, 16), c_lq=torch.randn(b, 16), m_hq=torch.rand(b, 1, 4, 4), m_lq=torch.rand(b, 1, 4, 4)
    )
    is_fake, mask = torch.tensor([0, 1] * (b // 2)), torch.zeros(b, 1, 8, 8)
    _, mean = L.AntiCompressionLoss(use_gan=False)(out, is_fake, mask)
    total, summed = L.AntiCompressionLoss(use_gan=False, reduction="sum")(out, is_fake, mask)
    for name in ("metric_hq", "metric_lq", "pair"):
        assert summed[name].item() == pytest.approx(b * mean[name].item(), rel=1e-5)
    for name in ("attention_hq", "attention_lq", "transfer"):
        assert summed[name].item() == pytest.approx(mean[name].item(), rel=1e-6)
    by_hand = summed["metric_hq"] + summed["metric_lq"] + 0.1 * summed["pair"]
    by_hand = by_hand + summed["attention_hq"] + summed["attention_lq"] + summed["transfer"]
    assert total.item() == pytest.approx(by_hand.item(), rel=1e-6)
    with pytest.raises(ValueError, match="reduction"):
        L.AntiCompressionLoss(reduction="batchmean")
