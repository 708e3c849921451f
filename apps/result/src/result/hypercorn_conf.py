"""hypercorn settings: `hypercorn --config python:result.hypercorn_conf "result.app:create_app()"`."""

from voting_contract.metrics import prepare_multiprocess_dir
from voting_contract.settings import SettingsError, environ

from result.settings import Settings

try:
    _settings = Settings.from_env(environ())
except SettingsError as exc:
    raise SystemExit(f"result: configuration error: {exc}") from None

prepare_multiprocess_dir("/tmp/result-metrics")

bind = [f"{_settings.host}:{_settings.port}"]
workers = _settings.workers
# The pod's terminationGracePeriodSeconds (30 s) leaves room for this drain.
graceful_timeout = 20
accesslog = None
errorlog = "-"
# No websocket_ping_interval: hypercorn 0.18 then waits up to that long at shutdown after any
# websocket has been open. Idle sockets cut by a proxy are reopened by the page itself.
