"""Istio revisions: which control planes a cluster runs, which tags point at them, and the one the kit uses.

A revision ``<rev>`` has its own istiod Deployment ``istiod-<rev>`` and mesh ConfigMap ``istio-<rev>`` (the
istio-discovery chart names them ``istio{{ if .Values.revision }}-{{ .Values.revision }}{{ end }}``), both
labelled ``istio.io/rev=<rev>``; the default revision is ``istiod`` / ``istio`` with ``istio.io/rev=default``.
A tag (``istioctl tag set <tag> --revision <rev>``) is a MutatingWebhookConfiguration labelled
``istio.io/tag=<tag>`` and ``istio.io/rev=<rev>``: namespaces labelled ``istio.io/rev=<tag>`` get that revision's
sidecar (``istioctl/pkg/tag``). The kit uses ``istio.revision`` from params ("" = the default revision).

>>> Revisions(["canary", "default"], {"prod": "canary"}).resolve("prod")
'canary'
>>> Revisions(["canary", "default"], {"prod": "canary"}).describe()
'revisions: canary, default; tags: prod → canary'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import MeshtraceError

if TYPE_CHECKING:
    from ..kube import Kube

__all__ = ["REV_LABEL", "TAG_LABEL", "RevisionNotInstalled", "Revisions", "find_revisions", "require_revision"]

REV_LABEL = "istio.io/rev"
TAG_LABEL = "istio.io/tag"


class RevisionNotInstalled(MeshtraceError):
    """``istio.revision`` names a revision (or tag) the cluster does not run."""


@dataclass
class Revisions:
    """The revisions found (istiod Deployments' ``istio.io/rev``) and the tags (tag → revision)."""

    revisions: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str | None:
        """The revision ``name`` means (a revision, or a tag's revision; "" = ``default``), None if unknown."""
        name = name or "default"
        if name in self.revisions:
            return name
        target = self.tags.get(name)
        return target if target in self.revisions else None

    def describe(self) -> str:
        """One line: ``revisions: a, b; tags: t → a`` (``no istiod`` when there is none)."""
        text = "revisions: " + (", ".join(self.revisions) or "none (no istiod)")
        if self.tags:
            text += "; tags: " + ", ".join(f"{t} → {r}" for t, r in sorted(self.tags.items()))
        return text


def find_revisions(kube: Kube, namespace: str = "istio-system") -> Revisions:
    """Revisions from the istiod Deployments in ``namespace`` and tags from the injector webhooks' labels."""
    deps = [d for d in kube.list("apps/v1", "Deployment", namespace)
            if d["metadata"]["name"] == "istiod" or d["metadata"]["name"].startswith("istiod-")]
    revs = sorted({(d["metadata"].get("labels") or {}).get(REV_LABEL)
                   or d["metadata"]["name"].removeprefix("istiod").removeprefix("-") or "default" for d in deps})
    try:
        hooks = kube.list("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", label_selector=TAG_LABEL)
    except MeshtraceError:  # no right to list webhooks: the revisions still tell
        hooks = []
    tags = {}
    for h in hooks:
        labels = h["metadata"].get("labels") or {}
        tags[labels[TAG_LABEL]] = labels.get(REV_LABEL) or "default"
    return Revisions(revs, tags)


def require_revision(kube: Kube, revision: str, namespace: str = "istio-system") -> Revisions:
    """The revisions found; raises :class:`RevisionNotInstalled` when ``revision`` (params' ``istio.revision``)
    is not an installed revision. A tag is refused too, naming its revision: the kit reads the revision's own
    ``istiod-<rev>`` and ``istio-<rev>``, which a tag does not have."""
    found = find_revisions(kube, namespace)
    target = found.tags.get(revision) if revision else None
    if revision not in found.revisions and target is not None:
        raise RevisionNotInstalled(
            f"istio.revision {revision!r} is a tag of the revision {target!r}, not a revision: set "
            f"istio.revision={'' if target == 'default' else target} (the kit reads istiod-<rev> and the ConfigMap "
            "istio-<rev>, which only a revision has)")
    if found.resolve(revision) is None:
        name = revision or "default"
        raise RevisionNotInstalled(
            f"Istio revision {name!r} (istio.revision) is not installed in {namespace} ({found.describe()}): "
            + (f"run 02_install_istio with istio.revision={revision} to install it (istioctl install --revision "
               f"{revision})" if revision else "run 02_install_istio to install it")
            + ", or set istio.revision to an installed revision"
            + (f" ({', '.join(r for r in found.revisions if r != 'default') or 'empty for default'})"
               if found.revisions else ""))
    return found
