"""``pods/exec``: a command in a container, over the streams kubectl 1.32 and the Python client use.

The lab runs no processes: a container whose class implements no command (``runtime/commands.py``) is refused
before the upgrade with a Status that says so. One that implements some (Istio's ``curl`` sample runs ``curl``)
gets the upgrade, and its answer comes as the kubelet writes it (``cri/streaming/remotecommand``):

- WebSocket ``v5.channel.k8s.io`` / ``v4.channel.k8s.io`` (kubectl first, the Python client): channel 1 stdout,
  2 stderr, 3 the error channel with a metav1.Status (``Success``; ``NonZeroExitCode`` with the exit code as an
  ``ExitCode`` cause; ``InternalError`` for a command the lab does not run); an empty message on the first
  writable channel once the streams are set up;
- ``Upgrade: SPDY/3.1`` with ``X-Stream-Protocol-Version: v4.channel.k8s.io`` (kubectl's fallback): the client
  opens ``error``, ``stdout``, ``stderr``, ``stdin`` and ``resize`` streams; the same Status on ``error``.
"""

from __future__ import annotations

import json
import shlex
import socket
import threading
from io import BufferedIOBase
from typing import TYPE_CHECKING, Any

from meshlab.apiserver import spdy, wschannel
from meshlab.apiserver.errors import ApiError
from meshlab.apiserver.server import Request, Response
from meshlab.runtime.commands import runner_for

if TYPE_CHECKING:
    from meshlab.apiserver.routing import Api, Target

SPDY_PROTOCOLS = ["v4.channel.k8s.io"]
STREAM_WAIT = 30.0  # seconds the kubelet waits for the client's streams (streamCreationTimeout)


def _container(pod: dict[str, Any], req: Request) -> str:
    names = [c["name"] for c in pod["spec"].get("containers") or []]
    name = req.q("container") or ""
    pod_name = pod["metadata"]["name"]
    if not name:
        if len(names) != 1:
            raise ApiError(400, f"a container name must be specified for pod {pod_name}, choose one of: "
                                f"[{' '.join(names)}]", "BadRequest")
        name = names[0]
    if name not in names:
        raise ApiError(400, f"container {name} is not valid for pod {pod_name}", "BadRequest")
    return name


def status_for(argv: list[str], code: int | None, internal: str | None = None) -> dict[str, Any]:
    """The Status the kubelet writes on the error channel when the command ends (or could not run)."""
    if internal is not None:
        msg = f"error executing command in container: {internal}"
        return {"metadata": {}, "status": "Failure", "message": f"Internal error occurred: {msg}",
                "reason": "InternalError", "details": {"causes": [{"message": msg}]}, "code": 500}
    if not code:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command [{' '.join(argv)}], "
                       f"exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _execute(runner: Any, argv: list[str]) -> tuple[bytes, bytes, dict[str, Any]]:
    from meshlab.runtime.commands import NotImplementedCommand

    try:
        result = runner(argv)
    except NotImplementedCommand as e:
        return b"", b"", status_for(argv, None, str(e))
    return result.stdout, result.stderr, status_for(argv, result.exit_code)


def _websocket(ws: wschannel.WebSocket, runner: Any, argv: list[str], want: dict[str, bool]) -> None:
    first = 1 if want["stdout"] else 2 if want["stderr"] else 3
    wschannel.ChannelWriter(ws, first).open()
    threading.Thread(target=lambda: [None for _ in iter(ws.receive, None)], name="exec-stdin", daemon=True).start()
    out, err, status = _execute(runner, argv)
    if want["stdout"]:
        wschannel.ChannelWriter(ws, 1).write(out)
    if want["stderr"] and not want["tty"]:
        wschannel.ChannelWriter(ws, 2).write(err)
    elif want["tty"]:
        wschannel.ChannelWriter(ws, 1).write(err)
    wschannel.ChannelWriter(ws, 3).write(json.dumps(status, separators=(",", ":")).encode())
    ws.close()


