"""Fixtures for every test in the repository: real servers, started by the suite itself."""

pytest_plugins = ["devstack.pytest_plugin"]
