"""The span of a request, when tracing is on: a view wrapped only then, so off costs nothing."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import current_app, request
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from voting_contract.tracing import parent_from


def traced(tracer: Tracer, name: str, view: Callable) -> Callable:
    """`view` run inside a server span named `name`, continuing a proxy's trace if it sent one."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        attributes = {"http.request.method": request.method, "http.route": request.url_rule.rule,
                      "url.path": request.path, "url.scheme": request.scheme}
        with tracer.start_as_current_span(name, context=parent_from(request.headers), kind=SpanKind.SERVER,
                                          attributes=attributes) as span:
            response = current_app.make_response(view(*args, **kwargs))
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    return wrapper
