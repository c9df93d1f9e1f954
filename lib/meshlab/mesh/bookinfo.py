"""The Bookinfo apps by image: productpage, details, reviews v1/v2/v3 and ratings.

productpage serves the HTML page (``<title>Simple Bookstore App</title>``) and calls details and
reviews; reviews v2/v3 call ratings, v1 does not. Each app forwards the trace headers the real
one forwards. With the ``app-drops-trace-headers`` fault the reviews app forwards none of them,
so its ratings calls start new traces, as a real app bug would. ``install_fault_hooks`` deploys
Bookinfo into ``default`` for the ``pods-predate-injection`` fault, from the lab's own copy of
Istio's public manifest.
"""

from __future__ import annotations

import html
import json
import re
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from meshlab.faults import Fault
from meshlab.mesh.podnet import call, has_sidecar_container
from meshlab.mesh.transport import Request, Response, serve, shutdown
from meshlab.runtime.container import Container, ContainerContext, ContainerCrash

if TYPE_CHECKING:
    from meshlab.context import LabContext

TRACE_HEADERS = (
    "x-request-id", "x-ot-span-context", "x-datadog-trace-id", "x-datadog-parent-id",
    "x-datadog-sampling-priority", "traceparent", "tracestate", "x-cloud-trace-context", "grpc-trace-bin",
    "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags", "sw8",
)
APP_HEADERS = ("end-user", "user-agent", "cookie", "authorization", "jwt")  # what Bookinfo forwards besides tracing
DROP_FAULT = Fault.APP_DROPS_TRACE_HEADERS
PREDATE_FAULT = Fault.PODS_PREDATE_INJECTION
MANIFEST = Path(__file__).with_name("bookinfo.yaml")
_IMAGE_RE = re.compile(r"examples-bookinfo-([a-z]+)-(v[0-9a-z-]+)")

DETAILS = {"id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback", "pages": 200,
           "publisher": "PublisherA", "language": "English", "ISBN-10": "1234567890", "ISBN-13": "123-1234567890"}
REVIEWS = [("Reviewer1", "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"),
           ("Reviewer2", "Absolutely fun and entertaining. The play lacks thematic depth when compared to other "
                         "plays by Shakespeare.")]
RATINGS = {"Reviewer1": 5, "Reviewer2": 4}


def parse_image(image: str) -> tuple[str, str]:
    """``docker.io/istio/examples-bookinfo-reviews-v2:1.20.1`` → ``("reviews", "v2")``."""
    m = _IMAGE_RE.search(image)
    return (m.group(1), m.group(2)) if m else ("unknown", "v1")


def forwarded(headers: dict[str, str], drop_trace: bool = False) -> dict[str, str]:
    """The headers an app propagates to the services it calls."""
    names = APP_HEADERS if drop_trace else TRACE_HEADERS + APP_HEADERS
    return {k: headers[k] for k in names if k in headers}


def _json(status: int, obj: Any) -> Response:
    return Response(status, json.dumps(obj).encode(), [("content-type", "application/json")])


def _html(status: int, text: str) -> Response:
    return Response(status, text.encode(), [("content-type", "text/html; charset=utf-8")])


