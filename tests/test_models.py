"""TwoBranchNet, SingleBranchNet and Discriminator, checked against timm's own models (no network)."""

import importlib
import importlib.util
import socket
import time
import urllib.error

import numpy as np
import pytest
import timm
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from torch import nn

from antiforge_lib import _hub
from antiforge_lib.models import (
    MODELS,
    BranchOutput,
    Discriminator,
    HighPass,
    SingleBranchNet,
    TwoBranchNet,
    TwoBranchOutput,
    create_model,
    model_kind,
    param_counts,
    splitter,
)

XCEPTION_HEAD = ["conv1", "bn1", "act1", "conv2", "bn2", "act2"] + [f"block{i}" for i in range(1, 8)]


@pytest.fixture(scope="module")
def xception():
    torch.manual_seed(0)
    return TwoBranchNet("legacy_xception", cut="block8").eval()


@pytest.fixture(scope="module")
def xception_ref():
    """timm's model with non-trivial BatchNorm statistics, so equal outputs mean equal computations."""
    torch.manual_seed(1)
    ref = timm.create_model("legacy_xception", pretrained=False, num_classes=0)
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return ref.eval()


def _stage_output(model, stage, x):
    """Output of ``model.<stage>`` during timm's own forward (stops there to save time)."""

    class Stop(Exception):
        pass

    seen = {}

    def hook(module, args, out):
        seen["out"] = out
        raise Stop

    handle = getattr(model, stage).register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(x)
    except Stop:
        pass
    finally:
        handle.remove()
    return seen["out"]


def _sub_state(state, names):
    return {k: v for k, v in state.items() if k.split(".")[0] in names}


def _resnet18(**kw):
    torch.manual_seed(0)
    return TwoBranchNet("resnet18", cut="layer4", **kw)


# ------------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize("size", [299, 128])
def test_xception_shapes_follow_timm(xception, xception_ref, size):
    b = 1 if size == 299 else 2
    x = torch.randn(b, 3, size, size)
    v_ref = _stage_output(xception_ref, "block7", x)  # timm's own block7 output
    with torch.no_grad():
        out = xception(x, x) if size == 128 else xception.forward_lq(x)
    h, w = v_ref.shape[-2:]
    assert (h, w) == {299: (19, 19), 128: (8, 8)}[size]
    assert xception.feature_channels == v_ref.shape[1] == 728
    assert xception.embed_dim == xception_ref.num_features == 2048
    if size == 299:  # one branch only at 299: the same modules, a third of the CPU time
        assert isinstance(out, BranchOutput) and out.logits is None
        assert out.c.shape == (b, 2048) and out.m.shape == (b, 1, h, w) and out.v.shape == (b, 728, h, w)
    else:
        assert isinstance(out, TwoBranchOutput)
        for c, m, v in [(out.c_hq, out.m_hq, out.v_hq), (out.c_lq, out.m_lq, out.v_lq)]:
            assert c.shape == (b, 2048) and m.shape == (b, 1, h, w) and v.shape == (b, 728, h, w)


def test_resnet18_shapes_follow_timm():
    net = _resnet18()
    ref = timm.create_model("resnet18", num_classes=0).eval()
    x = torch.randn(2, 3, 64, 64)
    layer3 = ref.forward_intermediates(x, indices=[3], intermediates_only=True)[0]  # feature_info[3] = layer3
    out = net(x, x)
    assert net.feature_channels == layer3.shape[1] == 256 and net.embed_dim == ref.num_features == 512
    assert out.v_hq.shape == out.v_lq.shape == layer3.shape == (2, 256, 4, 4)
    assert out.m_hq.shape == out.m_lq.shape == (2, 1, 4, 4)
    assert out.c_hq.shape == out.c_lq.shape == (2, 512)


# ------------------------------------------------------------------------------------------------ faithfulness


