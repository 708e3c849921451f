"""How the rollout drills tell requests in flight at SIGTERM from new ones."""

from devstack.drills.rollout import Call, TimedLoad


def test_a_refused_connection_was_never_in_flight():
    load = TimedLoad(lambda client, rng: 200, "http://127.0.0.1:9")
    load.calls = [
        Call(0.5, 0.9, 200),  # done before SIGTERM at 1.0
        Call(0.8, 1.4, 200),  # in flight: the server had it
        Call(0.9, 1.1, None, "ReadError"),  # in flight, and failed
        Call(0.95, 1.05, None, "ConnectError"),  # begun before, but the server never accepted it
        Call(1.2, 1.3, None, "ConnectError"),  # new, refused
    ]
    in_flight, after = load.split(1.0)
    assert [(c.started, c.error) for c in in_flight] == [(0.8, None), (0.9, "ReadError")]
    assert [(c.started, c.error) for c in after] == [(0.95, "ConnectError"), (1.2, "ConnectError")]
