"""The ``nginx`` image with its default configuration: port 80, the welcome page at ``/``, nginx's 404 page for
anything else (``/etc/nginx/conf.d/default.conf`` and ``/usr/share/nginx/html`` of the official image)."""

from __future__ import annotations

import time
from email.utils import formatdate
from http.server import ThreadingHTTPServer

from meshlab.mesh.podnet import has_sidecar_container
from meshlab.mesh.transport import Request, Response, serve, shutdown
from meshlab.runtime.container import Container, ContainerContext, ContainerCrash

PORT = 80
DEFAULT_VERSION = "1.27.3"

WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""


def _not_found(version: str) -> str:
    return (f"<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1>"
            f"</center>\r\n<hr><center>nginx/{version}</center>\r\n</body>\r\n</html>\r\n")


class Nginx(Container):
    """Serves nginx's default site on port 80 of the pod (behind the sidecar when the pod has one)."""

    sigterm_exit_code = 0

    def __init__(self, ctx: ContainerContext) -> None:
        super().__init__(ctx)
        tag = ctx.image.rsplit(":", 1)[-1] if ":" in ctx.image.rsplit("/", 1)[-1] else ""
        self.version = tag.split("-")[0] if tag[:1].isdigit() and tag.count(".") == 2 else DEFAULT_VERSION
        self.net = ctx.lab.pod_nets.get(ctx.pod_ip)
        self._server: ThreadingHTTPServer | None = None
        self._started = time.time()

    def handle(self, req: Request) -> Response:
        """One request to the default server."""
        path = req.path.split("?", 1)[0]
        headers = [("Server", f"nginx/{self.version}"), ("Date", formatdate(usegmt=True))]
        if req.method not in ("GET", "HEAD") or path not in ("/", "/index.html"):
            code = 405 if req.method not in ("GET", "HEAD") and path in ("/", "/index.html") else 404
            body = _not_found(self.version) if code == 404 else _not_found(self.version).replace(
                "404 Not Found", "405 Not Allowed")
            return Response(code, body.encode(), [*headers, ("Content-Type", "text/html"),
                                                  ("Content-Length", str(len(body)))])
        stamp = formatdate(self._started, usegmt=True)
        return Response(200, WELCOME.encode(), [*headers, ("Content-Type", "text/html"),
                                                ("Content-Length", str(len(WELCOME))), ("Last-Modified", stamp),
                                                ("ETag", f'"{int(self._started):x}-{len(WELCOME):x}"'),
                                                ("Accept-Ranges", "bytes")])

    def start(self) -> None:
        self.net.apps[PORT] = self.handle
        if not has_sidecar_container(self.ctx.pod):
            try:
                self._server = serve(self.ctx.pod_ip, PORT, self.handle, f"nginx-{self.ctx.pod_name}")
            except PermissionError:
                # the lab's host process may not bind port 80; the container would. It is still reached from
                # inside the pod (port-forward), not at the pod IP.
                self.ctx.log(f"(lab) port {PORT} is served inside the pod only: the lab may not bind it")
            except OSError as err:
                self.net.apps.pop(PORT, None)
                raise ContainerCrash(f"nginx: [emerg] bind() to 0.0.0.0:{PORT} failed "
                                     f"({err.errno}: {err.strerror})") from err
        self.ctx.log("/docker-entrypoint.sh: Configuration complete; ready for start up")
        self.ctx.log(f"nginx/{self.version}: start worker processes")

    def stop(self) -> None:
        if self.net.apps.get(PORT) == self.handle:
            self.net.apps.pop(PORT, None)
        if self._server is not None:
            shutdown(self._server)
            self._server = None

    def ready(self) -> bool:
        return self.net.apps.get(PORT) == self.handle