class BookinfoApp(Container):
    """One Bookinfo app container, chosen by its image name."""

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        self.app, self.version = parse_image(ctx.image)
        ports = [int(p["containerPort"]) for p in ctx.ports() if p.get("containerPort")]
        self.port = ports[0] if ports else 9080
        self.net = ctx.lab.pod_nets.get(ctx.pod_ip)
        self._server: ThreadingHTTPServer | None = None
        self._handler = self.handle

    def start(self) -> None:
        self.net.apps[self.port] = self._handler
        if not has_sidecar_container(self.ctx.pod):
            try:
                self._server = serve(self.ctx.pod_ip, self.port, self._handler, f"{self.app}-{self.ctx.pod_name}")
            except OSError as err:
                self.net.apps.pop(self.port, None)
                raise ContainerCrash(f"listen tcp {self.ctx.pod_ip}:{self.port}: bind: {err.strerror}") from err
        self.ctx.log(f"{self.app} {self.version} listening on port {self.port}")

    def stop(self) -> None:
        if self.net.apps.get(self.port) is self._handler:
            self.net.apps.pop(self.port, None)
        if self._server is not None:
            shutdown(self._server)
            self._server = None

    def ready(self) -> bool:
        return self.net.apps.get(self.port) is self._handler

    # -- outbound -------------------------------------------------------------------------------
    def _target(self, name: str) -> tuple[str, int]:
        env = self.ctx.env
        host = env.get(f"{name.upper()}_HOSTNAME", name)
        domain = env.get("SERVICES_DOMAIN")
        if domain and "." not in host:
            host = f"{host}.{domain}"
        return host, int(env.get(f"{name.upper()}_SERVICE_PORT", "9080"))

    def _call(self, name: str, path: str, headers: dict[str, str]) -> tuple[int, Any]:
        host, port = self._target(name)
        drop = self.app == "reviews" and self.ctx.lab.faults.active(DROP_FAULT)
        try:
            resp = call(self.ctx.lab, self.ctx.pod_ip, self.ctx.namespace, host, port, "GET", path,
                        forwarded(headers, drop))
        except OSError as err:
            self.ctx.log(f"error calling {name}: {err}")
            return 0, None
        try:
            return resp.status, json.loads(resp.body or b"null")
        except ValueError:
            return resp.status, None

    # -- inbound ---------------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Serve one request for this app."""
        path = req.path.split("?", 1)[0]
        if path == "/health":
            return _json(200, {"status": f"{self.app.capitalize()} is healthy"})
        handler = getattr(self, f"_{self.app}", None)
        if handler is None:
            return _json(404, {"error": "not found"})
        return handler(req, path)

    def _details(self, req: Request, path: str) -> Response:
        m = re.fullmatch(r"/details/(\d+)", path)
        if not m:
            return _json(404, {"error": "please provide numeric product id"})
        return _json(200, {**DETAILS, "id": int(m.group(1))})

    def _ratings(self, req: Request, path: str) -> Response:
        m = re.fullmatch(r"/ratings/(\d+)", path)
        if not m:
            return _json(400, {"error": "please provide numeric product ID"})
        return _json(200, {"id": int(m.group(1)), "ratings": RATINGS})

    def _reviews(self, req: Request, path: str) -> Response:
        m = re.fullmatch(r"/reviews/(\d+)", path)
        if not m:
            return _json(404, {"error": "not found"})
        pid = int(m.group(1))
        reviews: list[dict[str, Any]] = [{"reviewer": r, "text": t} for r, t in REVIEWS]
        if self.version != "v1":
            status, body = self._call("ratings", f"/ratings/{pid}", req.headers)
            color = "black" if self.version == "v2" else "red"
            ratings = (body or {}).get("ratings") if status == 200 else None
            for r in reviews:
                if ratings:
                    r["rating"] = {"stars": ratings.get(r["reviewer"], 0), "color": color}
                else:
                    r["rating"] = {"error": "Ratings service is currently unavailable"}
        return _json(200, {"id": str(pid), "podname": self.ctx.pod_name, "clustername": "null", "reviews": reviews})

    def _productpage(self, req: Request, path: str) -> Response:
        if path in ("/", "/index.html"):
            return _html(200, "<html><head><title>Simple Bookstore App</title></head><body>"
                              "<a href=\"/productpage?u=normal\">Normal user</a></body></html>")
        if path == "/productpage":
            return self._page(req)
        if path.startswith("/static/"):
            kind = "text/css" if path.endswith(".css") else "application/javascript"
            return Response(200, b"/* bookinfo static */\n", [("content-type", kind)])
        if path in ("/login", "/logout"):
            return Response(302, b"", [("location", "/productpage")])
        if path == "/api/v1/products":
            return _json(200, [{"id": 0, "title": "The Comedy of Errors",
                                "descriptionHtml": "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">"
                                                   "Wikipedia Summary</a>"}])
        m = re.fullmatch(r"/api/v1/products/(\d+)(/reviews|/ratings)?", path)
        if m:
            sub = m.group(2)
            if sub is None:
                status, body = self._call("details", f"/details/{m.group(1)}", req.headers)
            elif sub == "/reviews":
                status, body = self._call("reviews", f"/reviews/{m.group(1)}", req.headers)
            else:
                status, body = self._call("ratings", f"/ratings/{m.group(1)}", req.headers)
            return _json(status or 503, body if body is not None else {"error": f"{sub or 'details'} unavailable"})
        return _html(404, "<html><body><h1>Not Found</h1></body></html>")

    def _page(self, req: Request) -> Response:
        d_status, details = self._call("details", "/details/0", req.headers)
        r_status, reviews = self._call("reviews", "/reviews/0", req.headers)
        parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Simple Bookstore App</title>",
                 "<link rel=\"stylesheet\" href=\"static/bootstrap/css/bootstrap.min.css\"></head><body>",
                 "<h3>The Comedy of Errors</h3>"]
        if d_status == 200 and details:
            parts.append("<h4>Book Details</h4><dl>")
            parts += [f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in details.items()]
            parts.append("</dl>")
        else:
            parts.append("<h4>Error fetching product details!</h4><p>Sorry, product details are currently "
                         "unavailable for this book.</p>")
        parts.append(reviews_html(reviews if r_status == 200 else None, reviews))
        parts.append("</body></html>")
        return _html(200, "".join(parts))


_STAR = ('<svg id="glyphicon glyphicon-star" class="h-5 w-5 flex-none" viewBox="0 0 20 20" fill="currentColor" '
         'aria-hidden="true"><path fill-rule="evenodd" d="M10.868 2.884c-.321-.772-1.415-.772-1.736 0l-1.83 '
         '4.401-4.753.381c-.833.067-1.171 1.107-.536 1.651l3.62 3.102-1.106 4.637c-.194.813.691 1.456 1.405 1.02L10 '
         '15.591l4.069 2.485c.713.436 1.598-.207 1.404-1.02l-1.106-4.637 3.62-3.102c.635-.544.297-1.584-.536-1.65l'
         '-4.752-.382-1.831-4.401z" clip-rule="evenodd" /></svg>')
