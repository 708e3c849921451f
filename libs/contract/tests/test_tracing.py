import pytest
from opentelemetry.sdk.trace import TracerProvider

from voting_contract import tracing
from voting_contract.settings import SettingsError, TracingSettings
from voting_contract.wire import MalformedMessage, Vote, decode

IDS = ("a", "b")
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_tracing_is_off_unless_an_endpoint_is_set():
    assert TracingSettings.from_env({}, "vote") == TracingSettings("vote", None)
    assert tracing.provider(TracingSettings.from_env({}, "vote")) is None
    assert tracing.tracer(None, "vote") is None
    off = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}
    assert not TracingSettings.from_env(off, "vote").enabled


def test_an_endpoint_turns_it_on_with_opentelemetrys_variables():
    on = TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.monitoring:4318/"}, "worker")
    assert (on.service_name, on.traces_url) == ("worker", "http://otel-collector.monitoring:4318/v1/traces")
    named = TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://c", "OTEL_SERVICE_NAME": "ballot",
                                      "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t/traces"}, "vote")
    assert (named.service_name, named.traces_url) == ("ballot", "https://t/traces")
    provider = tracing.provider(on)
    try:
        assert provider.resource.attributes["service.name"] == "worker"
        assert provider._span_limits.max_links == 5000  # a batch links every vote in it
    finally:
        provider.shutdown()


@pytest.mark.parametrize("endpoint", ["otel-collector:4318", "ftp://collector", "http://a\tb"])
def test_a_bad_endpoint_is_named(endpoint):
    with pytest.raises(SettingsError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        TracingSettings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}, "vote")


def test_the_current_spans_traceparent_links_back_to_it():
    assert tracing.traceparent() is None  # no span
    with TracerProvider().get_tracer("t").start_as_current_span("POST /") as span:
        header = tracing.traceparent()
    (link,) = tracing.links_to([header, "", "00-garbage", "x" * 500])
    assert (link.context.trace_id, link.context.span_id) == (span.get_span_context().trace_id,
                                                             span.get_span_context().span_id)


def test_a_message_carries_a_traceparent_that_classic_readers_ignore():
    vote = Vote("v1", "a").traced(TRACEPARENT)
    assert decode(vote.to_json(), IDS) == vote and vote.traceparent == TRACEPARENT
    assert Vote("v1", "a").traced(None) == Vote("v1", "a")
    assert decode(Vote("v1", "a").to_json(), IDS).traceparent is None
    assert '"traceparent"' not in Vote("v1", "a").to_json()


@pytest.mark.parametrize("header", ["42", "null", "[]", '"' + "0" * 129 + '"'])
def test_an_unusable_traceparent_costs_the_link_never_the_vote(header):
    assert decode('{"voter_id": "v1", "vote": "b", "traceparent": ' + header + "}", IDS) == Vote("v1", "b")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"vote": "a", "traceparent": "%s"}', "missing-voter-id"),
        ('{"voter_id": "v", "vote": "c", "traceparent": "%s"}', "unknown-vote"),
        ('{"voter_id": "v", "vote": "a", "seq": "1", "traceparent": "%s"}', "bad-seq"),
        ('["v", "a", "%s"]', "not-an-object"),
    ],
)
def test_a_traceparent_never_makes_a_malformed_message_acceptable(raw, reason):
    with pytest.raises(MalformedMessage) as caught:
        decode(raw % TRACEPARENT, IDS)
    assert caught.value.reason == reason
