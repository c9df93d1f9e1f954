"""Istio and OpenTelemetry Collector versions, and what each version can do.

The features table mirrors DESIGN.md "Features by Istio version"; the collector facts mirror
DESIGN.md section 5. Both are data, so renderers and checks ask :func:`supports` and the
``collector_*`` helpers instead of comparing numbers themselves.

Example::

    >>> supports("1.25.2", "provider_grpc_block")
    True
    >>> telemetry_api_version("1.21.4")
    'telemetry.istio.io/v1alpha1'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import total_ordering

from meshtrace.errors import ParamsError

_VERSION_RE = re.compile(
    r"^v?(?P<major>\d+)\.(?P<minor>\d+)(?:\.(?P<patch>\d+))?(?:-(?P<pre>[0-9A-Za-z.\-]+))?(?:\+[0-9A-Za-z.\-]+)?$"
)


@total_ordering
@dataclass(frozen=True)
class IstioVersion:
    """A parsed Istio version: ``1.25.2``, ``1.22.0-beta.1``, ``v1.24``, ``1.26-dev``.

    A pre-release sorts before its release (``1.22.0-beta.1 < 1.22.0``); features follow
    ``major.minor`` only, so a 1.22 beta has the 1.22 features.
    """

    major: int
    minor: int
    patch: int = 0
    pre: str = ""
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str | IstioVersion) -> IstioVersion:
        """Parse ``text``; raise :class:`ParamsError` naming the accepted forms when it is no version."""
        if isinstance(text, IstioVersion):
            return text
        m = _VERSION_RE.match(str(text).strip())
        if not m:
            raise ParamsError(
                f"{text!r} is not an Istio version; expected MAJOR.MINOR[.PATCH][-PRERELEASE], e.g. 1.25.2"
            )
        return cls(
            int(m["major"]), int(m["minor"]), int(m["patch"] or 0), m["pre"] or "", str(text).strip()
        )

    @property
    def minor_version(self) -> tuple[int, int]:
        """``(major, minor)``, what the features table keys on."""
        return (self.major, self.minor)

    def _key(self) -> tuple:
        pre_key: tuple = (1,) if not self.pre else (0, *_pre_parts(self.pre))
        return (self.major, self.minor, self.patch, pre_key)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, IstioVersion):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IstioVersion):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.pre}" if self.pre else base


def _pre_parts(pre: str) -> tuple:
    """Semver-like ordering of pre-release parts: numbers before words, numbers numerically."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"[.\-]", pre))


def parse_version(text: str | IstioVersion) -> IstioVersion:
    """Parse an Istio version string. Example: ``parse_version("1.22.0-beta.1").minor == 22``."""
    return IstioVersion.parse(text)


# feature -> first Istio minor version that has it (DESIGN.md "Features by Istio version").
FEATURES: dict[str, tuple[int, int]] = {
    "otel_provider": (1, 19),  # extensionProviders[].opentelemetry over gRPC: the source's floor
    "telemetry_v1": (1, 22),  # telemetry.istio.io/v1 (else v1alpha1)
    "networking_v1": (1, 22),  # networking.istio.io/v1 (else v1beta1)
    "provider_http": (1, 22),  # opentelemetry provider `http:` block
    "resource_detectors": (1, 22),  # opentelemetry provider `resource_detectors`
    "provider_grpc_block": (1, 24),  # opentelemetry provider `grpc:` block (timeout, initial_metadata)
    "span_names_fqdn": (1, 23),  # span names `<fqdn>:<port><path>`; before: `ingress`, `egress host:port`
    "verify_install_removed": (1, 24),  # `istioctl verify-install` is gone
    "gateway_upstream_span": (1, 28),  # extra gateway upstream span on by default
}

MIN_ISTIO = IstioVersion(1, 19)
"""The oldest Istio the source procedure names ("1.19 or later")."""

SOURCE_MANIFESTS_NEED = IstioVersion(1, 22)
"""The source's own manifests (``telemetry.istio.io/v1``, provider ``http:``) need this version."""


def supports(version: str | IstioVersion, feature: str) -> bool:
    """Whether Istio ``version`` has ``feature`` (a key of :data:`FEATURES`).

    Example: ``supports("1.23.0", "provider_grpc_block") is False``.
    """
    if feature not in FEATURES:
        raise KeyError(f"unknown feature {feature!r}; known: {', '.join(sorted(FEATURES))}")
    return parse_version(version).minor_version >= FEATURES[feature]


def telemetry_api_version(version: str | IstioVersion) -> str:
    """The Telemetry ``apiVersion`` for ``version``: ``telemetry.istio.io/v1`` from 1.22, else ``v1alpha1``."""
    return "telemetry.istio.io/v1" if supports(version, "telemetry_v1") else "telemetry.istio.io/v1alpha1"


def networking_api_version(version: str | IstioVersion) -> str:
    """The Gateway/VirtualService ``apiVersion``: ``networking.istio.io/v1`` from 1.22, else ``v1beta1``."""
    return "networking.istio.io/v1" if supports(version, "networking_v1") else "networking.istio.io/v1beta1"