_EMPTY_STAR = ('<svg xmlns="http://www.w3.org/2000/svg" fill="none" viewBox="0 0 24 24" stroke-width="1.5" '
               'stroke="currentColor" class="h-5 w-5 flex-none"><path stroke-linecap="round" '
               'stroke-linejoin="round" d="M11.48 3.499a.562.562 0 0 1 1.04 0l2.125 5.111a.563.563 0 0 0 .475.345l'
               '5.518.442c.499.04.701.663.321.988l-4.204 3.602a.563.563 0 0 0-.182.557l1.285 5.385a.562.562 0 0 1-.84'
               '.61l-4.725-2.885a.562.562 0 0 0-.586 0L6.982 20.54a.562.562 0 0 1-.84-.61l1.285-5.386a.562.562 0 0 0'
               '-.182-.557l-4.204-3.602a.562.562 0 0 1 .321-.988l5.518-.442a.563.563 0 0 0 .475-.345L11.48 3.5Z" />'
               '</svg>')


def reviews_html(reviews: dict[str, Any] | None, error_body: Any = None) -> str:
    """The reviews part of productpage, as ``templates/productpage.html`` (istio/istio 1.25) renders it: per
    review the rating's filled stars in ``text-<color>-500`` (black from reviews v2, red from v3, none from v1)
    and empty stars up to five, or the rating's error; the quote; the reviewer; the pod that served it.

    >>> reviews_html({"podname": "p", "clustername": "null", "reviews": []}).count("glyphicon-star")
    0
    """
    if not reviews:
        out = '<p class="text-2xl text-red-500">Error fetching product reviews</p>'
        if isinstance(error_body, dict) and error_body.get("error"):
            out += f'<p class="text-lg text-gray-600">{html.escape(str(error_body["error"]))}</p>'
        return out
    parts = ['<h4 class="text-3xl font-semibold">Book Reviews</h4><div class="flex flex-col md:flex-row">']
    for r in reviews.get("reviews", []):
        parts.append('<section class="px-6 py-12 sm:py-8 lg:px-8"><div class="mx-auto max-w-2xl">')
        rating = r.get("rating") or {}
        if rating.get("stars"):
            n = int(rating["stars"])
            parts.append(f'<div class="flex gap-x-1 text-{html.escape(str(rating.get("color", "")))}-500">'
                         + _STAR * n + _EMPTY_STAR * (5 - n) + "</div>")
        elif rating.get("error"):
            parts.append(f'<p class="text-red-500">{html.escape(str(rating["error"]))}</p>')
        served = html.escape(str(reviews.get("podname", "")))
        if reviews.get("clustername", "null") != "null":
            served += f" on cluster <div>{html.escape(str(reviews['clustername']))}</div>"
        parts.append('<blockquote class="mt-10 text-xl font-semibold leading-8 tracking-tight text-gray-900 '
                     f'sm:text-2xl sm:leading-9"><p>"{html.escape(str(r.get("text", "")))}"</p></blockquote>'
                     '<div class="mt-4 flex items-center gap-x-6"><img class="h-16 w-16 rounded-full bg-gray-50" '
                     'src="/static/img/izzy.png" alt="Izzy"><div class="text-sm leading-6">'
                     f'<div class="font-semibold text-gray-900">{html.escape(str(r.get("reviewer", "")))}</div>'
                     f'<div class="mt-0.5 text-gray-600 font-mono">Reviews served by: {served}</div></div></div>'
                     "</section>")
    parts.append("</div>")
    return "".join(parts)


# -- pods-predate-injection -------------------------------------------------------------------------
_KEYS = {"Service": "services", "ServiceAccount": "serviceaccounts", "Deployment": "deployments.apps"}


def bookinfo_objects(namespace: str = "default") -> list[tuple[str, dict]]:
    """``(store key, object)`` for every object of the lab's copy of Istio's Bookinfo manifest."""
    out = []
    for doc in yaml.safe_load_all(MANIFEST.read_text()):
        if not doc or doc.get("kind") not in _KEYS:
            continue
        doc.setdefault("metadata", {})["namespace"] = namespace
        out.append((_KEYS[doc["kind"]], doc))
    return out


def deploy_bookinfo(lab: LabContext, namespace: str = "default") -> int:
    """Create the Bookinfo objects that do not exist yet in ``namespace``; returns how many were created."""
    created = 0
    for key, obj in bookinfo_objects(namespace):
        if lab.store.get(key, namespace, obj["metadata"]["name"]) is None:
            try:
                lab.store.create(key, obj)
                created += 1
            except Exception:  # created meanwhile by someone else: fine
                continue
    return created


def install_fault_hooks(lab: LabContext) -> None:
    """Deploy Bookinfo when ``pods-predate-injection`` is active now or set later (call once at lab start)."""
    if lab.faults.active(PREDATE_FAULT):
        deploy_bookinfo(lab)

    def on_change(name: Fault, on: bool) -> None:
        if name is PREDATE_FAULT and on:
            deploy_bookinfo(lab)

    lab.faults.on_change(on_change)
