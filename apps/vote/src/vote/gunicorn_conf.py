"""gunicorn settings: `gunicorn --config python:vote.gunicorn_conf "vote.app:create_app()"`."""

import logging

from gunicorn.glogging import Logger

from voting_contract.logs import config_dict
from voting_contract.metrics import prepare_multiprocess_dir
from voting_contract.settings import load

from vote.settings import Settings

_settings = load(Settings, "vote")

# Before any worker imports prometheus_client: each worker writes its own counts there and
# /metrics sums them, so the figures are right whichever worker answers the scrape.
prepare_multiprocess_dir("/tmp/vote-metrics")

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
worker_class = "gthread"
# A vote waits on Redis, which with appendfsync always answers after its fsync, and fsyncs
# once for every command that arrived meanwhile: 16 threads keep 16 votes in each fsync.
# The bench, interleaved on a busy 2-core box: POST / 282 req/s with 4 threads, 592 with 16,
# 589 with 32; p99 199, 145 and 201 ms.
threads = 16


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that meets contention its own malloc arena; sixteen threads made
    the process 4-5 MiB bigger (PSS) than four. Two arenas keep it at four threads' size.
    The same as MALLOC_ARENA_MAX=2, set here because this file is where the threads are."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to limit
        pass


_limit_malloc_arenas()
# Longer than a proxy keeps an idle connection to us (prod's gateway: 60 s, in
# overlays/prod/backendtrafficpolicy.yaml): if gunicorn closed it first, a vote the proxy
# sends on it at that instant would be lost, and a proxy never resends a POST.
keepalive = 75
# The pod's terminationGracePeriodSeconds (30 s) leaves room for this drain.
graceful_timeout = 20
timeout = 30
worker_tmp_dir = "/tmp"
# gunicorn 25+ opens a control socket under $HOME by default; the image has no writable home
# (read-only root), and nothing here manages gunicorn at run time.
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = _settings.log.level
# gunicorn's own lines in the services' format (voting_contract.logs); access lines at level debug only.
logconfig_dict = config_dict("vote", _settings.log)
access_log_format = "%(m)s %(U)s %(s)s %(B)s bytes %(M)sms"
# Headers larger than this get 400 at the door instead of reaching Flask.
limit_request_field_size = 8190


class QuietAccessLogger(Logger):
    """gunicorn's logger, but access lines are built only when the access logger would write them.

    gunicorn turns them on whenever a log configuration is given, and formats every request's
    fields before the logger's level could drop the line.
    """

    def setup(self, cfg):
        super().setup(cfg)
        self._access_log_enabled = self.access_log.isEnabledFor(logging.INFO)


logger_class = QuietAccessLogger


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
