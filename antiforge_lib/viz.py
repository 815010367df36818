"""Looking inside a trained detector: the figures of Cao et al. 2021, Fig. 3 and Fig. 5.

- :func:`collect_embeddings` runs a net over a loader once and keeps, per pair, both embeddings ``c_hq``,
  ``c_lq``, their norms ``||c||_2``, the labels and (optionally) attention maps, masks and the images.
- :func:`plot_distance_histogram` -- Fig. 5a: histograms of the distance ``||c||_2`` from the origin, real vs
  fake, for the HQ branch (fed c23) and the LQ branch (fed c40), with the radii ``r-``, ``r+`` and the threshold.
- :func:`embed_2d` and :func:`plot_embedding_2d` -- Fig. 5b: a joint 2-D t-SNE (or UMAP) map of the HQ and LQ
  embeddings, coloured by class, one marker symbol per branch, optionally a line from each LQ point to its HQ twin.
- :func:`plot_attention_gallery` -- Fig. 3: crop, ground-truth mask, HQ and LQ attention maps for true/false
  positives/negatives; :func:`upsample_maps` brings the maps to the crop size.
- :func:`pair_distance` -- ``||c_lq - c_hq||_2`` per pair: how far the LQ embedding sits from its HQ twin (small
  when the pair loss pulls them together).

Everything is computed once by :func:`collect_embeddings`; the plotting functions take its dict (or any dict of
numpy arrays with the same keys) and return a ``plotly.graph_objects.Figure`` that renders in a static page.

Example
-------
>>> emb = collect_embeddings(net, dls.valid, keep_images=True)
>>> plot_distance_histogram(emb).show()
>>> plot_embedding_2d(emb, method="tsne", link_pairs=True).show()
>>> plot_attention_gallery(emb, n_per_kind=2).show()
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from .data.loaders import denormalize
from .metrics import decision_threshold, scores_from_output
from .models import evaluating

__all__ = [
    "collect_embeddings",
    "pair_distance",
    "plot_distance_histogram",
    "embed_2d",
    "plot_embedding_2d",
    "upsample_maps",
    "plot_attention_gallery",
]

BRANCHES = ("hq", "lq")
CLASS_NAMES = {0: "real", 1: "fake"}
CLASS_COLORS = {0: "#1f77b4", 1: "#d62728"}  # blue real, red fake, in every figure
BRANCH_SYMBOLS = {"hq": "circle", "lq": "x"}
MAP_COLORSCALE = "Viridis"


# ---------------------------------------------------------------------------------------------------------------
# Collecting embeddings


def _to_uint8_images(x: torch.Tensor) -> torch.Tensor:
    """Normalised images (B, 3, S, S) -> uint8 RGB (B, S, S, 3), for go.Image."""
    return (denormalize(x.float()) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


def _item_columns(dl, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``method`` and ``video`` of the first ``n`` items served, from ``dl.dataset.items`` (or None, None).

    Like :func:`antiforge_lib.metrics.evaluate`, it trusts the rows only if the loader serves its dataset in order.
    A ``torch.utils.data.Subset`` of a dataset with ``items`` is followed to its rows.
    """
    ds = getattr(dl, "dataset", None)
    indices = None
    if isinstance(ds, torch.utils.data.Subset):
        ds, indices = ds.dataset, list(ds.indices)
    items = getattr(ds, "items", None)
    if not isinstance(items, pd.DataFrame):
        return None, None
    if indices is not None:
        items = items.iloc[indices]
    sampler = getattr(dl, "sampler", None)
    in_order = isinstance(sampler, torch.utils.data.SequentialSampler) or (
        sampler is None and not getattr(dl, "shuffle", True)
    )
    if not in_order or len(items) < n:
        warnings.warn("method/video left out: the loader does not serve its dataset in order", stacklevel=3)
        return None, None
    items = items.iloc[:n]
    return tuple(items[c].astype(str).to_numpy() if c in items.columns else None for c in ("method", "video"))