def version_notes(version: str | IstioVersion) -> list[str]:
    """Plain-language notes about targeting ``version`` (empty for 1.22 and later).

    Example: ``version_notes("1.20.3")`` says the source's manifests need 1.22.
    """
    v = parse_version(version)
    notes: list[str] = []
    if v.minor_version < MIN_ISTIO.minor_version:
        notes.append(f"Istio {v} is older than {MIN_ISTIO.major}.{MIN_ISTIO.minor}, the oldest the procedure supports.")
    elif v.minor_version < SOURCE_MANIFESTS_NEED.minor_version:
        notes.append(
            f"Istio {v}: the source says 1.19 or later, but its own manifests (telemetry.istio.io/v1, provider "
            f"`http:`) need 1.22; the kit renders telemetry.istio.io/v1alpha1 and gRPC export only, and Istio's "
            f"default Zipkin tracer may still apply."
        )
    return notes


# ----------------------------------------------------------------------------------------------
# OpenTelemetry Collector images
#
# Facts, with their sources:
# - `logging` exporter: last shipped in v0.110.0, removed in v0.111.0 (collector release notes v0.111.0,
#   "Removed the deprecated `logging` exporter", #11037; migration notes in issue #11337).
# - OTLP receivers and other component servers (health_check) default to `localhost` from v0.104.0
#   (release notes v0.104.0: feature gate `component.UseLocalHostAsDefaultHost` enabled by default).
# - Internal metrics default address `localhost:8888` instead of `:8888` from v0.111.0 (release notes
#   v0.111.0, #11251, gate `telemetry.UseLocalHostAsDefaultMetricsAddress`); the same release deprecates
#   `service::telemetry::metrics::address` in favour of `service::telemetry::metrics::readers` (#11205),
#   and later releases dropped `address` altogether.
# - `debug` exporter: first shipped in v0.86.0, when `logging` was deprecated in its favour
#   (collector-releases PR #409 "prepare v0.86.0 release ... adding the debug exporter"; collector PR #8378).
# - `${env:NAME}` expansion arrived with the confmap resolver's embedded URI-scheme expansion (collector
#   PR #5863, merged Aug 2022; first release about v0.59.0); older images expand `${NAME}` through the
#   expand converter.
# ----------------------------------------------------------------------------------------------

_COLLECTOR_TAG_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")

COLLECTOR_LAST_LOGGING = (0, 110, 0)
COLLECTOR_FIRST_DEBUG = (0, 86, 0)
COLLECTOR_LOCALHOST_RECEIVERS = (0, 104, 0)
COLLECTOR_LOCALHOST_METRICS = (0, 111, 0)
COLLECTOR_METRICS_READERS = (0, 111, 0)
COLLECTOR_ENV_SCHEME = (0, 59, 0)


def collector_version(image: str) -> tuple[int, int, int] | None:
    """The version of a collector image, or ``None`` when its tag names none (``latest``, a digest).

    Example: ``collector_version("otel/opentelemetry-collector-contrib:0.120.0") == (0, 120, 0)``.
    """
    ref = image.split("@", 1)[0]
    name_tag = ref.rsplit("/", 1)[-1]
    if ":" not in name_tag:
        return None
    m = _COLLECTOR_TAG_RE.match(name_tag.split(":", 1)[1])
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def _at_least(v: tuple[int, int, int] | None, floor: tuple[int, int, int]) -> bool:
    """Unknown versions are taken as recent."""
    return v is None or v >= floor


def collector_has_logging_exporter(v: tuple[int, int, int] | None) -> bool:
    """Whether the ``logging`` exporter exists (images up to 0.110)."""
    return v is not None and v <= COLLECTOR_LAST_LOGGING


def collector_has_debug_exporter(v: tuple[int, int, int] | None) -> bool:
    """Whether the ``debug`` exporter exists (images from 0.86)."""
    return _at_least(v, COLLECTOR_FIRST_DEBUG)


def collector_binds_localhost_by_default(v: tuple[int, int, int] | None) -> bool:
    """Whether OTLP receivers and ``health_check`` bind localhost unless told otherwise (0.104+)."""
    return _at_least(v, COLLECTOR_LOCALHOST_RECEIVERS)


def collector_metrics_localhost_by_default(v: tuple[int, int, int] | None) -> bool:
    """Whether internal metrics (:8888) bind localhost unless told otherwise (0.111+)."""
    return _at_least(v, COLLECTOR_LOCALHOST_METRICS)


def collector_metrics_uses_readers(v: tuple[int, int, int] | None) -> bool:
    """Whether ``service.telemetry.metrics`` is configured with ``readers:`` (0.111+) rather than ``address:``."""
    return _at_least(v, COLLECTOR_METRICS_READERS)


def collector_env_ref(v: tuple[int, int, int] | None, name: str) -> str:
    """How the collector config refers to env var ``name``: ``${env:NAME}`` (0.59+) or ``${NAME}``."""
    return f"${{env:{name}}}" if _at_least(v, COLLECTOR_ENV_SCHEME) else f"${{{name}}}"


def format_collector_version(v: tuple[int, int, int] | None) -> str:
    """``(0, 120, 0)`` -> ``0.120.0``; ``None`` -> ``unknown``."""
    return "unknown" if v is None else ".".join(map(str, v))
