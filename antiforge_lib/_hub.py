"""Downloading ImageNet weights through timm, and failing fast without a network (plumbing the book never shows).

timm fetches weights from the Hugging Face hub or a URL. Offline, huggingface_hub retries for about a minute; here a
direct TCP probe of the host answers within seconds, and every download error becomes
:class:`PretrainedWeightsUnavailable`, whose message names the offline alternative (a local state dict).
"""

from __future__ import annotations

import importlib
import os
import socket
from urllib.parse import urlparse

import timm
import torch
from torch import nn

__all__ = ["PretrainedWeightsUnavailable", "create_pretrained"]

_PROBE_TIMEOUT_S = 5.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _weights_source(backbone: str) -> tuple[str | None, bool]:
    """Host timm downloads ``backbone``'s pretrained weights from, and whether they are cached already.

    timm prefers the Hugging Face hub when the model has a hub id, else its URL (torch.hub cache).
    """
    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None:
        return None, False
    if cfg.hf_hub_id:
        from huggingface_hub import constants

        return urlparse(constants.ENDPOINT).hostname, False  # the hub's cache needs HF_HUB_OFFLINE=1 offline
    if cfg.url:
        url = urlparse(cfg.url)
        cached = os.path.exists(os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url.path)))
        return url.hostname, cached
    return None, False


def _host_reachable(host: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to ``host:443`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class PretrainedWeightsUnavailable(RuntimeError):
    """``pretrained=True`` but the ImageNet weights could not be downloaded; the message says what to do."""


def _offline_message(backbone: str, host: str | None) -> str:
    where = f" from {host}" if host else ""
    hint = " If they are in the Hugging Face cache already, set HF_HUB_OFFLINE=1." if host == "huggingface.co" else ""
    return (
        f"Could not download the ImageNet weights of {backbone!r}{where}: no network? Offline, pass "
        f"weights='path/to/{backbone}.pth' (and pretrained=False): a state dict saved where the network works, with "
        f"torch.save(timm.create_model({backbone!r}, pretrained=True).state_dict(), '{backbone}.pth').{hint}"
    )


def create_pretrained(backbone: str) -> nn.Module:
    """timm model with ImageNet weights; fails within seconds, with a clear message, when offline."""
    host, cached = _weights_source(backbone)
    # huggingface_hub retries an unreachable host for about a minute, and its timeouts are read at import time,
    # so probe the host ourselves first. Behind a proxy a direct probe proves nothing, and cached weights or
    # HF_HUB_OFFLINE need no network: leave those cases to timm.
    offline_ok = cached or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    probe = host is not None and not offline_ok and not any(os.environ.get(v) for v in _PROXY_VARS)
    if probe and not _host_reachable(host):
        raise PretrainedWeightsUnavailable(_offline_message(backbone, host))
    download_errors: tuple[type[BaseException], ...] = (OSError,)  # URLError, ConnectionError, hub errors
    for transport in ("httpx", "httpx2"):  # huggingface_hub's transports (by version); their errors are not OSErrors
        try:
            download_errors += (importlib.import_module(transport).HTTPError,)
        except (ImportError, AttributeError):
            pass
    try:
        return timm.create_model(backbone, pretrained=True, num_classes=0)
    except download_errors as err:
        raise PretrainedWeightsUnavailable(_offline_message(backbone, host)) from err