def collect_embeddings(
    model: torch.nn.Module, dl, max_items: int | None = None, device=None, keep_images: bool = False
) -> dict:
    """Run a net over a loader once and gather, per pair, what the figures of this module need.

    A :class:`~antiforge_lib.models.TwoBranchNet` runs its full forward ``model(hq, lq)``: the HQ image through
    the HQ branch and its LQ twin through the LQ branch, as the paper does for Fig. 5. A
    :class:`~antiforge_lib.models.SingleBranchNet` sees only the LQ image (``model(lq)``), so only the ``*_lq``
    keys (and ``lq``) are returned. The model runs in eval mode under ``torch.inference_mode()``; its mode is
    restored afterwards.

    Parameters
    ----------
    model : nn.Module
        A ``TwoBranchNet`` (has ``forward_lq``) or a ``SingleBranchNet``.
    dl : iterable of batches ``(hq, lq, mask, label)``
        E.g. ``dls.valid`` of :func:`~antiforge_lib.data.pair_dataloaders`. If ``dl.dataset`` (or the dataset of
        a ``Subset``) has ``items`` with ``method`` / ``video`` columns and the loader serves it in order, those
        columns are returned too.
    max_items : int, optional
        Stop after this many pairs (the first ones in loader order). Pair indexes are often sorted by class or
        method, so for a mixed sample build the loader over a random subset instead, e.g.
        ``DataLoader(Subset(ds, np.random.default_rng(0).permutation(len(ds))[:500]), batch_size=64)``.
    device : torch.device or str, optional
        Default: the device of the model's parameters.
    keep_images : bool, default False
        Also keep the images and masks (for :func:`plot_attention_gallery`); ``S * S * 7`` bytes per pair.

    Returns
    -------
    emb : dict
        Numpy arrays, one row per pair, in loader order (``N`` pairs, embedding size ``d``):

        - ``c_hq``, ``c_lq`` : float32 (N, d), embeddings of the HQ and LQ branch;
        - ``norm_hq``, ``norm_lq`` : float32 (N,), ``||c||_2``, the distance from the origin (embedding units);
        - ``score`` : float32 (N,), the detector's score on the LQ input (as in ``metrics.scores_from_output``):
          ``norm_lq`` for metric-learning nets, the fake probability for a cross-entropy net;
        - ``threshold`` : float, the default decision threshold on ``score`` (9.05 for norms, 0.5 for
          probabilities); a face is called fake when ``score > threshold``;
        - ``label`` : int64 (N,), 1 = fake, 0 = real;
        - ``method``, ``video`` : str (N,) from the dataset's ``items``, or None when unknown;
        - ``m_hq``, ``m_lq`` : float32 (N, h, w) attention maps in [0, 1] (feature-map resolution), only if the
          net has attention layers;
        - ``mask`` : uint8 (N, S, S) ground-truth mask in {0, 1}, and ``hq``, ``lq`` : uint8 (N, S, S, 3) RGB
          crops (de-normalised with :func:`~antiforge_lib.data.denormalize`), only with ``keep_images=True``.

        A ``SingleBranchNet`` gives no ``c_hq``, ``norm_hq``, ``m_hq`` nor ``hq``.
    """
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be a positive number of pairs, got {max_items}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    two_branch = hasattr(model, "forward_lq")
    parts: dict[str, list[torch.Tensor]] = {}

    def keep(key, value):
        parts.setdefault(key, []).append(value.detach().cpu())

    n, threshold = 0, decision_threshold(model)
    with evaluating(model):
        for batch in dl:
            if not isinstance(batch, (tuple, list)) or len(batch) != 4:
                raise ValueError("each batch must be (hq, lq, mask, label), as pair_dataloaders yields")
            hq, lq, mask, label = batch
            take = len(label) if max_items is None else min(len(label), max_items - n)
            hq, lq, mask, label = hq[:take], lq[:take], mask[:take], torch.as_tensor(label).reshape(-1)[:take]
            if two_branch:
                out = model(hq.to(device), lq.to(device))
                branches = {"hq": (out.c_hq, out.m_hq), "lq": (out.c_lq, out.m_lq)}
            else:
                out = model(lq.to(device))
                branches = {"lq": (out.c, out.m)}
                threshold = decision_threshold(model, ce=out.logits is not None)
            for b, (c, m) in branches.items():
                keep(f"c_{b}", c.float())
                keep(f"norm_{b}", torch.linalg.vector_norm(c.float(), dim=1))
                if m is not None:
                    keep(f"m_{b}", m[:, 0].float())
                if keep_images:
                    keep(b, _to_uint8_images(hq if b == "hq" else lq))
            keep("score", scores_from_output(out))
            keep("label", label.long())
            if keep_images:
                keep("mask", (mask[:, 0] > 0.5).to(torch.uint8))
            n += take
            if max_items is not None and n >= max_items:
                break

    if n == 0:
        raise ValueError("the loader yielded no batches")
    emb = {key: torch.cat(values).numpy() for key, values in parts.items()}
    emb["method"], emb["video"] = _item_columns(dl, n)
    emb["threshold"] = threshold
    return emb


