#!/usr/bin/env python3
"""Read the app image digests that the overlays pin, and check that prod only runs what dev ran first.

    python scripts/gitops_images.py list overlays/dev     # name=newName@digest, one a line
    python scripts/gitops_images.py check                 # exit 1 if a prod digest skipped dev
    python scripts/gitops_images.py set overlays/dev vote=local/vote:abc123 ...

`set` does what `kustomize edit set image` does with a tag, for scripts/cluster.sh's served
copy of the repository, where no kustomize binary may be installed; it never runs on the
committed overlays. Used by .github/workflows/promote.yml, scripts/cluster.sh and tests/delivery.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

DEV = "overlays/dev/kustomization.yaml"
PROD = "overlays/prod/kustomization.yaml"
WORKTREE = "working tree"


@dataclass(frozen=True)
class Pin:
    name: str
    new_name: str
    digest: str

    def spec(self) -> str:
        """The argument `kustomize edit set image` takes."""
        return f"{self.name}={self.new_name}@{self.digest}"


def pins(kustomization_text: str) -> dict[str, Pin]:
    """The `images:` entries that carry a digest, by name."""
    doc = yaml.safe_load(kustomization_text) or {}
    found: dict[str, Pin] = {}
    for entry in doc.get("images") or []:
        digest = entry.get("digest")
        tag = str(entry.get("newTag") or "")
        if not digest and "@sha256:" in tag:
            digest = tag.split("@", 1)[1]
        if digest:
            found[entry["name"]] = Pin(entry["name"], entry.get("newName") or entry["name"], digest)
    return found


def set_images(kustomization_text: str, specs: list[str]) -> str:
    """The kustomization with each `name=newName:tag` replacing that name's pin (a tag, no digest)."""
    doc = yaml.safe_load(kustomization_text) or {}
    entries = {entry["name"]: entry for entry in doc.get("images") or []}
    for spec in specs:
        name, sep, image = spec.partition("=")
        new_name, colon, tag = image.rpartition(":")
        if not sep or not colon or not new_name or "/" in tag or "@" in image:
            raise ValueError(f"{spec!r} is not name=newName:tag")
        if name not in entries:
            raise ValueError(f"{name} is not among the images the kustomization sets ({', '.join(entries) or 'none'})")
        entry = entries[name]
        entry.pop("digest", None)
        entry.update(newName=new_name, newTag=tag)
    return yaml.safe_dump(doc, sort_keys=False)


@dataclass
class Verdict:
    ok: bool
    lines: list[str]
    undecidable: str | None = None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def _history(repo: Path, path: str) -> list[tuple[str, dict[str, Pin]]]:
    """(commit, pins) for every commit that changed `path`, oldest first."""
    commits = _git(repo, "log", "--reverse", "--format=%H", "--", path).split()
    out = []
    for commit in commits:
        try:
            text = _git(repo, "show", f"{commit}:{path}")
        except subprocess.CalledProcessError:  # the commit deleted the file
            continue
        out.append((commit, pins(text)))
    return out


def _is_ancestor(repo: Path, older: str, newer: str) -> bool:
    if newer == WORKTREE:
        newer = "HEAD"
    return subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", older, newer]).returncode == 0


def check_prod_after_dev(repo: Path) -> Verdict:
    """Every digest in the working tree's prod overlay was in dev at a commit before prod first had it.

    The digests present in the commit that created overlays/prod are exempt and listed: the
    repository had to start somewhere, and no earlier commit can exist for them.
    """
    try:
        if _git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
            return Verdict(True, [], "shallow clone: the dev history before HEAD is missing (fetch-depth: 0 fixes it)")
    except (subprocess.CalledProcessError, FileNotFoundError):
        return Verdict(True, [], "not a git checkout, so there is no history to read")
    prod_file = repo / PROD
    if not prod_file.exists():
        return Verdict(True, [], f"{PROD} does not exist yet")
    current = pins(prod_file.read_text())
    prod_history = _history(repo, PROD)
    dev_history = _history(repo, DEV)
    first_prod_commit = prod_history[0][0] if prod_history else None
    ok, lines = True, []
    for name, pin in sorted(current.items()):
        since = next((c for c, p in prod_history if name in p and p[name].digest == pin.digest), WORKTREE)
        if since == first_prod_commit:
            lines.append(f"{name}: {pin.digest} came with the commit that created {PROD} ({since[:12]}), exempt")
            continue
        dev_commits = [c for c, p in dev_history if name in p and p[name].digest == pin.digest]
        earlier = [c for c in dev_commits if c != since and _is_ancestor(repo, c, since)]
        if earlier:
            lines.append(f"{name}: {pin.digest} was in dev at {earlier[0][:12]} before prod at {since[:12]}")
        else:
            ok = False
            seen = ", ".join(c[:12] for c in dev_commits) or "never"
            lines.append(f"{name}: {pin.digest} is in prod since {since[:12]} but was not in dev before it (dev: {seen})")
    return Verdict(ok, lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="print name=newName@digest for each pinned image")
    listing.add_argument("overlay", type=Path)
    setting = sub.add_parser("set", help="pin name=newName:tag in the overlay's kustomization.yaml")
    setting.add_argument("overlay", type=Path)
    setting.add_argument("specs", nargs="+", metavar="name=newName:tag")
    check = sub.add_parser("check", help="fail if a prod digest was not in dev at an earlier commit")
    check.add_argument("--repo", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    if args.command == "list":
        for pin in pins((args.overlay / "kustomization.yaml").read_text()).values():
            print(pin.spec())
        return 0
    if args.command == "set":
        path = args.overlay / "kustomization.yaml"
        try:
            path.write_text(set_images(path.read_text(), args.specs))
        except ValueError as exc:
            print(f"gitops_images.py set: {exc}", file=sys.stderr)
            return 2
        return 0
    verdict = check_prod_after_dev(args.repo)
    if verdict.undecidable:
        print(f"cannot tell: {verdict.undecidable}")
        return 0
    print("\n".join(verdict.lines))
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
