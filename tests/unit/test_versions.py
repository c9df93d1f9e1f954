"""Istio version parsing/ordering, the features table, and collector image facts."""

from __future__ import annotations

import pytest

from meshtrace.errors import ParamsError
from meshtrace.versions import (
    FEATURES,
    IstioVersion,
    collector_binds_localhost_by_default,
    collector_env_ref,
    collector_has_debug_exporter,
    collector_has_logging_exporter,
    collector_metrics_localhost_by_default,
    collector_metrics_uses_readers,
    collector_version,
    networking_api_version,
    parse_version,
    supports,
    telemetry_api_version,
    version_notes,
)


@pytest.mark.parametrize(
    "text, parts",
    [
        ("1.25.2", (1, 25, 2, "")),
        ("v1.24.3", (1, 24, 3, "")),
        ("1.22.0-beta.1", (1, 22, 0, "beta.1")),
        ("1.26", (1, 26, 0, "")),
        ("1.27.0-alpha.0+build.5", (1, 27, 0, "alpha.0")),
        (" 1.23.1 ", (1, 23, 1, "")),
    ],
)
def test_parse(text, parts):
    v = parse_version(text)
    assert (v.major, v.minor, v.patch, v.pre) == parts


@pytest.mark.parametrize("text", ["", "1", "latest", "1.x.2", "one.two"])
def test_parse_refuses_non_versions(text):
    with pytest.raises(ParamsError, match="not an Istio version"):
        parse_version(text)


def test_ordering():
    order = ["1.19.0", "1.21.9", "1.22.0-alpha.1", "1.22.0-beta.1", "1.22.0-beta.2", "1.22.0", "1.22.1", "1.25.2"]
    parsed = [parse_version(t) for t in order]
    assert sorted(reversed(parsed)) == parsed
    assert parse_version("v1.25.2") == parse_version("1.25.2")
    assert parse_version("1.22.0-beta.10") > parse_version("1.22.0-beta.9")
    assert str(parse_version("1.22.0-beta.1")) == "1.22.0-beta.1"
    assert IstioVersion.parse(parsed[0]) is parsed[0]


@pytest.mark.parametrize(
    "version, feature, expected",
    [
        ("1.19.0", "otel_provider", True),
        ("1.21.4", "telemetry_v1", False),
        ("1.22.0-beta.1", "telemetry_v1", True),
        ("1.21.4", "provider_http", False),
        ("1.22.0", "provider_http", True),
        ("1.22.0", "resource_detectors", True),
        ("1.23.5", "provider_grpc_block", False),
        ("1.24.0", "provider_grpc_block", True),
        ("1.22.3", "span_names_fqdn", False),
        ("1.23.0", "span_names_fqdn", True),
        ("1.23.0", "verify_install_removed", False),
        ("1.24.1", "verify_install_removed", True),
        ("1.27.2", "gateway_upstream_span", False),
        ("1.28.0", "gateway_upstream_span", True),
    ],
)
def test_supports(version, feature, expected):
    assert supports(version, feature) is expected


def test_unknown_feature_is_an_error():
    with pytest.raises(KeyError, match="unknown feature"):
        supports("1.25.0", "teleportation")
    assert "provider_grpc_block" in FEATURES


@pytest.mark.parametrize(
    "version, telemetry, networking",
    [
        ("1.20.8", "telemetry.istio.io/v1alpha1", "networking.istio.io/v1beta1"),
        ("1.21.0", "telemetry.istio.io/v1alpha1", "networking.istio.io/v1beta1"),
        ("1.22.0", "telemetry.istio.io/v1", "networking.istio.io/v1"),
        ("1.25.2", "telemetry.istio.io/v1", "networking.istio.io/v1"),
    ],
)
def test_api_versions(version, telemetry, networking):
    assert telemetry_api_version(version) == telemetry
    assert networking_api_version(version) == networking


def test_version_notes_say_the_source_needs_1_22():
    assert version_notes("1.25.2") == []
    (note,) = version_notes("1.20.3")
    assert "1.22" in note and "1.20.3" in note
    assert "older than 1.19" in version_notes("1.18.0")[0]


@pytest.mark.parametrize(
    "image, version",
    [
        ("otel/opentelemetry-collector-contrib:0.120.0", (0, 120, 0)),
        ("otel/opentelemetry-collector:0.54.0", (0, 54, 0)),
        ("ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-contrib:v0.111.1",
         (0, 111, 1)),
        ("registry.local:5000/otel/opentelemetry-collector-contrib:0.104.0", (0, 104, 0)),
        ("otel/opentelemetry-collector-contrib:latest", None),
        ("otel/opentelemetry-collector-contrib", None),
        ("registry.local:5000/otelcol", None),
        ("otel/opentelemetry-collector-contrib@sha256:" + "a" * 64, None),
    ],
)
def test_collector_version(image, version):
    assert collector_version(image) == version


@pytest.mark.parametrize(
    "v, logging, debug, local_recv, local_metrics, readers, env",
    [
        ((0, 54, 0), True, False, False, False, False, "${BACKEND_TOKEN}"),
        ((0, 58, 0), True, False, False, False, False, "${BACKEND_TOKEN}"),
        ((0, 59, 0), True, False, False, False, False, "${env:BACKEND_TOKEN}"),
        ((0, 86, 0), True, True, False, False, False, "${env:BACKEND_TOKEN}"),
        ((0, 103, 0), True, True, False, False, False, "${env:BACKEND_TOKEN}"),
        ((0, 104, 0), True, True, True, False, False, "${env:BACKEND_TOKEN}"),
        ((0, 110, 0), True, True, True, False, False, "${env:BACKEND_TOKEN}"),
        ((0, 111, 0), False, True, True, True, True, "${env:BACKEND_TOKEN}"),
        ((0, 120, 0), False, True, True, True, True, "${env:BACKEND_TOKEN}"),
        (None, False, True, True, True, True, "${env:BACKEND_TOKEN}"),
    ],
)
def test_collector_facts(v, logging, debug, local_recv, local_metrics, readers, env):
    assert collector_has_logging_exporter(v) is logging
    assert collector_has_debug_exporter(v) is debug
    assert collector_binds_localhost_by_default(v) is local_recv
    assert collector_metrics_localhost_by_default(v) is local_metrics
    assert collector_metrics_uses_readers(v) is readers
    assert collector_env_ref(v, "BACKEND_TOKEN") == env