def pair_distance(emb: Mapping) -> np.ndarray:
    """Distance between the two embeddings of each pair, ``||c_lq - c_hq||_2``, shape (N,), embedding units.

    The pair term of the metric loss (Sec. 3.5) pulls each LQ embedding toward its HQ twin; compare this distance
    (e.g. its median) between runs with the pair term on and off.
    """
    if "c_hq" not in emb or "c_lq" not in emb:
        raise ValueError("pair_distance needs c_hq and c_lq: collect them from a TwoBranchNet")
    return np.linalg.norm(np.asarray(emb["c_lq"], np.float64) - np.asarray(emb["c_hq"], np.float64), axis=1)


def _labels(emb: Mapping, n: int) -> np.ndarray:
    y = np.asarray(emb["label"]).reshape(-1).astype(np.int64)
    if y.shape != (n,) or not np.isin(y, (0, 1)).all():
        raise ValueError(f"emb['label'] must hold {n} labels in {{0, 1}} (1 = fake)")
    return y


def _branches(emb: Mapping, prefix: str) -> list[str]:
    found = [b for b in BRANCHES if f"{prefix}_{b}" in emb]
    if not found:
        raise ValueError(f"emb holds neither {prefix}_hq nor {prefix}_lq; keys: {sorted(emb)}")
    return found


# ---------------------------------------------------------------------------------------------------------------
# Fig. 5a: distances from the origin


