"""OpenAPI v3 schemas of the served kinds, with descriptions, for ``kubectl explain``.

``/openapi/v3/<group-version>`` holds, under ``components.schemas``, one schema per kind of that group-version
(marked ``x-kubernetes-group-version-kind``, as kubectl's explain template looks them up) and every schema they
reference, named as the real API server names them (``io.k8s.api.core.v1.PodSpec``,
``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``). The types, required fields and descriptions are read from
the installed official Kubernetes Python client's models, which are generated from the real OpenAPI document.
A CRD's kind gets its ``openAPIV3Schema``; a kind without either is an object that keeps unknown fields.

Example::

    doc = openapi.document(api, "apps", "v1")
    doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["replicas"]
    # {"type": "integer", "format": "int32", "description": "Number of desired pods. ..."}
"""

from __future__ import annotations

import copy
import functools
import hashlib
import re
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import discovery

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
META_TYPES = {"ObjectMeta", "ListMeta", "LabelSelector", "LabelSelectorRequirement", "ManagedFieldsEntry",
              "OwnerReference", "Condition", "Status", "StatusDetails", "StatusCause", "DeleteOptions",
              "Preconditions"}
PACKAGES = {"": "core", "apps": "apps", "batch": "batch", "rbac.authorization.k8s.io": "rbac",
            "authentication.k8s.io": "authentication", "authorization.k8s.io": "authorization",
            "admissionregistration.k8s.io": "admissionregistration", "autoscaling": "autoscaling",
            "discovery.k8s.io": "discovery", "networking.k8s.io": "networking", "policy": "policy",
            "coordination.k8s.io": "coordination", "events.k8s.io": "events", "storage.k8s.io": "storage"}
SPECIAL = {"apiextensions.k8s.io": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
           "apiregistration.k8s.io": "io.k8s.kube-aggregator.pkg.apis.apiregistration"}
INT_OR_STRING = {"port", "targetPort", "maxSurge", "maxUnavailable", "minAvailable", "containerPort"}
PRIMITIVES = {"str": {"type": "string"}, "int": {"type": "integer", "format": "int32"}, "bool": {"type": "boolean"},
              "float": {"type": "number", "format": "double"}, "date": {"type": "string", "format": "date"},
              "bytearray": {"type": "string", "format": "byte"}}
METADATA = ("Standard object's metadata. More info: "
            "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
_LIST = re.compile(r"^(?:List|list)\[(.+)\]$")
_DICT = re.compile(r"^(?:Dict\[str, ?(.+)\]|dict\(str, ?(.+)\))$")


def _models() -> Any:
    from kubernetes.client import models

    return models


def _model_class(models: Any, group: str, version: str, kind: str) -> type | None:
    """The client's model of a kind: ``V1Pod``, or with the group's prefix where names clash (``CoreV1Event``)."""
    plain = version[:1].upper() + version[1:] + kind
    prefix = (group.split(".")[0] or "core").capitalize()
    cls = getattr(models, plain, None) or getattr(models, prefix + plain, None)
    return cls if isinstance(cls, type) else None


def _doc(cls: type) -> str:
    """The first paragraph of a model's docstring: its type's description."""
    text = (cls.__doc__ or "").strip()
    para = text.split("\n\n")[0]
    if "openapi_types" in para or "NOTE: This class is auto generated" in para:
        return ""
    return " ".join(line.strip() for line in para.splitlines())


def _field_description(cls: type, attr: str) -> str:
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict) and attr in fields:
        return str(fields[attr].description or "")
    prop = getattr(cls, attr, None)  # older clients: the property's docstring
    text = (getattr(prop, "__doc__", None) or "").split("\n\n")
    return " ".join(text[1].replace("# noqa: E501", "").split()) if len(text) > 2 else ""


def _required(cls: type, attr: str) -> bool:
    fields = getattr(cls, "model_fields", None)
    return bool(isinstance(fields, dict) and attr in fields and fields[attr].is_required())


