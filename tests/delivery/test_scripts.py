"""scripts/cluster.sh, the kind config, and the git server the Argo CD end-to-end test serves from."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time

import yaml

from devstack.repo import ROOT
CLUSTER_SH = ROOT / "scripts" / "cluster.sh"


def test_cluster_script_is_strict_and_parses():
    text = CLUSTER_SH.read_text()
    assert "set -euo pipefail" in text and "usage()" in text
    subprocess.run(["bash", "-n", str(CLUSTER_SH)], check=True)


def test_shell_scripts_pass_shellcheck():
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    assert scripts
    proc = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cluster_script_explains_itself_and_rejects_unknown_commands():
    helped = subprocess.run(["bash", str(CLUSTER_SH), "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "up|down|status" in helped.stdout
    wrong = subprocess.run(["bash", str(CLUSTER_SH), "sideways"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "Usage" in wrong.stderr


def test_cluster_script_names_what_is_missing(tmp_path):
    for tool in ("dirname", "basename"):  # what the script needs before it checks; none of the four
        (tmp_path / tool).symlink_to(shutil.which(tool))
    env = {**os.environ, "PATH": str(tmp_path)}
    proc = subprocess.run(["/bin/bash", str(CLUSTER_SH), "up"], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "missing on PATH: docker kind kubectl terraform" in proc.stderr


def test_kind_node_image_is_pinned_by_digest():
    config = yaml.safe_load((ROOT / "scripts" / "kind-cluster.yaml").read_text())
    assert config["name"] == "voting-app"
    for node in config["nodes"]:
        assert "@sha256:" in node["image"], node["image"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_e2e_git_server_serves_a_clone(tmp_path):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "README").write_text("served\n")
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=work, check=True)
    subprocess.run([*git, "add", "README"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], cwd=work, check=True)
    served = tmp_path / "srv"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(served / "voting-app.git")], check=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "e2e" / "gitserver" / "server.py"), str(served), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}/voting-app.git"
        for _ in range(50):
            if subprocess.run(["git", "ls-remote", url], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", url, str(clone)], check=True, timeout=60)
        assert (clone / "README").read_text() == "served\n"
        missing = subprocess.run(["git", "ls-remote", f"http://127.0.0.1:{port}/nothing.git"], capture_output=True)
        assert missing.returncode != 0
    finally:
        server.terminate()
        server.wait(timeout=10)