def plot_distance_histogram(
    emb: Mapping,
    threshold: float | None = None,
    r_minus: float | None = 0.1,
    r_plus: float | None = 18.0,
    nbins: int = 40,
    levels: tuple[str, str] = ("c23", "c40"),
) -> go.Figure:
    """Fig. 5a: histograms of the distance from the origin ``||c||_2``, real vs fake, one panel per branch.

    The metric loss (eq. 6) pushes reals inside the radius ``r-`` and fakes outside ``r+``; a face is called fake
    when its distance exceeds the threshold. Both classes of a panel share the same bins.

    Parameters
    ----------
    emb : mapping
        The dict of :func:`collect_embeddings`, or any mapping with ``label`` (N,) (1 = fake) and ``norm_hq``
        and/or ``norm_lq`` (N,) (or, instead of a norm, the embeddings ``c_hq`` / ``c_lq`` (N, d)). Plain arrays
        work: ``plot_distance_histogram({"norm_lq": norms, "label": y})`` draws the LQ panel only.
    threshold : float, optional
        Decision threshold, in embedding units; default ``(r_minus + r_plus) / 2`` = 9.05 (Sec. 4.2).
    r_minus, r_plus : float or None
        Radii of the metric loss, drawn as dotted lines; None leaves a line out.
    nbins : int, default 40
        Number of bins over the panel's range.
    levels : (str, str)
        Compression levels fed to the HQ and LQ branch, for the panel titles.

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Histogram`` per (branch, class) present, in the order HQ real, HQ fake, LQ real, LQ fake; each
        trace's ``meta`` is ``{"branch": "hq" | "lq", "label": 0 | 1}``. Vertical lines are layout shapes.
    """
    if threshold is None:
        radii = {"r_minus": r_minus, "r_plus": r_plus}
        threshold = decision_threshold({k: v for k, v in radii.items() if v is not None})
    branches = [b for b in BRANCHES if f"norm_{b}" in emb or f"c_{b}" in emb]
    if not branches:
        raise ValueError(f"emb holds no norm_hq/norm_lq (nor c_hq/c_lq); keys: {sorted(emb)}")
    titles = {"hq": f"HQ branch ({levels[0]} input)", "lq": f"LQ branch ({levels[1]} input)"}
    fig = make_subplots(rows=1, cols=len(branches), subplot_titles=[titles[b] for b in branches])
    fig.update_annotations(yshift=18)  # lift the panel titles above the labels of the vertical lines
    for col, b in enumerate(branches, start=1):
        if f"norm_{b}" in emb:
            norms = np.asarray(emb[f"norm_{b}"], np.float64).reshape(-1)
        else:
            norms = np.linalg.norm(np.asarray(emb[f"c_{b}"], np.float64), axis=1)
        y = _labels(emb, len(norms))
        lo, hi = float(norms.min()), float(norms.max())
        size = (hi - lo) / nbins if hi > lo else 1.0
        for label in (0, 1):
            if not (y == label).any():
                continue
            fig.add_trace(
                go.Histogram(
                    x=norms[y == label],
                    xbins={"start": lo, "end": hi + size, "size": size},
                    name=CLASS_NAMES[label],
                    legendgroup=CLASS_NAMES[label],
                    showlegend=col == 1,
                    marker_color=CLASS_COLORS[label],
                    opacity=0.6,
                    meta={"branch": b, "label": label},
                    hovertemplate=f"{CLASS_NAMES[label]}, {b.upper()}: %{{y}} faces at ‖c‖ = %{{x}}<extra></extra>",
                ),
                row=1,
                col=col,
            )
        for x, dash, text in ((r_minus, "dot", "r−"), (r_plus, "dot", "r+"), (threshold, "dash", "threshold")):
            if x is not None:
                fig.add_vline(
                    x=x,
                    line_dash=dash,
                    line_color="black",
                    line_width=1,
                    row=1,
                    col=col,
                    annotation_text=f"{text} = {x:g}",
                    annotation_position="top",
                )
        fig.update_xaxes(title_text="‖c‖₂, distance from the origin", row=1, col=col)
    fig.update_yaxes(title_text="number of faces", row=1, col=1)
    fig.update_layout(
        barmode="overlay",
        title="Distance of the embeddings from the origin (Fig. 5a)",
        height=400,
        margin={"t": 110},
    )
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Fig. 5b: 2-D map of the embeddings


