"""The drills' lab for the quick forms: scratch servers under the suite's folder, the shared PostgreSQL."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from devstack.drills.lab import Lab


@pytest.fixture(scope="session")
def lab(servers_root, postgres_server):
    lab = Lab(Path(tempfile.mkdtemp(dir=servers_root, prefix="drills-")), postgres=postgres_server)
    yield lab
    lab.close()
