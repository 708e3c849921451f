"""Prod only runs what dev ran first: every prod digest was in overlays/dev at an earlier commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack.repo import ROOT
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def test_prod_digests_were_in_dev_first(gitops_images):
    verdict = gitops_images.check_prod_after_dev(ROOT)
    if verdict.undecidable:
        pytest.skip(f"cannot tell whether prod ran only what dev ran first: {verdict.undecidable}")
    assert verdict.ok, "\n".join(verdict.lines)


def kustomization(**digests: str) -> str:
    images = "".join(
        f"  - name: {name}\n    newName: ghcr.io/voting-app/{name}\n    digest: {digest}\n" for name, digest in digests.items()
    )
    return f"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n{images}"


class History:
    """A throwaway git repository to replay a sequence of overlay changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "test@example.invalid")
        self.git("config", "user.name", "test")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True).stdout

    def write(self, env: str, text: str) -> None:
        target = self.path / "overlays" / env / "kustomization.yaml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, **envs: str) -> None:
        for env, text in envs.items():
            self.write(env, text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


@pytest.fixture
def history(tmp_path) -> History:
    repo = History(tmp_path / "repo")
    repo.commit("bootstrap", dev=kustomization(vote=D1), prod=kustomization(vote=D1))
    return repo


def test_digests_from_the_bootstrap_commit_are_exempt_and_said_so(history, gitops_images):
    verdict = gitops_images.check_prod_after_dev(history.path)
    assert verdict.ok and "exempt" in verdict.lines[0]


def test_a_promotion_after_dev_passes(history, gitops_images):
    history.commit("release vote", dev=kustomization(vote=D2))
    history.commit("promote vote", prod=kustomization(vote=D2))
    verdict = gitops_images.check_prod_after_dev(history.path)
    assert verdict.ok, verdict.lines
    assert "was in dev" in verdict.lines[0]


def test_a_digest_that_never_reached_dev_fails(history, gitops_images):
    history.commit("hotfix straight to prod", prod=kustomization(vote=D3))
    verdict = gitops_images.check_prod_after_dev(history.path)
    assert not verdict.ok
    assert "was not in dev before it (dev: never)" in verdict.lines[0]


def test_dev_and_prod_changed_in_the_same_commit_fails(history, gitops_images):
    history.commit("both at once", dev=kustomization(vote=D2), prod=kustomization(vote=D2))
    verdict = gitops_images.check_prod_after_dev(history.path)
    assert not verdict.ok


def test_dev_only_on_another_branch_fails(history, gitops_images):
    history.git("checkout", "-q", "-b", "side")
    history.commit("release on a side branch", dev=kustomization(vote=D2))
    history.git("checkout", "-q", "main")
    history.commit("promote from nowhere", prod=kustomization(vote=D2))
    assert not gitops_images.check_prod_after_dev(history.path).ok


def test_an_uncommitted_prod_change_is_checked_against_dev_at_head(history, gitops_images):
    history.commit("release vote", dev=kustomization(vote=D2))
    history.write("prod", kustomization(vote=D2))
    assert gitops_images.check_prod_after_dev(history.path).ok
    history.write("prod", kustomization(vote=D3))
    assert not gitops_images.check_prod_after_dev(history.path).ok


def test_a_shallow_clone_says_it_cannot_tell(history, gitops_images, tmp_path):
    history.commit("release vote", dev=kustomization(vote=D2))
    history.commit("promote vote", prod=kustomization(vote=D2))
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{history.path}", str(shallow)], check=True)
    verdict = gitops_images.check_prod_after_dev(shallow)
    assert verdict.undecidable and "shallow" in verdict.undecidable


def test_list_prints_kustomize_set_image_arguments(tmp_path, gitops_images, capsys):
    (tmp_path / "kustomization.yaml").write_text(kustomization(vote=D1, worker=D2))
    assert gitops_images.main(["list", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [
        f"vote=ghcr.io/voting-app/vote@{D1}",
        f"worker=ghcr.io/voting-app/worker@{D2}",
    ]
