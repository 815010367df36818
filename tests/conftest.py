"""Suite-wide settings, fixtures that keep tests off the network, and a lock held by another process."""

import socket
import subprocess
import sys
from contextlib import contextmanager

import pytest
import timm
import torch

from antiforge_lib import _hub


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    # The tests use tiny models, where a second thread costs more in synchronisation than it gains; and it lets a
    # busy 2-core machine run the suite without threads fighting each other (seen: 10-50x slower steps).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def no_download(monkeypatch, tmp_path):
    """Fail the test if timm is asked to download, and clear the settings that skip our network probe."""
    for var in _hub._PROXY_VARS + ("HF_HUB_OFFLINE",):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # an empty torch.hub cache
    create = timm.create_model

    def guarded(*args, pretrained=False, **kw):
        if pretrained:
            raise AssertionError("timm was asked to download")
        return create(*args, pretrained=pretrained, **kw)

    monkeypatch.setattr(timm, "create_model", guarded)
    return monkeypatch


@pytest.fixture
def offline(no_download):
    """No host answers (as on a machine without network): the ImageNet download must fail fast."""

    def unreachable(*args, **kw):
        raise OSError("[Errno -2] Name or service not known")

    no_download.setattr(socket, "create_connection", unreachable)
    return no_download


@contextmanager
def lock_held_elsewhere(lock_path, seconds: float = 60):
    """A real process holding ``exclusive_lock(lock_path)`` (as a running train or prepare does); yields it."""
    code = (
        "import time\nfrom antiforge_lib._io import exclusive_lock\n"
        f"with exclusive_lock({str(lock_path)!r}):\n    print('held', flush=True)\n    time.sleep({seconds})"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------------------------------------------------------
# The chapters' self-checks (antiforge_lib.exercises): what every check must do with wrong and broken answers


def rejects_naming_each_mistake(check, wrong: dict, capsys, unnamed=()) -> None:
    """``check`` says "Not yet" to every answer in ``wrong`` and names its mistake (the key) in the hint, except
    for the keys in ``unnamed``, which it need only reject."""
    for mistake, fn in wrong.items():
        assert not check(fn), mistake
        out = capsys.readouterr().out
        assert "Not yet" in out and (mistake in out or mistake in unnamed), (mistake, out)


def stub(*args):
    raise NotImplementedError  # the book's exercise stubs, as nbgrader's


def survives_broken_answers(checks, capsys) -> None:
    """An untouched stub, an answer that forgets to return (None), a crashing or a nonsense answer gets a "Not yet"
    verdict from each check, never a traceback; the stub's verdict is the "not written yet" line."""
    from antiforge_lib.exercises._common import NOT_WRITTEN

    out = ""
    for check in checks:
        assert not check(stub)
        assert capsys.readouterr().out == f"Not yet: {NOT_WRITTEN}\n", check.__name__
        assert not check(lambda *args: None)
        assert not check(lambda *args: 1 / 0)
        assert not check(lambda *args: "nonsense")
        out += capsys.readouterr().out
    assert out.count("Not yet") == 3 * len(checks) and "Traceback" not in out
    assert "returned None" in out and "ZeroDivisionError" in out
