"""The resource registry: what the lab's API serves (group, versions, kind, plural, scope, verbs, shortNames)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Resource:
    """One served resource. ``versions`` lists the served versions, the first is preferred."""

    group: str
    versions: tuple[str, ...]
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    min_istio: dict[str, tuple[int, int]] = field(default_factory=dict)
    #: a CRD's additionalPrinterColumns: ``(name, type, jsonPath)``; empty = Name and Age
    printer_columns: tuple[tuple[str, str, str], ...] = ()

    @property
    def key(self) -> str:
        """Store key: ``plural`` for the core group, else ``plural.group``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def api_version(self, version: str | None = None) -> str:
        v = version or self.versions[0]
        return f"{self.group}/{v}" if self.group else v


_CRUD = ALL_VERBS
_ISTIO = ("istio-io",)


def _builtin() -> list[Resource]:
    return [
        Resource("", ("v1",), "Namespace", "namespaces", False, ("ns",), ("status",),
                 ("create", "delete", "get", "list", "patch", "update", "watch")),
        Resource("", ("v1",), "Pod", "pods", True, ("po",),
                 ("log", "status", "proxy", "exec", "attach", "portforward"), _CRUD, ("all",)),
        Resource("", ("v1",), "Service", "services", True, ("svc",), ("proxy", "status"),
                 ("create", "delete", "get", "list", "patch", "update", "watch"), ("all",)),
        Resource("", ("v1",), "Endpoints", "endpoints", True, ("ep",)),
        Resource("", ("v1",), "ConfigMap", "configmaps", True, ("cm",)),
        Resource("", ("v1",), "Secret", "secrets", True),
        Resource("", ("v1",), "ServiceAccount", "serviceaccounts", True, ("sa",), ("token",)),
        Resource("", ("v1",), "Event", "events", True, ("ev",)),
        Resource("apps", ("v1",), "Deployment", "deployments", True, ("deploy",), ("status", "scale"), _CRUD, ("all",)),
        Resource("apps", ("v1",), "ReplicaSet", "replicasets", True, ("rs",), ("status", "scale"), _CRUD, ("all",)),
        Resource("", ("v1",), "Node", "nodes", False, ("no",), ("status",)),
        Resource("", ("v1",), "ReplicationController", "replicationcontrollers", True, ("rc",), ("status", "scale"),
                 _CRUD, ("all",)),
        Resource("apps", ("v1",), "DaemonSet", "daemonsets", True, ("ds",), ("status",), _CRUD, ("all",)),
        Resource("batch", ("v1",), "Job", "jobs", True, (), ("status",), _CRUD, ("all",)),
        Resource("batch", ("v1",), "CronJob", "cronjobs", True, ("cj",), ("status",), _CRUD, ("all",)),
        Resource("apiregistration.k8s.io", ("v1",), "APIService", "apiservices", False, (), ("status",),
                 _CRUD, ("api-extensions",)),
        Resource("rbac.authorization.k8s.io", ("v1",), "Role", "roles", True),
        Resource("rbac.authorization.k8s.io", ("v1",), "ClusterRole", "clusterroles", False),
        Resource("rbac.authorization.k8s.io", ("v1",), "RoleBinding", "rolebindings", True),
        Resource("rbac.authorization.k8s.io", ("v1",), "ClusterRoleBinding", "clusterrolebindings", False),
        Resource("admissionregistration.k8s.io", ("v1",), "MutatingWebhookConfiguration",
                 "mutatingwebhookconfigurations", False),
        Resource("apiextensions.k8s.io", ("v1",), "CustomResourceDefinition", "customresourcedefinitions", False,
                 ("crd", "crds"), ("status",)),
        Resource("authorization.k8s.io", ("v1",), "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
                 (), (), ("create",)),
        Resource("authorization.k8s.io", ("v1",), "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
                 (), (), ("create",)),
        Resource("authentication.k8s.io", ("v1",), "SelfSubjectReview", "selfsubjectreviews", False,
                 (), (), ("create",)),
        Resource("authentication.k8s.io", ("v1",), "TokenReview", "tokenreviews", False, (), (), ("create",)),
        Resource("authorization.k8s.io", ("v1",), "SubjectAccessReview", "subjectaccessreviews", False,
                 (), (), ("create",)),
        Resource("authorization.k8s.io", ("v1",), "LocalSubjectAccessReview", "localsubjectaccessreviews", True,
                 (), (), ("create",)),
        Resource("telemetry.istio.io", ("v1", "v1alpha1"), "Telemetry", "telemetries", True, ("telemetry",), (),
                 _CRUD, _ISTIO, {"v1": (1, 22)}),
        Resource("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "Gateway", "gateways", True, ("gw",), (),
                 _CRUD, _ISTIO + ("networking-istio-io",), {"v1": (1, 22)}),
        Resource("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "VirtualService", "virtualservices", True,
                 ("vs",), (), _CRUD, _ISTIO + ("networking-istio-io",), {"v1": (1, 22)},
                 (("Gateways", "string", ".spec.gateways"), ("Hosts", "string", ".spec.hosts"),
                  ("Age", "date", ".metadata.creationTimestamp"))),
        Resource("install.istio.io", ("v1alpha1",), "IstioOperator", "istiooperators", True, ("iop", "io")),
    ]


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes' version order as a sort key (first = preferred): GA before beta before alpha, higher first,
    then other names alphabetically.

    >>> sorted(["v1alpha3", "v1beta1", "v1", "v2beta1", "foo"], key=version_priority)
    ['v1', 'v2beta1', 'v1beta1', 'v1alpha3', 'foo']
    """
    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (3, 0, 0, version)
    stage = {None: 0, "beta": 1, "alpha": 2}[m.group(2)]
    return (stage, -int(m.group(1)), -int(m.group(3) or 0), "")


class Registry:
    """Lookup of served resources by (group, version, plural) and by kind; CRDs can add more at run time."""

    def __init__(self, istio_version: tuple[int, int] = (1, 25)) -> None:
        self._lock = threading.Lock()
        self.istio_version = istio_version
        self._by_key: dict[str, Resource] = {}
        for r in _builtin():
            self.add(r)
        self._builtin_keys = frozenset(self._by_key)

    def add(self, res: Resource) -> None:
        """Serve ``res`` (replacing a resource with the same key)."""
        with self._lock:
            self._by_key[res.key] = res

    def served_versions(self, res: Resource) -> tuple[str, ...]:
        """The versions served for the lab's Istio version."""
        return tuple(v for v in res.versions if self.istio_version >= res.min_istio.get(v, (0, 0)))

    def all(self) -> list[Resource]:
        with self._lock:
            return list(self._by_key.values())

    def by_key(self, key: str) -> Resource | None:
        with self._lock:
            return self._by_key.get(key)

    def builtin(self, key: str) -> Resource:
        """A resource every lab serves (``pods``, ``services``, ``replicasets.apps`` …); KeyError for others."""
        res = self.by_key(key)
        if res is None:
            raise KeyError(f"no resource {key!r} in the lab's registry")
        return res

    def lookup(self, group: str, version: str, plural: str) -> Resource | None:
        """The resource served at ``/apis/<group>/<version>/<plural>`` (or ``/api/v1/<plural>``)."""
        res = self.by_key(f"{plural}.{group}" if group else plural)
        if res is None or version not in self.served_versions(res):
            return None
        return res

    def by_kind(self, api_version: str, kind: str) -> Resource | None:
        group, _, version = api_version.rpartition("/")
        for r in self.all():
            if r.group == group and r.kind == kind and version in self.served_versions(r):
                return r
        return None

    def groups(self) -> dict[str, list[str]]:
        """``{group: [served versions, preferred first]}`` for every non-core group."""
        out: dict[str, list[str]] = {}
        for r in self.all():
            if not r.group:
                continue
            vs = out.setdefault(r.group, [])
            for v in self.served_versions(r):
                if v not in vs:
                    vs.append(v)
        return out

    def in_group_version(self, group: str, version: str) -> list[Resource]:
        return [r for r in self.all() if r.group == group and version in self.served_versions(r)]

    @staticmethod
    def crd_status(crd: dict, now: str) -> dict:
        """The status the API server gives a served CRD: ``NamesAccepted`` and ``Established`` true,
        ``acceptedNames`` and ``storedVersions``."""
        spec = crd.get("spec") or {}
        names = {k: v for k, v in (spec.get("names") or {}).items()}
        names.setdefault("singular", str(names.get("kind", "")).lower())
        names.setdefault("listKind", f"{names.get('kind', '')}List")
        stored = [v.get("name") for v in spec.get("versions") or [] if v.get("storage")]

        def cond(kind: str, reason: str, message: str) -> dict:
            return {"type": kind, "status": "True", "lastTransitionTime": now, "reason": reason, "message": message}

        return {"acceptedNames": names, "storedVersions": stored,
                "conditions": [cond("NamesAccepted", "NoConflicts", "no conflicts found"),
                               cond("Established", "InitialNamesAccepted", "the initial names have been accepted")]}

    def remove_crd(self, crd: dict) -> None:
        """Stop serving the resource of a deleted CustomResourceDefinition (built-in kinds stay served)."""
        spec = crd.get("spec") or {}
        key = f"{(spec.get('names') or {}).get('plural')}.{spec.get('group')}"
        with self._lock:
            if key not in self._builtin_keys:
                self._by_key.pop(key, None)

    def add_crd(self, crd: dict) -> Resource | None:
        """Serve the resource a CustomResourceDefinition describes (if not already served)."""
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group, plural, kind = spec.get("group"), names.get("plural"), names.get("kind")
        if not (group and plural and kind):
            return None
        key = f"{plural}.{group}"
        if self.by_key(key) is not None:
            return self.by_key(key)
        versions = [v.get("name") for v in spec.get("versions") or [] if v.get("served", True) and v.get("name")]
        if not versions:
            return None
        versions.sort(key=version_priority)
        preferred: dict = next((v for v in spec.get("versions") or [] if v.get("name") == versions[0]), {})
        columns = tuple((str(c.get("name")), str(c.get("type", "string")), str(c.get("jsonPath", "")))
                        for c in preferred.get("additionalPrinterColumns") or [] if c.get("name"))
        res = Resource(group, tuple(versions), kind, plural, spec.get("scope", "Namespaced") == "Namespaced",
                       tuple(names.get("shortNames") or ()), ("status",), _CRUD, tuple(names.get("categories") or ()),
                       {}, columns)
        self.add(res)
        return res