def test_split_reproduces_timm_model(xception_ref):
    net = TwoBranchNet("legacy_xception", cut="block8", attention=False).eval()
    state = xception_ref.state_dict()
    net.head_hq.load_state_dict(_sub_state(state, XCEPTION_HEAD))
    net.tail.load_state_dict(_sub_state(state, [n for n, _ in xception_ref.named_children() if n not in XCEPTION_HEAD]))
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        out = net(x, x)
        expected = xception_ref(x)
        assert torch.allclose(out.v_hq, _stage_output(xception_ref, "block7", x), atol=1e-5)
        assert torch.allclose(out.c_hq, expected, atol=1e-5)
        assert out.m_hq is None and out.m_lq is None
        assert torch.allclose(out.c_lq, net.tail(out.v_lq), atol=1e-6)  # no attention: C = tail(V)
    # head_lq kept its own (untouched) weights, so it must disagree with the loaded reference
    assert not torch.allclose(out.c_lq, expected, atol=1e-3)


def test_attention_masks_features_before_tail():
    net = _resnet18().eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = net(x, torch.flip(x, dims=[-1]))
        for c, m, v in [(out.c_hq, out.m_hq, out.v_hq), (out.c_lq, out.m_lq, out.v_lq)]:
            assert m.min() >= 0 and m.max() <= 1
            assert torch.allclose(c, net.tail(v * m), atol=1e-6)  # eq. 3/4, V returned before masking
            assert not torch.allclose(c, net.tail(v), atol=1e-3)
        assert isinstance(net.attention_hq[0], nn.Conv2d) and isinstance(net.attention_hq[1], nn.Sigmoid)
        assert net.attention_hq is not net.attention_lq
        lq = net.forward_lq(torch.flip(x, dims=[-1]))
        assert torch.allclose(lq.c, out.c_lq) and torch.allclose(lq.m, out.m_lq) and torch.allclose(lq.v, out.v_lq)


# ------------------------------------------------------------------------------------------------ sharing, gradients


def _grads(module):
    return [p.grad for p in module.parameters()]


def test_tail_shared_heads_separate():
    net = _resnet18()
    hq_params, lq_params = list(net.head_hq.parameters()), list(net.head_lq.parameters())
    assert len(hq_params) == len(lq_params) > 0
    for p, q in zip(hq_params, lq_params, strict=True):
        assert p is not q and p.data_ptr() != q.data_ptr()
        assert torch.equal(p, q)  # both start from the same backbone weights
    # the tail is registered once: its parameters appear once in the model
    tail_ids = {id(p) for p in net.tail.parameters()}
    assert sum(id(p) in tail_ids for p in net.parameters()) == len(tail_ids)

    x_hq, x_lq = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    tail_grads = {}
    for used, unused in [("hq", "lq"), ("lq", "hq")]:
        net.zero_grad(set_to_none=True)
        getattr(net(x_hq, x_lq), f"c_{used}").pow(2).sum().backward()
        assert all(g is not None for g in _grads(getattr(net, f"head_{used}")))
        assert all(g is not None for g in _grads(getattr(net, f"attention_{used}")))
        assert all(g is None for g in _grads(getattr(net, f"head_{unused}")))
        assert all(g is None for g in _grads(getattr(net, f"attention_{unused}")))
        grads = _grads(net.tail)
        assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
        tail_grads[used] = [g.clone() for g in grads]
    # one shared tail: a loss on both embeddings gives it the sum of both branches' gradients
    net.zero_grad(set_to_none=True)
    out = net(x_hq, x_lq)
    (out.c_hq.pow(2).sum() + out.c_lq.pow(2).sum()).backward()
    for g, g_hq, g_lq in zip(_grads(net.tail), tail_grads["hq"], tail_grads["lq"], strict=True):
        assert torch.allclose(g, g_hq + g_lq, rtol=1e-4, atol=1e-6)


