"""Revision tags, as ``istioctl tag`` (``istioctl/pkg/tag``) and the install's default tag make them.

A tag is a MutatingWebhookConfiguration ``istio-revision-tag-<tag>`` labelled ``istio.io/tag=<tag>`` and
``istio.io/rev=<revision>``, whose webhooks call that revision's istiod (``istiod-<rev>``) for namespaces
labelled ``istio.io/rev=<tag>``. The ``default`` tag also takes ``istio-injection=enabled`` and
``sidecar.istio.io/inject=true`` (``revision-tags.yaml``), and setting it deactivates the default revision's
own injector webhooks with a never-matching selector (``DeactivateIstioInjectionWebhook``) rather than
deleting them, so that one can switch back.

Example::

    set_tag(kube, "default", "canary", "istio-system", out=print)
    list_tags(kube)        # [TagInfo(tag='default', revision='canary', namespaces=[])]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from meshlab.errors import MeshlabError
from meshlab.istioctl.manifest import REV_LABEL, injector_webhooks, revision_suffix

TAG_LABEL = "istio.io/tag"
DEFAULT_TAG = "default"
MWC_PATH = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"
NEVER_MATCH = {"matchLabels": {"istio.io/deactivated": "never-match"}}
TAG_CREATED = ('Revision tag "{tag}" created, referencing control plane revision "{rev}". To enable injection '
               "using this\nrevision tag, use 'kubectl label namespace <NAMESPACE> istio.io/rev={tag}'")


class TagError(MeshlabError):
    """A tag command istioctl refuses; the message is istioctl's."""


@dataclass
class TagInfo:
    """One row of ``istioctl tag list``."""

    tag: str
    revision: str
    namespaces: list[str] = field(default_factory=list)


def _webhooks(kube: Any, selector: str) -> list[dict[str, Any]]:
    return kube.request("GET", MWC_PATH, query=[("labelSelector", selector)]).get("items") or []


def render_tag(tag: str, revision: str, namespace: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """The ``istio-revision-tag-<tag>`` MutatingWebhookConfiguration pointing ``tag`` at ``revision``."""
    name = f"istio-revision-tag-{tag}" + ("" if namespace == "istio-system" else f"-{namespace}")
    return {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": name, "labels": {TAG_LABEL: tag, REV_LABEL: revision or "default",
                                              "app": "sidecar-injector", "app.kubernetes.io/name": "istiod",
                                              **(labels or {})}},
        "webhooks": injector_webhooks("istiod" + revision_suffix(revision), namespace, tag, legacy=tag == DEFAULT_TAG),
    }


def _deactivate_default_revision(kube: Any) -> None:
    for mwc in _webhooks(kube, f"{REV_LABEL}=default,!{TAG_LABEL}"):
        for hook in mwc.get("webhooks") or []:
            hook["namespaceSelector"] = dict(NEVER_MATCH)
            hook["objectSelector"] = dict(NEVER_MATCH)
        kube.request("PUT", f"{MWC_PATH}/{mwc['metadata']['name']}", body=mwc)


def set_tag(kube: Any, tag: str, revision: str, namespace: str, out: Callable[[str], None],
            overwrite: bool = False, labels: dict[str, str] | None = None, quiet: bool = False) -> dict[str, Any]:
    """Create or move ``tag`` to ``revision`` (``istioctl tag set``); returns the applied webhook configuration."""
    revision = revision or "default"
    if tag != DEFAULT_TAG and not overwrite and _webhooks(kube, f"{REV_LABEL}={tag},!{TAG_LABEL}"):
        raise TagError(f'cannot create revision tag "{tag}": found existing control plane revision with same name')
    canonical = _webhooks(kube, f"{REV_LABEL}={revision},!{TAG_LABEL}")
    if not canonical:
        raise TagError(f'cannot modify tag: cannot find MutatingWebhookConfiguration with revision "{revision}"')
    if len(canonical) > 1:
        raise TagError(f'cannot modify tag: found multiple canonical webhooks with revision "{revision}"')
    if _webhooks(kube, f"{TAG_LABEL}={tag}") and not overwrite:
        raise TagError(f'revision tag "{tag}" already exists, and --overwrite is false')
    ns = ((canonical[0].get("webhooks") or [{}])[0].get("clientConfig") or {}).get("service", {}).get("namespace") \
        or namespace
    obj = render_tag(tag, revision, ns, labels)
    if tag == DEFAULT_TAG:
        _deactivate_default_revision(kube)
    kube.apply(obj)
    if not quiet:
        out(TAG_CREATED.format(tag=tag, rev=revision))
    return obj


def tagged_namespaces(kube: Any, tag: str) -> list[str]:
    """Namespaces labelled ``istio.io/rev=<tag>``."""
    items = kube.request("GET", "/api/v1/namespaces", query=[("labelSelector", f"{REV_LABEL}={tag}")]).get("items")
    return sorted(n["metadata"]["name"] for n in items or [])


def list_tags(kube: Any) -> list[TagInfo]:
    """Every revision tag, sorted by revision then tag (``istioctl tag list``)."""
    rows = []
    for mwc in _webhooks(kube, TAG_LABEL):
        labels = mwc["metadata"].get("labels") or {}
        rows.append(TagInfo(labels[TAG_LABEL], labels.get(REV_LABEL, ""), tagged_namespaces(kube, labels[TAG_LABEL])))
    return sorted(rows, key=lambda t: (t.revision, t.tag))


def remove_tag(kube: Any, tag: str, out: Callable[[str], None]) -> None:
    """Delete the tag's webhook configuration (``istioctl tag remove``)."""
    found = _webhooks(kube, f"{TAG_LABEL}={tag}")
    if not found:
        raise TagError(f'cannot remove tag "{tag}": cannot find MutatingWebhookConfiguration for tag')
    for mwc in found:
        try:
            kube.request("DELETE", f"{MWC_PATH}/{mwc['metadata']['name']}")
        except ApiException as exc:
            raise TagError(f"failed to delete Istio revision tag MutatingConfigurationWebhook: {exc.reason}") from exc
    out(f"Revision tag {tag} removed")
