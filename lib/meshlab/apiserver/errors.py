"""API errors rendered as Kubernetes ``Status`` objects."""

from __future__ import annotations

from typing import Any

from meshlab.errors import MeshlabError

REASONS = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    406: "NotAcceptable", 409: "AlreadyExists", 410: "Expired", 415: "UnsupportedMediaType", 422: "Invalid",
    500: "InternalError", 503: "ServiceUnavailable",
}


DETAIL_ORDER = ("name", "group", "kind", "uid", "causes", "retryAfterSeconds")  # metav1.StatusDetails


class ApiError(MeshlabError):
    """An error the API answers with a Status of ``code``."""

    def __init__(self, code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None,
                 keep_empty_details: bool = False):
        super().__init__(message)
        self.keep_empty_details = keep_empty_details  # a non-nil, empty StatusDetails: ``"details":{}``
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def status(self) -> dict[str, Any]:
        """The Status body, its fields in the order the real API server writes them (metav1.Status), empty
        detail fields left out as Go's ``omitempty`` does.

        >>> list(already_exists("services", "web").status())
        ['kind', 'apiVersion', 'metadata', 'status', 'message', 'reason', 'details', 'code']
        >>> already_exists("services", "web").status()["details"]
        {'name': 'web', 'kind': 'services'}
        """
        out: dict[str, Any] = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason,
        }
        details = {k: v for k, v in (self.details or {}).items() if v not in ("", None, [], {})}
        if details or self.keep_empty_details:
            out["details"] = {k: details[k] for k in DETAIL_ORDER if k in details} | details
        out["code"] = self.code
        return out


def not_found(res_name: str, name: str, group: str = "") -> ApiError:
    qual = f"{res_name}.{group}" if group else res_name
    return ApiError(404, f'{qual} "{name}" not found', "NotFound", {"name": name, "group": group, "kind": res_name})


def already_exists(res_name: str, name: str, group: str = "") -> ApiError:
    qual = f"{res_name}.{group}" if group else res_name
    return ApiError(409, f'{qual} "{name}" already exists', "AlreadyExists",
                    {"name": name, "group": group, "kind": res_name})


def conflict(res_name: str, name: str, group: str = "", why: str = "") -> ApiError:
    qual = f"{res_name}.{group}" if group else res_name
    msg = f'Operation cannot be fulfilled on {qual} "{name}": ' + (
        why or "the object has been modified; please apply your changes to the latest version and try again")
    return ApiError(409, msg, "Conflict", {"name": name, "group": group, "kind": res_name})


def invalid(kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> ApiError:
    """422 with field causes ``[(field, message)]``."""
    text = "; ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(
        422, f'{kind}{"." + group if group else ""} "{name}" is invalid: {text}', "Invalid",
        {"name": name, "group": group, "kind": kind,
         "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes]},
    )
