"""Serve the bare repositories under one folder over git's smart HTTP protocol, fetch and push.

`git http-backend` does the protocol; this file only turns HTTP requests into its CGI calls,
so Argo CD's repo-server clones from inside the kind cluster exactly as from a forge, and
scripts/cluster.sh pushes through a port-forward. Pushes need no login: the Service is
reached only from Argo CD's namespace (networkpolicy.yaml) and through the Kubernetes API.

    python server.py ROOT PORT [REPOSITORY.git ...]   # creates each named repository if missing
"""

from __future__ import annotations

import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


# As environment variables, so no config file needs a writable home.
GIT_CONFIG = {
    "GIT_CONFIG_COUNT": "3",
    # Files written by another uid (a volume, a test's temp folder) are trusted anyway.
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
    # http-backend refuses anonymous pushes unless told otherwise.
    "GIT_CONFIG_KEY_1": "http.receivepack",
    "GIT_CONFIG_VALUE_1": "true",
    # CI checks out one commit without its history; its push must still be accepted.
    "GIT_CONFIG_KEY_2": "receive.shallowUpdate",
    "GIT_CONFIG_VALUE_2": "true",
}


def init_bare(root: str, name: str) -> None:
    """Create an empty bare repository whose default branch is main, unless one is there."""
    path = os.path.join(root, name)
    if not os.path.isdir(os.path.join(path, "objects")):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **GIT_CONFIG}
        subprocess.run(["git", "init", "--quiet", "--bare", "--initial-branch=main", path], env=env, check=True)


class GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    project_root = "."

    def do_GET(self) -> None:
        self.backend()

    def do_POST(self) -> None:
        self.backend()

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def backend(self) -> None:
        url = urlsplit(self.path)
        body = self.read_body() if self.command == "POST" else b""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.project_root,
            "GIT_HTTP_EXPORT_ALL": "1",
            **GIT_CONFIG,
            "REQUEST_METHOD": self.command,
            "PATH_INFO": url.path,
            "QUERY_STRING": url.query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": self.client_address[0],
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
        }
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, check=False)
        head, _, payload = proc.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = proc.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        if proc.returncode and not head:
            status, payload = 500, proc.stderr
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def main() -> None:
    root, port, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    GitHandler.project_root = os.path.abspath(root)
    for name in names:
        init_bare(GitHandler.project_root, name)
    ThreadingHTTPServer(("0.0.0.0", port), GitHandler).serve_forever()  # noqa: S104 - a pod's own address


if __name__ == "__main__":
    main()
