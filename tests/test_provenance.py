"""provenance: the commit a result is attributed to."""

from __future__ import annotations

import subprocess

from antiforge_lib.provenance import git_commit


def test_git_commit_is_head_and_marks_uncommitted_changes(monkeypatch):
    monkeypatch.delenv("ANTIFORGE_COMMIT", raising=False)
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
    ).stdout.strip()
    got = git_commit()
    assert got.split("+")[0] == head
    assert got.endswith("+dirty") == bool(dirty)


def test_git_commit_outside_a_checkout_uses_the_declared_commit(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTIFORGE_COMMIT", raising=False)
    assert git_commit(tmp_path) == ""
    monkeypatch.setenv("ANTIFORGE_COMMIT", "abc123")
    assert git_commit(tmp_path) == "abc123 (from $ANTIFORGE_COMMIT)"
