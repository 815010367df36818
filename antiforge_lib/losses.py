"""The training objective of Cao et al. (2021), eqs. 1-6, as pure functions plus one module.

The total loss (eq. 1) is

    L = L_Dis + lambda_1 * L_Gan + lambda_2 * L_AT

with ``lambda_1 = 0.001``, ``lambda_2 = 1`` and, inside ``L_Dis``, ``lambda_3 = 0.1`` (Sec. 4.2):

- ``L_Dis`` (eq. 6): :func:`metric_loss` on each branch's embedding plus ``lambda_3`` times :func:`pair_loss`;
- ``L_AT`` (eq. 5): :func:`attention_loss` on each branch's attention map plus :func:`attention_transfer_loss`;
- ``L_Gan`` (eq. 2, WGAN-GP): :func:`adversarial_loss` for the heads, :func:`critic_loss` and
  :func:`gradient_penalty` for the critic, which sees :func:`critic_inputs`.

:class:`AntiCompressionLoss` assembles eq. 1 and lets each term be switched off for the ablations.

We follow the paper, not the authors' public code, which has no adversarial training, uses ``r- = 0.01`` and
scales the metric loss by about ``1/B**2``. Where eq. 6 sums over the samples of a batch we take means by default
(``reduction="mean"``), so that no term grows with the batch size ``B``. That is a re-weighting, not just a
rescaling: ``L_Gan`` (eq. 2) is an expectation and the transfer term of eq. 5 has no sum, so a literal reading
weights ``L_Dis`` about ``B`` times more against them than the means do. ``reduction="sum"`` is that literal
reading, for comparison.

Conventions: ``B`` is the batch size; ``is_fake`` holds one label per sample in {0, 1} (1 = fake); embeddings
``c`` are ``(B, d)``; attention maps ``m`` are ``(B, 1, h, w)`` with values in [0, 1] (sigmoid outputs);
ground-truth masks are ``(B, 1, H, W)`` in {0, 1}, all zeros for real faces. Every loss returns a 0-d tensor.

Validation happens at the API boundary, as in scikit-learn. Shapes and dtypes are always checked (free: no data is
read). The checks of VALUES -- labels in {0, 1}, a binary mask, maps in [0, 1] -- read the data, which on a GPU is a
device -> host synchronisation per check, so they run only with ``validate=True`` (the default, for direct calls).
The learners (:mod:`antiforge_lib.learner`) pass ``validate=False``: their loaders make valid labels and masks by
construction and their maps are sigmoid outputs, and a training step must not wait for the host.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "REDUCTIONS",
    "metric_loss",
    "pair_loss",
    "resize_mask",
    "attention_loss",
    "attention_transfer_loss",
    "critic_inputs",
    "critic_loss",
    "gradient_penalty",
    "adversarial_loss",
    "AntiCompressionLoss",
    "PART_NAMES",
]

#: Keys of the ``parts`` dict returned by :class:`AntiCompressionLoss`, in logging order.
PART_NAMES = ("metric_hq", "metric_lq", "pair", "attention_hq", "attention_lq", "transfer", "adversarial", "total")


# ---------------------------------------------------------------------------------------------------------------
# Input checks: messages say what was expected and what arrived.


def _shape(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(x.shape)


def _check_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def _check_float(x, name: str) -> torch.Tensor:
    _check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def _check_embeddings(c, name: str) -> torch.Tensor:
    _check_float(c, name)
    if c.dim() != 2:
        raise ValueError(f"{name} must have shape (B, d), one embedding per row; got shape {_shape(c)}")
    if c.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (shape {_shape(c)}); the mean over zero samples is undefined")
    return c


def _check_labels(is_fake, batch: int, validate: bool = True) -> torch.Tensor:
    """Return ``is_fake`` as a bool tensor of shape (B,); accepts bool, integer or float tensors.

    The values are checked (a host sync) only with ``validate``; without, any value other than 1 reads as real.
    """
    _check_tensor(is_fake, "is_fake")
    if is_fake.dim() == 2 and is_fake.shape[1] == 1:  # a (B, 1) column is a common slip; accept it
        is_fake = is_fake[:, 0]
    if is_fake.dim() != 1 or is_fake.shape[0] != batch:
        raise ValueError(f"is_fake must have shape ({batch},), one label per sample; got shape {_shape(is_fake)}")
    if is_fake.dtype == torch.bool:
        return is_fake
    if validate:
        _check_label_values(is_fake)
    return is_fake == 1


def _check_label_values(is_fake: torch.Tensor) -> None:
    """Labels must be 0 or 1. Reads the values: a device -> host sync on a GPU."""
    if not ((is_fake == 0) | (is_fake == 1)).all():
        bad = is_fake[(is_fake != 0) & (is_fake != 1)].unique()[:5].tolist()
        raise ValueError(f"is_fake must hold labels in {{0, 1}} (1 = fake); found {bad}")


def _check_binary_mask(mask: torch.Tensor) -> None:
    """Mask values must be 0 or 1. Reads the values: a device -> host sync on a GPU."""
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError(
            "mask must be binary, values in {0, 1}; binarize the grey-level mask first "
            "(the paper divides by 255 and thresholds at 0.1, Sec. 4.2)"
        )


def _check_probabilities(m: torch.Tensor, name: str) -> None:
    """Map values must lie in [0, 1] (NaN passes: a diverged run is reported by its loss). A host sync on a GPU."""
    if ((m < 0) | (m > 1)).any():
        raise ValueError(f"{name} must hold probabilities in [0, 1]; pass the sigmoid of the attention logits")


def _check_map(m, name: str) -> torch.Tensor:
    _check_float(m, name)
    if m.dim() != 4 or m.shape[1] != 1:
        hint = " (add the channel axis with .unsqueeze(1))" if m.dim() == 3 else ""
        raise ValueError(f"{name} must have shape (B, 1, h, w){hint}; got shape {_shape(m)}")
    return m


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape; got {_shape(a)} and {_shape(b)}")


def _check_scores(d_a, d_b) -> None:
    _check_float(d_a, "d_a")
    _check_float(d_b, "d_b")
    _check_same_shape(d_a, d_b, "d_a", "d_b")
    if d_a.numel() == 0:
        raise ValueError("d_a and d_b are empty; the critic must score at least one sample")


# ---------------------------------------------------------------------------------------------------------------
# L_Dis, eq. 6


REDUCTIONS = ("mean", "sum")


def _reduce(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def metric_loss(
    c: torch.Tensor,
    is_fake: torch.Tensor,
    r_minus: float = 0.1,
    r_plus: float = 18.0,
    reduction: str = "mean",
    validate: bool = True,
) -> torch.Tensor:
    """Metric loss of one branch (the first two, or last-but-one two, lines of eq. 6).

    Real faces are pulled inside a ball of radius ``r_minus`` around the origin and fake faces pushed beyond
    radius ``r_plus``; each sample pays a hinge::

        real:  max(0, ||c||_2 - r_minus)
        fake:  max(0, r_plus - ||c||_2)

    The paper sums the hinges over the batch (``reduction="sum"``); by default we take their mean, so the loss
    does not grow with the batch size (this re-weights it against the other terms of eq. 1; see the module
    docstring). At test time a face is called fake when ``||c||_2 > (r_minus + r_plus) / 2`` (Sec. 4.2).

    Parameters
    ----------
    c : Tensor of shape (B, d)
        Embeddings ``C_h`` or ``C_l`` (``d = 2048`` in the paper).
    is_fake : Tensor of shape (B,)
        Labels in {0, 1}, 1 = fake (bool, integer or float).
    r_minus, r_plus : float
        Radii in embedding units, ``0 <= r_minus < r_plus`` (paper: 0.1 and 18.0).
    reduction : {"mean", "sum"}, default "mean"
        Mean or sum (eq. 6 as printed) of the hinges over the batch.
    validate : bool, default True
        Check that the labels are 0 or 1 (a host sync on a GPU; the learners skip it, see the module docstring).

    Returns
    -------
    loss : 0-d Tensor
        Mean (or sum of the) hinge over the batch, in embedding-norm units.
    """
    _check_embeddings(c, "c")
    fake = _check_labels(is_fake, c.shape[0], validate).to(c.device)
    if not 0 <= r_minus < r_plus:
        raise ValueError(f"the radii must satisfy 0 <= r_minus < r_plus; got r_minus={r_minus}, r_plus={r_plus}")
    norm = torch.linalg.vector_norm(c, dim=1)
    hinge = torch.where(fake, F.relu(r_plus - norm), F.relu(norm - r_minus))
    return _reduce(hinge, reduction)


def pair_loss(c_hq: torch.Tensor, c_lq: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Distance between paired embeddings, the last line of eq. 6 (weighted by ``lambda_3 = 0.1``).

    ``mean_t ||C_h^t - C_l^t||_2`` -- the plain (not squared) L2 distance of each HQ/LQ pair, as eq. 6 writes it
    (the text calls it an "L2-loss"), averaged over the batch where the paper sums.

    Parameters
    ----------
    c_hq, c_lq : Tensor of shape (B, d)
        Embeddings of the same B faces from the high- and low-quality branch; row t of each is one pair.
    reduction : {"mean", "sum"}, default "mean"
        Mean or sum (eq. 6 as printed) over the pairs.

    Returns
    -------
    loss : 0-d Tensor
        Mean (or summed) pair distance, in embedding-norm units.
    """
    _check_embeddings(c_hq, "c_hq")
    _check_embeddings(c_lq, "c_lq")
    _check_same_shape(c_hq, c_lq, "c_hq", "c_lq")
    return _reduce(torch.linalg.vector_norm(c_hq - c_lq, dim=1), reduction)