class Builder:
    """Schemas of model classes, collected with everything they reference."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.schemas: dict[str, dict[str, Any]] = {}
        self.models = _models()

    def name(self, cls_name: str) -> str:
        """The real schema name of a model class (``V1PodSpec`` → ``io.k8s.api.core.v1.PodSpec``)."""
        m = re.match(r"^(?:[A-Z][a-z]+)?(V\d+(?:alpha\d+|beta\d+)?)([A-Z]\w*)$", cls_name)
        version, kind = (m.group(1).lower(), m.group(2)) if m else ("v1", cls_name)
        if kind in META_TYPES:
            return f"{META}.{kind}"
        group = "" if cls_name in core_models() else self.group
        if group in SPECIAL:
            return f"{SPECIAL[group]}.{version}.{kind}"
        pkg = PACKAGES.get(group, group.split(".")[0])
        return f"io.k8s.api.{pkg}.{version}.{kind}"

    def type_schema(self, type_text: str, json_name: str) -> dict[str, Any]:
        if m := _LIST.match(type_text):
            return {"type": "array", "items": self.type_schema(m.group(1), json_name)}
        if m := _DICT.match(type_text):
            return {"type": "object", "additionalProperties": self.type_schema(m.group(1) or m.group(2), json_name)}
        if type_text in PRIMITIVES:
            return dict(PRIMITIVES[type_text])
        if type_text == "datetime":
            self.schemas.setdefault(f"{META}.Time", {"type": "string", "format": "date-time", "description": (
                "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.  Wrappers "
                "are provided for many of the factory methods that the time package offers.")})
            return {"allOf": [{"$ref": f"#/components/schemas/{META}.Time"}]}
        if type_text == "object":
            if json_name in INT_OR_STRING:
                ref = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
                self.schemas.setdefault(ref, {"x-kubernetes-int-or-string": True, "description": (
                    "IntOrString is a type that can hold an int32 or a string.")})
                return {"allOf": [{"$ref": f"#/components/schemas/{ref}"}]}
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        cls = getattr(self.models, type_text, None)
        if cls is None:
            return {"type": "object"}
        return {"allOf": [{"$ref": f"#/components/schemas/{self.add(cls)}"}], "default": {}}

    def add(self, cls: type) -> str:
        """Add ``cls``'s schema (and what it references); its name."""
        name = self.name(cls.__name__)
        if name in self.schemas:
            return name
        schema: dict[str, Any] = {"type": "object"}
        self.schemas[name] = schema
        if desc := _doc(cls):
            schema["description"] = desc
        props: dict[str, Any] = {}
        required: list[str] = []
        attr_map: dict[str, str] = getattr(cls, "attribute_map", {})
        for attr, type_text in getattr(cls, "openapi_types", {}).items():
            json_name = attr_map.get(attr, attr)
            field = self.type_schema(str(type_text), json_name)
            desc = _field_description(cls, attr)
            if not desc and json_name == "metadata" and "api_version" in attr_map:
                desc = METADATA
            if not desc and "allOf" in field:  # a reference the client model leaves undescribed
                target = self.schemas.get(field["allOf"][0]["$ref"].rsplit("/", 1)[1], {})
                desc = target.get("description", "")
            if desc:
                field["description"] = desc
            props[json_name] = field
            if _required(cls, attr):
                required.append(json_name)
        schema["properties"] = props
        if required:
            schema["required"] = required
        return name


@functools.lru_cache(maxsize=1)
def core_models() -> frozenset[str]:
    """The model classes the core group's kinds reach (PodSpec, Container …): named ``io.k8s.api.core.v1``."""
    b = Builder("")
    models = _models()
    for kind in ("Pod", "PodTemplate", "Service", "Endpoints", "ConfigMap", "Secret", "ServiceAccount", "Event",
                 "Namespace", "Node", "ReplicationController"):
        cls = _model_class(models, "", "v1", kind)
        if cls is not None:
            _walk_classes(cls, models, b.schemas)
    return frozenset(b.schemas)


def _walk_classes(cls: type, models: Any, seen: dict[str, Any]) -> None:
    if cls.__name__ in seen:
        return
    seen[cls.__name__] = True
    for type_text in getattr(cls, "openapi_types", {}).values():
        for word in re.findall(r"\w+", str(type_text)):
            sub = getattr(models, word, None)
            if sub is not None:
                _walk_classes(sub, models, seen)


@functools.lru_cache(maxsize=64)
def _model_schemas(group: str, version: str, kinds: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    b = Builder(group)
    for kind in kinds:
        cls = _model_class(b.models, group, version, kind)
        if cls is None:
            continue
        name = b.add(cls)
        b.schemas[name]["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return b.schemas


def document(api: Api, group: str, version: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version, with the schemas of its kinds; None when not served."""
    doc = discovery.openapi_v3_gv(api.registry, group, version)
    if doc is None:
        return None
    kinds = tuple(sorted(r.kind for r in api.registry.in_group_version(group, version)))
    schemas = copy.deepcopy(_model_schemas(group, version, kinds))
    have = {(g["kind"]) for s in schemas.values() for g in s.get("x-kubernetes-group-version-kind", [])}
    for r in api.registry.in_group_version(group, version):
        if r.kind in have:
            continue
        crd = api.store.get("customresourcedefinitions.apiextensions.k8s.io", None, f"{r.plural}.{group}") or {}
        schema: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        for v in (crd.get("spec") or {}).get("versions") or []:
            if v.get("name") == version and (v.get("schema") or {}).get("openAPIV3Schema"):
                schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
        schema["x-kubernetes-group-version-kind"] = [{"group": group, "kind": r.kind, "version": version}]
        prefix = ".".join(reversed(group.split("."))) if group else "io.k8s.api.core"
        schemas[f"{prefix}.{version}.{r.kind}"] = schema
    doc["components"]["schemas"] = schemas
    return doc


def _hash(api: Api, group: str, version: str) -> str:
    """What a group-version's document depends on, hashed: its kinds and their CRDs' resourceVersions (kubectl
    caches each document by the ``hash`` of its URL)."""
    parts = [version, group]
    for r in sorted(api.registry.in_group_version(group, version), key=lambda r: r.kind):
        crd = api.store.get("customresourcedefinitions.apiextensions.k8s.io", None, f"{r.plural}.{group}") or {}
        parts.append(f"{r.kind}:{(crd.get('metadata') or {}).get('resourceVersion', '')}")
    return hashlib.sha512("\n".join(parts).encode()).hexdigest().upper()[:128]


def index(api: Api) -> dict[str, Any]:
    """``/openapi/v3``: each served group-version's document URL, with the hash of its content."""
    out = discovery.openapi_v3_index(api.registry)
    for path, entry in out["paths"].items():
        segs = path.split("/")
        group, version = ("", segs[1]) if segs[0] == "api" else (segs[1], segs[2])
        entry["serverRelativeURL"] = f"/openapi/v3/{path}?hash={_hash(api, group, version)}"
    return out