def embed_2d(features, method: str = "tsne", seed: int = 0, **kw) -> np.ndarray:
    """Project features to 2-D with t-SNE (scikit-learn) or UMAP (umap-learn).

    Parameters
    ----------
    features : array-like of shape (N, d)
        E.g. embeddings ``c``; N >= 3.
    method : {"tsne", "umap"}
        ``"tsne"``: ``sklearn.manifold.TSNE`` (PCA initialisation); its ``perplexity`` (default 30) is clipped to
        ``(N - 1) / 3`` (t-SNE looks at about 3 x perplexity neighbours, and sklearn needs perplexity < N).
        ``"umap"``: ``umap.UMAP``, imported only here (its first fit in a process compiles numba code: tens of
        seconds);
        ``n_neighbors`` (default 15) is clipped to ``N - 1``.
    seed : int, default 0
        ``random_state``; the same seed gives the same map (UMAP then runs single-threaded).
    **kw
        Passed to the estimator, e.g. ``perplexity=50`` or ``min_dist=0.3``.

    Returns
    -------
    xy : ndarray of shape (N, 2), float64
        Coordinates; only distances between nearby points mean something, not the axes.
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2 or len(x) < 3:
        raise ValueError(f"features must have shape (N, d) with N >= 3; got {x.shape}")
    n = len(x)
    if method == "tsne":
        from sklearn.manifold import TSNE

        kw["perplexity"] = min(kw.get("perplexity", 30.0), max((n - 1) / 3, 1.0))
        kw.setdefault("init", "pca")
        return TSNE(n_components=2, random_state=seed, **kw).fit_transform(x).astype(np.float64)
    if method == "umap":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # import-time deprecation noise from numba / umap's dependencies
            import umap

        kw["n_neighbors"] = min(kw.get("n_neighbors", 15), n - 1)
        with warnings.catch_warnings():
            # "n_jobs overridden by setting random_state": expected, a fixed seed needs one thread.
            warnings.filterwarnings("ignore", message=".*n_jobs.*", category=UserWarning)
            return umap.UMAP(n_components=2, random_state=seed, **kw).fit_transform(x).astype(np.float64)
    raise ValueError(f"method must be 'tsne' or 'umap', got {method!r}")


def _hover_names(emb: Mapping, n: int) -> list[str]:
    method, video = emb.get("method"), emb.get("video")
    if video is None:
        return [f"pair {i}" for i in range(n)]
    if method is None:
        return [f"pair {i}: {v}" for i, v in enumerate(video)]
    return [f"pair {i}: {m}/{v}" for i, (m, v) in enumerate(zip(method, video, strict=True))]


def plot_embedding_2d(emb: Mapping, method: str = "tsne", seed: int = 0, link_pairs: bool = False, **kw) -> go.Figure:
    """Fig. 5b: one 2-D map of the HQ and LQ embeddings together, coloured by class, one symbol per branch.

    ``c_hq`` and ``c_lq`` are stacked into one (2N, d) array and embedded jointly by :func:`embed_2d`, so an HQ
    point and an LQ point can be compared on the same map (embedding them separately would give two unrelated
    maps). With ``link_pairs=True`` a thin line joins each LQ point to its HQ twin: short lines mean the LQ
    branch maps a compressed face close to where the HQ branch maps the clean one.

    Parameters
    ----------
    emb : mapping
        The dict of :func:`collect_embeddings` (``c_hq`` and/or ``c_lq`` (N, d), ``label`` (N,); ``method`` and
        ``video`` for the hover text if present). With ``c_lq`` only (a single-branch net) the LQ points alone are
        drawn.
    method : {"tsne", "umap"}
    seed : int, default 0
    link_pairs : bool, default False
        Draw a line from each pair's HQ point to its LQ point (needs both branches).
    **kw
        Passed to :func:`embed_2d` (e.g. ``perplexity``).

    Returns
    -------
    plotly.graph_objects.Figure
        One ``go.Scatter`` of markers per (class, branch) present, named e.g. ``"fake, LQ branch"``, with
        ``meta = {"branch": ..., "label": ...}``. With ``link_pairs`` these come after one line trace named
        ``"HQ–LQ pair"`` (N segments separated by gaps), so the lines are drawn underneath.
    """
    branches = _branches(emb, "c")
    if link_pairs and len(branches) < 2:
        raise ValueError("link_pairs needs both c_hq and c_lq (a TwoBranchNet)")
    feats = [np.asarray(emb[f"c_{b}"], np.float32) for b in branches]
    n = len(feats[0])
    y = _labels(emb, n)
    xy = embed_2d(np.concatenate(feats), method=method, seed=seed, **kw)
    coords = {b: xy[i * n : (i + 1) * n] for i, b in enumerate(branches)}
    names = np.array(_hover_names(emb, n), dtype=object)

    fig = go.Figure()
    if link_pairs:
        hq, lq = coords["hq"], coords["lq"]
        gaps = np.full(n, np.nan)
        fig.add_trace(
            go.Scatter(
                x=np.column_stack([hq[:, 0], lq[:, 0], gaps]).ravel(),
                y=np.column_stack([hq[:, 1], lq[:, 1], gaps]).ravel(),
                mode="lines",
                line={"color": "rgba(120,120,120,0.35)", "width": 1},
                name="HQ–LQ pair",
                hoverinfo="skip",
            )
        )
    for label in (0, 1):
        sel = y == label
        if not sel.any():
            continue
        for b in branches:
            fig.add_trace(
                go.Scatter(
                    x=coords[b][sel, 0],
                    y=coords[b][sel, 1],
                    mode="markers",
                    name=f"{CLASS_NAMES[label]}, {b.upper()} branch",
                    marker={"color": CLASS_COLORS[label], "symbol": BRANCH_SYMBOLS[b], "size": 7, "opacity": 0.75},
                    text=names[sel],
                    hovertemplate="%{text}<extra>%{fullData.name}</extra>",
                    meta={"branch": b, "label": label},
                )
            )
    name = {"tsne": "t-SNE", "umap": "UMAP"}[method]
    fig.update_layout(
        title=f"{name} of the embeddings c, HQ and LQ branch embedded together (Fig. 5b)",
        xaxis_title=f"{name} 1 (axes have no units)",
        yaxis_title=f"{name} 2",
        height=500,
    )
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Fig. 3: attention maps


def upsample_maps(maps, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinearly resize attention maps to the crop size, for display.

    Parameters
    ----------
    maps : array-like of shape (N, h, w) or (N, 1, h, w)
        Values in [0, 1].
    size : int or (H, W)
        Output size in pixels.

    Returns
    -------
    ndarray of shape (N, H, W), float32
        Bilinear interpolation (``align_corners=False``) stays within the range of the input, so still in [0, 1].
    """
    m = torch.as_tensor(np.asarray(maps), dtype=torch.float32)
    if m.dim() == 3:
        m = m.unsqueeze(1)
    if m.dim() != 4 or m.shape[1] != 1:
        raise ValueError(f"maps must have shape (N, h, w) or (N, 1, h, w); got {tuple(m.shape)}")
    size = (size, size) if isinstance(size, int) else tuple(size)
    return F.interpolate(m, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


#: The four kinds of cases of the gallery: key, title, true label, called fake?
KINDS = (
    ("TP", "true positive: fake, detected", 1, True),
    ("TN", "true negative: real, passed", 0, False),
    ("FN", "false negative: fake, missed", 1, False),
    ("FP", "false positive: real, flagged", 0, True),
)


def plot_attention_gallery(emb: Mapping, n_per_kind: int = 1, threshold: float | None = None) -> go.Figure:
    """Fig. 3-style gallery: crop, ground-truth mask, HQ and LQ attention map, for the four kinds of cases.

    A face is called fake when its LQ score exceeds ``threshold`` (the test-time decision, Sec. 4.2). Rows are
    grouped by kind -- true positive (fake, detected), true negative (real, passed), false negative (fake,
    missed), false positive (real, flagged) -- and within a kind the ``n_per_kind`` cases farthest from the
    threshold are shown (the most confident hits and the worst mistakes). A kind without any case gets one row
    saying "no example".

    Parameters
    ----------
    emb : mapping
        The dict of :func:`collect_embeddings` with ``keep_images=True``: ``lq`` uint8 (N, S, S, 3), ``mask``
        (N, S, S), ``m_lq`` (and ``m_hq`` for a two-branch net) (N, h, w), ``label`` (N,), and ``score`` (N,)
        (else ``norm_lq``). Columns whose key is missing are left out; ``m_lq`` or ``m_hq`` is required.
    n_per_kind : int, default 1
        Cases per kind (fewer if the set has fewer).
    threshold : float, optional
        Decision threshold on the score; default ``emb["threshold"]``, else 9.05.

    Returns
    -------
    plotly.graph_objects.Figure
        A grid with one row per case and the columns "LQ crop" (``go.Image``), "mask", "HQ attention",
        "LQ attention" (``go.Heatmap``, colour scale fixed to [0, 1]; maps upsampled to S x S by
        :func:`upsample_maps`). Row titles name the kind; x-axis titles give the case, score and label.
    """
    if not any(k in emb for k in ("m_hq", "m_lq")):
        raise ValueError("the gallery needs attention maps (m_hq / m_lq): the net has no attention layers")
    if n_per_kind < 1:
        raise ValueError(f"n_per_kind must be at least 1, got {n_per_kind}")
    score = np.asarray(emb["score"] if "score" in emb else emb["norm_lq"], np.float64).reshape(-1)
    y = _labels(emb, len(score))
    if threshold is None:
        threshold = float(emb.get("threshold", decision_threshold()))
    called_fake = score > threshold
    columns = [
        (k, t)
        for k, t in (("lq", "LQ crop"), ("mask", "mask"), ("m_hq", "HQ attention"), ("m_lq", "LQ attention"))
        if k in emb
    ]
    size = np.asarray(emb["lq"]).shape[1:3] if "lq" in emb else np.asarray(emb["mask"]).shape[1:3]

    rows = []  # (kind title, pair index or None)
    for _, title, label, fake in KINDS:
        idx = np.flatnonzero((y == label) & (called_fake == fake))
        idx = idx[np.argsort(-np.abs(score[idx] - threshold), kind="stable")][:n_per_kind]
        rows += [(title, int(i)) for i in idx] if len(idx) else [(title, None)]
    maps = {k: upsample_maps(emb[k], size) for k, _ in columns if k.startswith("m_")}
    names = _hover_names(emb, len(score))

    fig = make_subplots(
        rows=len(rows),
        cols=len(columns),
        column_titles=[t for _, t in columns],
        row_titles=[title.split(":")[0] for title, _ in rows],
        horizontal_spacing=0.02,
        vertical_spacing=0.06 / max(1, len(rows) / 4),
    )
    for r, (title, i) in enumerate(rows, start=1):
        if i is None:
            cell = fig.get_subplot(r, 1)  # placed in paper coordinates: the row's axes stay empty and hidden
            fig.add_annotation(
                text=f"no example of a {title}",
                showarrow=False,
                xref="paper",
                yref="paper",
                x=cell.xaxis.domain[0],
                y=sum(cell.yaxis.domain) / 2,
                xanchor="left",
            )
            continue
        for c, (key, _) in enumerate(columns, start=1):
            if key == "lq":
                trace = go.Image(z=np.asarray(emb["lq"][i]), hoverinfo="skip")
            else:
                z = maps[key][i] if key in maps else np.asarray(emb["mask"][i], np.float32)
                trace = go.Heatmap(
                    z=z,
                    zmin=0,
                    zmax=1,
                    colorscale=MAP_COLORSCALE,
                    showscale=not any(isinstance(t, go.Heatmap) for t in fig.data),  # one colour bar
                    colorbar={"title": "value", "len": min(0.5, 1.2 / len(rows)), "x": 1.06, "y": 1, "yanchor": "top"},
                    hovertemplate="M = %{z:.2f}<extra></extra>",
                )
            fig.add_trace(trace, row=r, col=c)
        truth = CLASS_NAMES[int(y[i])]
        fig.update_xaxes(title_text=f"{names[i]} ({truth}), score {score[i]:.3g}", title_font_size=10, row=r, col=1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain", autorange="reversed")
    for r in range(1, len(rows) + 1):
        for c in range(1, len(columns) + 1):
            sub = fig.get_subplot(r, c)
            fig.update_yaxes(scaleanchor=sub.yaxis.anchor, row=r, col=c)
            if rows[r - 1][1] is None:
                fig.update_xaxes(visible=False, row=r, col=c)
                fig.update_yaxes(visible=False, row=r, col=c)
    fig.update_layout(
        title=f"Attention maps by kind of case (Fig. 3); called fake when score > {threshold:g}",
        height=180 * len(rows) + 120,
        width=170 * len(columns) + 220,
        margin={"l": 40, "r": 80},
        plot_bgcolor="white",
    )
    return fig