# ---------------------------------------------------------------------------------------------------------------
# L_AT, eq. 5


def resize_mask(mask: torch.Tensor, size: int | tuple[int, int], validate: bool = True) -> torch.Tensor:
    """Bring a binary manipulation mask to an attention map's resolution.

    Each output pixel is the fraction of its input window that is manipulated (area average,
    ``F.adaptive_avg_pool2d``, which also handles sizes that do not divide evenly), thresholded at 0.5: an output
    pixel is 1 when at least half of the area it covers is manipulated. The loss (:func:`attention_loss`) and
    the PBCA metric both compare maps against this resized mask.

    Parameters
    ----------
    mask : Tensor of shape (B, 1, H, W)
        Ground-truth mask with values in {0, 1} (bool, integer or float), all zeros for real faces.
    size : int or (h, w)
        Target size, usually ``m.shape[-2:]`` of the attention map.
    validate : bool, default True
        Check that the mask is binary (a host sync on a GPU; the learners skip it).

    Returns
    -------
    mask : float Tensor of shape (B, 1, h, w)
        Values in {0., 1.}; float32 unless ``mask`` was already floating point.
    """
    _check_tensor(mask, "mask")
    if mask.dim() != 4 or mask.shape[1] != 1:
        hint = " (add the channel axis with .unsqueeze(1))" if mask.dim() == 3 else ""
        raise ValueError(f"mask must have shape (B, 1, H, W){hint}; got shape {_shape(mask)}")
    if validate:
        _check_binary_mask(mask)
    size = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be a positive int or a pair (h, w); got {size}")
    mask = mask if mask.is_floating_point() else mask.float()
    if tuple(mask.shape[-2:]) == size:
        return mask
    return (F.adaptive_avg_pool2d(mask, size) >= 0.5).to(mask.dtype)