def _spdy(read: Any, write: Any, runner: Any, argv: list[str], want: dict[str, bool]) -> None:
    expected = {"error"} | {k for k in ("stdin", "stdout", "stderr") if want[k]}
    if want["tty"]:
        expected = (expected - {"stderr"}) | {"resize"}
    streams: dict[str, spdy.Stream] = {}
    ready = threading.Event()

    def add(stream: spdy.Stream) -> None:
        streams[stream.header("streamtype")] = stream
        if expected <= set(streams):
            ready.set()

    session = spdy.Session(spdy.Framer(read, write), lambda s: s.header("streamtype") in expected, add)
    reader = threading.Thread(target=session.run, name="exec-spdy", daemon=True)
    reader.start()
    if not ready.wait(STREAM_WAIT):
        return
    out, err, status = _execute(runner, argv)
    if "stdout" in streams:
        streams["stdout"].write(out if "stderr" in streams or not want["tty"] else out + err)
    if "stderr" in streams:
        streams["stderr"].write(err)
    streams["error"].write(json.dumps(status, separators=(",", ":")).encode())
    for s in streams.values():
        s.close()


def serve(api: Api, req: Request, t: Target) -> Response:
    """Answer an exec request: refused before the upgrade unless the container implements commands."""
    api.authorize(req, "create", t)  # kubelet upgrades over GET need create too (AuthorizePodWebsocketUpgradeCreatePermission)
    pod = api.get_or_404(t)
    name = _container(pod, req)
    argv = req.query.get("command") or []
    if not argv:
        raise ApiError(400, "you must specify at least 1 command", "BadRequest")
    want = {k: req.flag(k) for k in ("stdin", "stdout", "stderr", "tty")}
    if not (want["stdin"] or want["stdout"] or want["stderr"]):
        raise ApiError(400, "you must specify at least 1 of stdin, stdout, stderr", "BadRequest")
    ns, pod_name = t.namespace or "default", pod["metadata"]["name"]
    obj = api.lab.runtime.container(ns, pod_name, name)
    if obj is None or (pod.get("status") or {}).get("phase") != "Running":
        raise ApiError(400, f'container not found ("{name}")', "BadRequest")  # the kubelet's answer
    run_command = runner_for(obj)
    if run_command is None:
        raise ApiError(400, f'pods "{pod_name}": exec is not available on this lab: the lab runs no commands in '
                            f"containers (container {name!r} runs no {shlex.join(argv)!r}; only the curl and "
                            "sleep samples and Bookinfo's ratings run curl); read the pod with kubectl logs, or reach it through "
                            "kubectl port-forward or the pod or service proxy", "BadRequest",
                       {"name": pod_name, "kind": "pods"})
    h = req.headers
    if wschannel.is_websocket(h):
        proto = wschannel.choose(h, [wschannel.V5, wschannel.V4])
        if proto is None:
            raise ApiError(400, "unable to upgrade: unable to negotiate protocol: client supports "
                                f"{wschannel.offered(h)}, server supports [{wschannel.V5} {wschannel.V4}]")

        def ws_run(rfile: BufferedIOBase, wfile: BufferedIOBase, sock: socket.socket) -> None:
            _websocket(wschannel.WebSocket(rfile, wfile), run_command, argv, want)
        return Response(101, headers=wschannel.handshake_headers(h, proto), upgrade=ws_run)
    if "upgrade" in h.get("connection", "").lower() and h.get("upgrade", "").lower().startswith("spdy/3.1"):
        offered = [p.strip() for p in h.get("x-stream-protocol-version", "").split(",") if p.strip()]
        proto = next((p for p in offered if p in SPDY_PROTOCOLS), None)
        if proto is None:
            raise ApiError(403, f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                                f"server supports {SPDY_PROTOCOLS}", "Forbidden")
        headers = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", proto)]

        def spdy_run(rfile: BufferedIOBase, wfile: BufferedIOBase, sock: socket.socket) -> None:
            _spdy(rfile.read, wfile.write, run_command, argv, want)
        return Response(101, headers=headers, upgrade=spdy_run)
    raise ApiError(400, "Upgrade request required", "BadRequest")
