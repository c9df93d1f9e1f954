"""Collector image versions and the behaviour that changes with them.

Boundaries were read from the collector's release notes, issues and the history of its
``otlptext`` package; the ones marked "approx." are the first release known to show the
behaviour, not a proven first one.

| behaviour                                                    | from      |
| ------------------------------------------------------------ | --------- |
| ``ScopeSpans``/``InstrumentationScope`` (was ``InstrumentationLibrarySpans``) | 0.52 approx. |
| ``Resource attributes:`` (was ``Resource labels:``)          | 0.59      |
| value types ``Str(x)`` (was ``STRING(x)``)                   | 0.62      |
| kinds ``Client``/status ``Unset`` (was ``SPAN_KIND_CLIENT``/``STATUS_CODE_UNSET``) | 0.64 |
| ``verbosity`` option on ``logging``; logger shares the service core | 0.63 approx. |
| ``${env:VAR}`` expansion                                     | 0.59 approx. |
| ``debug`` exporter exists                                    | 0.86      |
| ``0.0.0.0`` exposure warning on receivers                    | 0.81–0.103 approx. |
| OTLP receiver / health_check default ``localhost``           | 0.104     |
| ``$VAR`` (no braces) no longer expanded                      | 0.105 approx. |
| internal metric counters carry ``_total`` (0.91 has none, 0.97 has it) | 0.93 approx. |
| ``logging`` exporter removed                                 | 0.111     |
| internal metrics bind ``localhost`` by default; ``readers`` config | 0.111 approx. |
| summary message ``Traces`` and ``otelcol.component.*`` fields | 0.116 approx. |
| ``TraceState`` line in the span dump                         | 0.117 approx. |
| ``"resource": {}`` field on component loggers                | 0.124 approx. |
| resource entity refs in the dump (#13471)                    | 0.133     |
| ``Dropped…Count`` lines, zeros too, after the status (#14217) | 0.142     |
| ``jaeger`` exporter gone from the images (releases #396)     | 0.85      |
| ``opencensus`` receiver/exporter gone from the images (releases #1056) | 0.132 |
"""

from __future__ import annotations

import re

from meshlab.gotime import version_text  # noqa: F401 - part of this module's API

Version = tuple[int, int, int]

#: what an untagged or ``latest`` image is taken to be
LATEST: Version = (0, 142, 0)

SCOPE_SPANS = (0, 52, 0)
RESOURCE_ATTRIBUTES = (0, 59, 0)
TYPED_VALUES = (0, 62, 0)
SHORT_ENUMS = (0, 64, 0)
LOGGING_VERBOSITY = (0, 63, 0)
ENV_SCHEME = (0, 59, 0)
DEBUG_EXPORTER = (0, 86, 0)
EXPOSURE_WARNING = ((0, 81, 0), (0, 104, 0))
LOCALHOST_DEFAULT = (0, 104, 0)
NO_BARE_DOLLAR = (0, 105, 0)
TOTAL_SUFFIX = (0, 93, 0)
LOGGING_REMOVED = (0, 111, 0)
METRICS_LOCALHOST = (0, 111, 0)
COMPONENT_FIELDS = (0, 116, 0)
TRACE_STATE = (0, 117, 0)
RESOURCE_FIELD = (0, 124, 0)
ENTITY_REFS = (0, 133, 0)
DROPPED_COUNTS = (0, 142, 0)
DECODE_ERRORS_NEW = (0, 109, 0)
DECODE_ERRORS_NEWEST = (0, 116, 0)
UNKNOWN_TYPE_OLD = (0, 59, 0)
JAEGER_EXPORTER_REMOVED = (0, 85, 0)
OPENCENSUS_REMOVED = (0, 132, 0)

_TAG = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


def image_version(image: str) -> Version:
    """The collector version of an image reference.

    >>> image_version("otel/opentelemetry-collector:0.54.0")
    (0, 54, 0)
    """
    ref = image.split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else "latest"
    m = _TAG.match(tag)
    if not m:
        return LATEST
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def is_contrib(image: str) -> bool:
    """Whether the image is the contrib distribution (``otelcol-contrib``)."""
    return "contrib" in image.split("@", 1)[0].rsplit("/", 1)[-1]