def test_splitter_groups_heads_and_tail():
    net = _resnet18()
    front, back = splitter(net)
    ids = lambda ps: {id(p) for p in ps}  # noqa: E731
    assert ids(front) == ids(net.head_hq.parameters()) | ids(net.head_lq.parameters()) | ids(
        net.attention_hq.parameters()
    ) | ids(net.attention_lq.parameters())
    assert ids(back) == ids(net.tail.parameters())
    assert len(front) + len(back) == len(list(net.parameters()))


# ------------------------------------------------------------------------------------------------ single branch


def test_single_branch():
    torch.manual_seed(0)
    ce = SingleBranchNet("resnet18", cut="layer4", head="ce", attention=True).eval()
    metric = SingleBranchNet("resnet18", cut="layer4", head="metric")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = ce(x)
        assert isinstance(out, BranchOutput)
        assert out.c.shape == (2, 512) and out.logits.shape == (2, 2) and out.m.shape == (2, 1, 4, 4)
        assert torch.allclose(out.logits, ce.classifier(out.c)) and torch.allclose(out.c, ce.tail(out.v * out.m))
        plain = metric(x)
    assert plain.logits is None and plain.m is None and plain.v.shape == (2, 256, 4, 4)
    counts = param_counts(ce)
    assert counts["head"] == param_counts(_resnet18())["head_hq"]
    assert counts["classifier"] == 512 * 2 + 2 and param_counts(metric)["classifier"] == 0
    with pytest.raises(ValueError, match="'metric' or 'ce'"):
        SingleBranchNet("resnet18", cut="layer4", head="softmax")


def test_factory_speaks_the_one_model_vocabulary():
    for kind in MODELS:
        net = create_model(kind, backbone="resnet18", cut="layer4")
        assert model_kind(net) == kind, kind
        assert isinstance(net, TwoBranchNet if kind == "two-branch" else SingleBranchNet)
    with pytest.raises(ValueError, match="two-branch"):
        create_model("three-branch")
    # the spellings before MODELS still build the same nets, with a warning
    with pytest.warns(FutureWarning, match="two-branch"):
        assert isinstance(create_model("two_branch", backbone="resnet18", cut="layer4"), TwoBranchNet)
    with pytest.warns(FutureWarning, match="single-ce"):
        assert model_kind(create_model("single_branch", backbone="resnet18", cut="layer4", head="ce")) == "single-ce"


def test_split_is_the_old_name_of_cut():
    with pytest.warns(FutureWarning, match="pass cut='layer4'"):
        old = TwoBranchNet("resnet18", split="layer4")
    new = TwoBranchNet("resnet18", cut="layer4")
    assert old.cut == new.cut == "layer4"
    assert [n for n, _ in old.head_hq.named_children()] == [n for n, _ in new.head_hq.named_children()]


# ------------------------------------------------------------------------------------------------ discriminator


def test_discriminator():
    torch.manual_seed(0)
    c = 728
    disc = Discriminator(2 * c)
    first = next(m for m in disc.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert isinstance(first, nn.Conv2d) and first.kernel_size == (1, 1) and first.in_channels == 2 * c
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in disc.modules())

    v_hq, v_lq = torch.randn(3, c, 8, 8), torch.randn(3, c, 8, 8)
    x = torch.cat([v_hq, v_lq], dim=1)
    score = disc(x)
    assert score.shape == (3,)
    # per-sample scores (what the gradient penalty needs): changing sample 2 leaves samples 0 and 1 alone
    x2 = x.clone()
    x2[2] = torch.randn_like(x2[2])
    assert torch.allclose(disc(x2)[:2], score[:2], atol=1e-6)
    # the WGAN-GP gradient penalty is computable
    mix = torch.lerp(x, torch.cat([v_lq, v_hq], dim=1), 0.3).requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(mix).sum(), mix, create_graph=True)
    assert grad.shape == mix.shape and torch.isfinite(grad).all()
    with pytest.raises(ValueError, match="1456"):
        disc(v_hq)


# ------------------------------------------------------------------------------------------------ parameter counts