def attention_loss(m: torch.Tensor, mask: torch.Tensor, validate: bool = True) -> torch.Tensor:
    """Per-pixel binary cross-entropy between an attention map and the mask (first two lines of eq. 5).

    ``-(1/N) sum [M_gt log M + (1 - M_gt) log(1 - M)]`` over the ``N`` pixels of each map, then averaged over the
    batch. Eq. 5 as printed reads ``log(1 - log M)``, a typo for ``log(1 - M)``; we implement the binary
    cross-entropy the text describes ("cross-entropy loss is used for each pixel"), via
    ``F.binary_cross_entropy``, which clamps each log at -100 so a saturated map gives a large but finite loss.

    The mask is first resized to the map's size by :func:`resize_mask` (area average, then threshold at 0.5).
    The cross-entropy is computed in float32 with autocast off, because it is unsafe to autocast on CUDA.

    Parameters
    ----------
    m : Tensor of shape (B, 1, h, w)
        Attention map ``M_H`` or ``M_L``, values in [0, 1] (sigmoid output, not logits).
    mask : Tensor of shape (B, 1, H, W)
        Ground-truth mask ``M_gt`` in {0, 1} at any resolution; all zeros for real faces.
    validate : bool, default True
        Check that ``m`` lies in [0, 1] and ``mask`` is binary (host syncs on a GPU; the learners skip them).

    Returns
    -------
    loss : 0-d float32 Tensor
        Mean cross-entropy per pixel, in nats.
    """
    _check_map(m, "m")
    _check_tensor(mask, "mask")
    if mask.dim() == 4 and mask.shape[0] != m.shape[0]:
        raise ValueError(f"m and mask must hold the same number of samples; got {m.shape[0]} and {mask.shape[0]}")
    if validate:
        _check_probabilities(m, "m")
    target = resize_mask(mask.to(m.device), m.shape[-2:], validate)
    with torch.autocast(device_type=m.device.type, enabled=False):
        m = m.float()
        # A map that went NaN (a diverged run) must give a NaN loss, which the training loop reports as divergence,
        # not torch's "input should be between 0 and 1" error (a device assert on CUDA): score a stand-in, then
        # add 0 * sum(m), which is NaN exactly when m holds a NaN and contributes no gradient otherwise.
        return F.binary_cross_entropy(torch.nan_to_num(m, nan=0.5), target.float()) + 0.0 * m.sum()