def test_param_counts_match_timm(xception, xception_ref):
    counts = param_counts(xception)
    head = sum(p.numel() for n in XCEPTION_HEAD for p in getattr(xception_ref, n).parameters())
    tail = sum(p.numel() for n, m in xception_ref.named_children() if n not in XCEPTION_HEAD for p in m.parameters())
    assert head + tail == sum(p.numel() for p in xception_ref.parameters())
    assert counts["head_hq"] == counts["head_lq"] == head
    assert counts["tail"] == tail
    assert counts["attention_hq"] == counts["attention_lq"] == 728 * 3 * 3 + 1
    assert counts["total"] == 2 * head + tail + 2 * counts["attention_hq"]  # the shared tail counts once
    no_att = param_counts(_resnet18(attention=False))
    assert no_att["attention_hq"] == no_att["attention_lq"] == 0


# ------------------------------------------------------------------------------------------------ validation


def test_input_validation():
    with pytest.raises(ValueError, match=r"stages: \['conv1'.*'layer4'"):
        TwoBranchNet("resnet18", cut="layer5")
    with pytest.raises(ValueError, match="other than the first"):
        TwoBranchNet("resnet18", cut="conv1")
    with pytest.raises(ValueError, match="unknown timm model"):
        TwoBranchNet("no_such_net")
    net = _resnet18()
    with pytest.raises(ValueError, match="same shape"):
        net(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net.forward_lq(torch.randn(3, 64, 64))


# ------------------------------------------------------------------------------------------------ weights


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A full timm resnet18 state dict (with its 1000-class fc) saved as a local file."""
    torch.manual_seed(2)
    ref = timm.create_model("resnet18", pretrained=False)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    return path, ref.eval()


def test_weights_from_local_file(resnet18_file):
    path, ref = resnet18_file
    net = TwoBranchNet("resnet18", cut="layer4", attention=False, weights=path).eval()
    state = ref.state_dict()
    for prefix, module in [("head_hq.", net.head_hq), ("head_lq.", net.head_lq), ("tail.", net.tail)]:
        for name, value in module.state_dict().items():
            assert torch.equal(value, state[name]), prefix + name
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(
            net.forward_lq(x).c, ref.forward_head(ref.forward_features(x), pre_logits=True), atol=1e-5
        )


def test_bad_weights_are_rejected(resnet18_file, tmp_path):
    path, _ = resnet18_file
    state = torch.load(path, weights_only=True)
    del state["layer2.0.conv1.weight"]
    with pytest.raises(ValueError, match=r"missing keys \['layer2.0.conv1.weight'\]"):
        TwoBranchNet("resnet18", cut="layer4", weights=state)
    with pytest.raises(ValueError, match="not both"):
        TwoBranchNet("resnet18", cut="layer4", pretrained=True, weights=path)


def test_pretrained_offline_fails_fast_without_download(no_download):
    def unreachable(*args, **kw):
        raise OSError("[Errno -2] Name or service not known")

    no_download.setattr(socket, "create_connection", unreachable)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"no network\?.*weights='path/to/legacy_xception.pth'") as info:
        TwoBranchNet("legacy_xception", pretrained=True)
    assert time.perf_counter() - start < 2
    assert "github.com" in str(info.value)  # timm's source of the Xception weights
    with pytest.raises(RuntimeError, match="huggingface.co.*HF_HUB_OFFLINE=1"):  # resnet18's come from the hub
        SingleBranchNet("resnet18", cut="layer4", pretrained=True)


def test_cached_url_weights_skip_the_probe(no_download, tmp_path):
    (tmp_path / "checkpoints").mkdir()
    url = timm.models.get_pretrained_cfg("legacy_xception").url
    (tmp_path / "checkpoints" / url.rsplit("/", 1)[-1]).touch()  # as if torch.hub had downloaded it
    no_download.setattr(_hub, "_host_reachable", lambda host, timeout=5.0: pytest.fail("probed"))
    with pytest.raises(AssertionError, match="asked to download"):  # went straight to timm, which reads the cache
        TwoBranchNet("legacy_xception", pretrained=True)


_TRANSPORT = next(m for m in ("httpx2", "httpx") if importlib.util.find_spec(m))
_PROXY_ERROR = importlib.import_module(_TRANSPORT).ProxyError


@pytest.mark.parametrize(
    "error",
    [
        urllib.error.URLError("[Errno -2] Name or service not known"),  # timm's URL download
        LocalEntryNotFoundError("cannot find the requested files in the local cache"),  # HF hub
        ConnectionError("connection reset"),
        _PROXY_ERROR("407 Proxy Authentication Required"),  # behind a proxy: huggingface_hub's transport error
    ],
    ids=["url", "hf-hub", "connection", "proxy"],
)
def test_pretrained_download_errors_are_explained(no_download, error):
    def failing(*args, pretrained=False, **kw):
        raise error

    no_download.setattr(_hub, "_host_reachable", lambda host, timeout=5.0: True)
    no_download.setattr(timm, "create_model", failing)
    with pytest.raises(RuntimeError, match=r"no network\?.*weights=") as info:
        TwoBranchNet("legacy_xception", pretrained=True)
    assert info.value.__cause__ is error


# ------------------------------------------------------------------------------------------------ fastai


def test_outputs_survive_fastai_rebuilding():
    from fastai.torch_core import to_concat, to_cpu, to_detach

    net = _resnet18(attention=False).eval()
    out = net(torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32))
    detached = to_detach(out)  # fastai rebuilds tuples as type(x)(generator)
    assert isinstance(detached, TwoBranchOutput) and detached.m_hq is None
    assert not detached.c_hq.requires_grad and out.c_hq.requires_grad
    assert torch.equal(detached.v_lq, out.v_lq)
    assert isinstance(to_cpu(net.forward_lq(torch.randn(1, 3, 32, 32))), BranchOutput)
    # get_preds concatenates batches field by field (fastai cannot concatenate None fields)
    net = _resnet18().eval()
    batches = [to_detach(net(torch.randn(b, 3, 32, 32), torch.randn(b, 3, 32, 32))) for b in (2, 1)]
    both = to_concat(batches)
    assert isinstance(both, TwoBranchOutput) and both.c_hq.shape == (3, 512) and both.m_lq.shape == (3, 1, 2, 2)


def test_highpass_stem_is_image_minus_gaussian_blur():
    from scipy.ndimage import gaussian_filter

    from antiforge_lib.models import HighPass

    x = torch.rand(2, 3, 40, 36, generator=torch.Generator().manual_seed(0))
    hp = HighPass(sigma=2.0, gain=2.0)
    # scipy's Gaussian: 13 taps (truncate 3 sigma), normalised, zero padding (mode "constant").
    blur = gaussian_filter(x.numpy().astype(np.float64), sigma=(0, 0, 2.0, 2.0), truncate=3.0, mode="constant")
    expected = 2.0 * (x.numpy() - blur)
    assert np.allclose(hp(x).numpy(), expected, atol=1e-5)
    assert not list(hp.parameters()) and "weight" not in hp.state_dict()
    flat = torch.full((1, 3, 32, 32), 0.7)
    assert hp(flat)[..., 8:-8, 8:-8].abs().max() < 1e-6  # a constant image has no high frequencies


def test_highpass_stem_goes_first_in_each_head():
    net = TwoBranchNet("regnetx_002", "s3", stem="highpass")
    assert isinstance(net.head_hq[0], HighPass) and isinstance(net.head_lq[0], HighPass)
    assert net.head_hq[1] is not None and "stem" in dict(net.head_hq.named_children())  # timm's own stem is kept
    # The filter is a constant, not saved: the state dict is the plain net's (the config records the stem).
    assert set(net.state_dict()) == set(TwoBranchNet("regnetx_002", "s3").state_dict())
    out = net(torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64))
    assert out.c_lq.shape == (2, net.embed_dim)
    with pytest.raises(ValueError, match="stem must be None or one of"):
        TwoBranchNet("resnet18", "layer3", stem="sobel")