def attention_transfer_loss(
    m_hq: torch.Tensor, m_lq: torch.Tensor, detach_hq: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Attention transfer from the HQ to the LQ branch (third line of eq. 5).

    ``|| M_H / ||M_H||_2 - M_L / ||M_L||_2 ||_2`` over each flattened map, averaged over the batch. Only the
    maps' shapes matter, not their scale: proportional maps cost 0, maps with disjoint support cost sqrt(2)
    (the maximum for non-negative maps).

    Each map is divided by ``max(||M||_2, eps)`` (``F.normalize``), so an all-zero map normalises to zero
    instead of NaN and its gradient stays finite. Note that the gradient through the normalisation scales like
    ``1 / ||M||_2``: maps of real faces, driven towards 0 by :func:`attention_loss`, get large gradients here.

    Parameters
    ----------
    m_hq, m_lq : Tensor of shape (B, 1, h, w)
        Attention maps ``M_H`` and ``M_L`` of the same B pairs.
    detach_hq : bool, default True
        Transfer from HQ to LQ, as the paper does ("we transfer attention information from M_H to M_L"): ``m_hq``
        is treated as a fixed target and receives no gradient. ``False`` makes the loss symmetric, pulling both
        maps towards each other.
    eps : float, default 1e-8
        Lower bound on the norm that a map is divided by.

    Returns
    -------
    loss : 0-d Tensor
        Mean distance between normalised maps, in [0, 2] (in [0, sqrt(2)] for non-negative maps).
    """
    _check_map(m_hq, "m_hq")
    _check_map(m_lq, "m_lq")
    _check_same_shape(m_hq, m_lq, "m_hq", "m_lq")
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps}")
    if detach_hq:
        m_hq = m_hq.detach()
    u_hq = F.normalize(m_hq.flatten(1), dim=1, eps=eps)
    u_lq = F.normalize(m_lq.flatten(1), dim=1, eps=eps)
    return torch.linalg.vector_norm(u_hq - u_lq, dim=1).mean()


# ---------------------------------------------------------------------------------------------------------------
# L_Gan, eq. 2, as WGAN-GP


def critic_inputs(v_hq: torch.Tensor, v_lq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two channel orders the critic must tell apart (Sec. 3.3).

    Parameters
    ----------
    v_hq, v_lq : Tensor of shape (B, C, h, w)
        Mid-level features ``V_H`` and ``V_L`` of the same B pairs (Block 7 of Xception in the paper).

    Returns
    -------
    a : Tensor of shape (B, 2C, h, w)
        ``concat(V_H, V_L)`` along channels, "order a".
    b : Tensor of shape (B, 2C, h, w)
        ``concat(V_L, V_H)``, "order b".
    """
    _check_float(v_hq, "v_hq")
    _check_float(v_lq, "v_lq")
    if v_hq.dim() != 4:
        raise ValueError(f"v_hq and v_lq must have shape (B, C, h, w); got {_shape(v_hq)}")
    _check_same_shape(v_hq, v_lq, "v_hq", "v_lq")
    return torch.cat([v_hq, v_lq], dim=1), torch.cat([v_lq, v_hq], dim=1)


def critic_loss(d_a: torch.Tensor, d_b: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss to minimise: ``mean D(b) - mean D(a)``.

    Sign convention: the critic's objective is eq. 2 in its Wasserstein form, ``L_Gan = E[D(a)] - E[D(b)]``,
    which the critic maximises; we return its negative so every loss here is minimised. A critic that scores
    order a higher than order b therefore has a negative critic loss. Add :func:`gradient_penalty` to it, and
    compute ``d_a, d_b`` on detached features so this loss trains the critic only.

    Parameters
    ----------
    d_a, d_b : Tensor of shape (B,) or (B, 1)
        Critic scores (unbounded reals, no sigmoid) of order a and order b from :func:`critic_inputs`.

    Returns
    -------
    loss : 0-d Tensor
    """
    _check_scores(d_a, d_b)
    return d_b.mean() - d_a.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    a: torch.Tensor,
    b: torch.Tensor,
    weight: float = 10.0,
    eps: torch.Tensor | float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al., 2017), the "GP" the paper adopts for eq. 2.

    On random interpolates ``x = eps * a + (1 - eps) * b`` with ``eps ~ U(0, 1)`` drawn once per sample::

        weight * mean_over_batch (||grad_x D(x)||_2 - 1)**2

    The gradient is taken with ``torch.autograd.grad(..., create_graph=True)`` so the penalty itself can be
    back-propagated into the critic's weights. ``a`` and ``b`` are detached: the penalty trains the critic only.
    Per-sample gradients come from differentiating the summed scores, which is exact only if the critic treats
    samples independently -- so no batch normalisation in the critic (use layer/instance norm or none).

    Parameters
    ----------
    critic : callable
        Maps a (B, 2C, h, w) tensor to scores of shape (B,) or (B, 1), e.g. an ``nn.Module``.
    a, b : Tensor of shape (B, 2C, h, w)
        The two orders from :func:`critic_inputs`.
    weight : float, default 10.0
        Penalty weight (the WGAN-GP default; the paper does not give one).
    eps : Tensor of shape (B,) or (B, 1, 1, 1), float, or None
        Interpolation weights in [0, 1]; ``None`` draws them uniformly. Given for tests and reproducibility.
    generator : torch.Generator, optional
        Random source for ``eps`` when it is drawn.

    Returns
    -------
    penalty : 0-d Tensor
    """
    _check_float(a, "a")
    _check_float(b, "b")
    _check_same_shape(a, b, "a", "b")
    if a.dim() < 2 or a.shape[0] == 0:
        raise ValueError(f"a and b must have shape (B, ...) with B >= 1; got {_shape(a)}")
    if not weight >= 0:
        raise ValueError(f"weight must be non-negative; got {weight}")
    batch, bcast = a.shape[0], (a.shape[0],) + (1,) * (a.dim() - 1)
    if eps is None:
        device = generator.device if generator is not None else a.device
        eps = torch.rand(bcast, generator=generator, device=device).to(a)
    else:
        eps = torch.as_tensor(eps, dtype=a.dtype, device=a.device)
        if eps.numel() not in (1, batch):
            raise ValueError(f"eps must be a scalar or hold one weight per sample ({batch}); got {_shape(eps)}")
        if ((eps < 0) | (eps > 1)).any():
            raise ValueError("eps must lie in [0, 1]")
        eps = eps.reshape(-1).expand(batch).reshape(bcast)
    x = (eps * a.detach() + (1 - eps) * b.detach()).requires_grad_(True)
    scores = critic(x)
    if scores.shape not in {(batch,), (batch, 1)}:
        raise ValueError(
            f"the critic must return one score per sample, shape ({batch},) or ({batch}, 1); got {_shape(scores)}"
        )
    (grad,) = torch.autograd.grad(scores, x, grad_outputs=torch.ones_like(scores), create_graph=True)
    return weight * ((torch.linalg.vector_norm(grad.flatten(1), dim=1) - 1) ** 2).mean()


def adversarial_loss(d_a: torch.Tensor, d_b: torch.Tensor) -> torch.Tensor:
    """The heads' adversarial term, ``L_Gan = mean D(a) - mean D(b)``; the negative of :func:`critic_loss`.

    The heads ``E_H^Head, E_L^Head`` minimise eq. 2 while the critic maximises it, so the heads lower the
    critic's score on order a and raise it on order b until the orders cannot be told apart. In training,
    ``lambda_1 * adversarial_loss(D(a), D(b))`` (``lambda_1 = 0.001``) is added to the heads' loss with ``a, b``
    built from the live features so the gradient reaches the heads (the critic's weights are not stepped by this
    loss), while the critic is trained separately with :func:`critic_loss` + :func:`gradient_penalty` on detached
    features.

    Parameters
    ----------
    d_a, d_b : Tensor of shape (B,) or (B, 1)
        Critic scores of order a and order b.

    Returns
    -------
    loss : 0-d Tensor
    """
    _check_scores(d_a, d_b)
    return d_a.mean() - d_b.mean()


# ---------------------------------------------------------------------------------------------------------------
# Eq. 1


class AntiCompressionLoss(nn.Module):
    """The total loss of eq. 1 for the two-branch model, with switches for the ablations.

    ::

        L     = L_Dis + lambda_gan * L_Gan + lambda_at * L_AT                               (eq. 1)
        L_Dis = metric(c_hq) + metric(c_lq) + lambda_pair * pair(c_hq, c_lq)                (eq. 6)
        L_AT  = attention(m_hq) + attention(m_lq) + transfer(m_hq, m_lq)                    (eq. 5)
        L_Gan = adversarial(D(a), D(b))                                                     (eq. 2)

    A term is off when its flag is False or its weight is 0; its part is then reported as 0 and not computed.
    ``use_attention`` switches the two cross-entropy terms and ``use_transfer`` the transfer term; ``lambda_at``
    scales all three.

    Parameters
    ----------
    lambda_gan, lambda_at, lambda_pair : float
        ``lambda_1, lambda_2, lambda_3`` of the paper (0.001, 1, 0.1).
    r_minus, r_plus : float
        Radii of :func:`metric_loss` (0.1, 18.0).
    use_metric, use_pair, use_attention, use_transfer, use_gan : bool
        Switch individual terms on or off.
    detach_hq : bool
        Passed to :func:`attention_transfer_loss`: True transfers HQ -> LQ only.
    reduction : {"mean", "sum"}, default "mean"
        How ``L_Dis`` (the metric and pair terms) reduces over the batch: "sum" is eq. 6 as printed. The other
        terms are means either way (eq. 2 is an expectation, eq. 5's cross-entropy is averaged, its transfer term
        has no sum).
    validate : bool, default True
        Check the values of labels, masks and maps on every call (host syncs on a GPU). The learners build this
        loss with False, so that a training step never waits for the host; shapes are checked either way.
    """

    def __init__(
        self,
        lambda_gan: float = 0.001,
        lambda_at: float = 1.0,
        lambda_pair: float = 0.1,
        r_minus: float = 0.1,
        r_plus: float = 18.0,
        use_metric: bool = True,
        use_pair: bool = True,
        use_attention: bool = True,
        use_transfer: bool = True,
        use_gan: bool = True,
        detach_hq: bool = True,
        reduction: str = "mean",
        validate: bool = True,
    ):
        super().__init__()
        for name, value in (("lambda_gan", lambda_gan), ("lambda_at", lambda_at), ("lambda_pair", lambda_pair)):
            if not value >= 0:
                raise ValueError(f"{name} must be non-negative; got {value}")
        if not 0 <= r_minus < r_plus:
            raise ValueError(f"the radii must satisfy 0 <= r_minus < r_plus; got r_minus={r_minus}, r_plus={r_plus}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.reduction, self.validate = reduction, bool(validate)
        self.lambda_gan, self.lambda_at, self.lambda_pair = lambda_gan, lambda_at, lambda_pair
        self.r_minus, self.r_plus = r_minus, r_plus
        self.use_metric, self.use_pair, self.use_gan = use_metric, use_pair, use_gan
        self.use_attention, self.use_transfer, self.detach_hq = use_attention, use_transfer, detach_hq

    def extra_repr(self) -> str:
        on = [n for n in ("metric", "pair", "attention", "transfer", "gan") if getattr(self, f"use_{n}")]
        return (
            f"lambda_gan={self.lambda_gan}, lambda_at={self.lambda_at}, lambda_pair={self.lambda_pair}, "
            f"r_minus={self.r_minus}, r_plus={self.r_plus}, on={on}, detach_hq={self.detach_hq}, "
            f"reduction={self.reduction!r}"
        )

    def forward(
        self,
        out,
        is_fake: torch.Tensor,
        mask: torch.Tensor | None,
        d_a: torch.Tensor | None = None,
        d_b: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute eq. 1.

        Parameters
        ----------
        out : object
            Model output with attributes ``c_hq, c_lq`` (B, d) and ``m_hq, m_lq`` (B, 1, h, w) or None when the
            model has no attention layer (the attention terms are then skipped).
        is_fake : Tensor of shape (B,)
            Labels in {0, 1}, 1 = fake.
        mask : Tensor of shape (B, 1, H, W) or None
            Ground-truth masks in {0, 1}, zeros for real faces; needed only for the cross-entropy terms.
        d_a, d_b : Tensor of shape (B,) or (B, 1), optional
            Critic scores of the two orders, computed with gradient flowing into the heads. If None, the
            adversarial term is 0.

        Returns
        -------
        total : 0-d Tensor
            The weighted sum, to back-propagate.
        parts : dict of str -> 0-d Tensor
            Detached, unweighted values of each term (keys :data:`PART_NAMES`) plus the weighted "total"; 0 for
            terms that are off.
        """
        for name in ("c_hq", "c_lq", "m_hq", "m_lq"):
            if not hasattr(out, name):
                raise AttributeError(f"out must have attributes c_hq, c_lq, m_hq, m_lq; {name} is missing")
        c_hq, c_lq, m_hq, m_lq = out.c_hq, out.c_lq, out.m_hq, out.m_lq
        _check_embeddings(c_hq, "out.c_hq")
        _check_embeddings(c_lq, "out.c_lq")
        if (m_hq is None) != (m_lq is None):
            raise ValueError("out.m_hq and out.m_lq must both be tensors or both be None")
        if (d_a is None) != (d_b is None):
            raise ValueError("d_a and d_b must both be given or both be None")

        zero = c_lq.new_zeros(())
        parts = dict.fromkeys(PART_NAMES, zero)
        total = zero
        if self.use_metric:
            radii = (self.r_minus, self.r_plus)
            parts["metric_hq"] = metric_loss(c_hq, is_fake, *radii, self.reduction, self.validate)
            parts["metric_lq"] = metric_loss(c_lq, is_fake, *radii, self.reduction, self.validate)
            total = total + parts["metric_hq"] + parts["metric_lq"]
        if self.use_pair and self.lambda_pair > 0:
            parts["pair"] = pair_loss(c_hq, c_lq, self.reduction)
            total = total + self.lambda_pair * parts["pair"]
        if m_hq is not None and self.lambda_at > 0:
            if self.use_attention:
                if mask is None:
                    raise ValueError(
                        "mask is None but the attention terms are on; pass the masks or use_attention=False"
                    )
                parts["attention_hq"] = attention_loss(m_hq, mask, self.validate)
                parts["attention_lq"] = attention_loss(m_lq, mask, self.validate)
                total = total + self.lambda_at * (parts["attention_hq"] + parts["attention_lq"])
            if self.use_transfer:
                parts["transfer"] = attention_transfer_loss(m_hq, m_lq, detach_hq=self.detach_hq)
                total = total + self.lambda_at * parts["transfer"]
        if self.use_gan and self.lambda_gan > 0 and d_a is not None:
            parts["adversarial"] = adversarial_loss(d_a, d_b)
            total = total + self.lambda_gan * parts["adversarial"]
        parts["total"] = total
        return total, {k: v.detach().float() for k, v in parts.items()}
