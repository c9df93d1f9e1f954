"""Container probes as the kubelet runs them: one worker per (pod, container, probe kind), driven by a shared
scheduler thread, each probe a real connection to the pod's address.

What follows the kubelet's prober:
- a worker starts with the container instance it probes; readiness starts as failure, liveness as success;
- no probe runs before ``initialDelaySeconds`` after the container started; after that one runs at once, then
  every ``periodSeconds`` (the next waits for the previous to finish);
- the result changes only after ``successThreshold`` consecutive successes or ``failureThreshold`` consecutive
  failures; a failed liveness result puts the worker on hold until the container is replaced;
- ``httpGet`` connects to ``host`` or the pod IP, on a port given by number or by the container's port name,
  and succeeds on a status from 200 to 399 (redirects are not followed: a 3xx counts as success);
  ``tcpSocket`` succeeds when the connection opens; ``exec`` cannot run in the lab (containers are Python
  objects, not processes with a filesystem) and always succeeds; ``grpc`` asks the standard health service.

The lab compresses time: periods and initial delays are multiplied by ``TIME_SCALE`` (as its restart back-off
starts at 2 s rather than 10 s). Timeouts are not scaled, so that a slow loopback answer is not a failure a
real cluster would not see.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("meshlab.probes")

TIME_SCALE = 0.2
USER_AGENT = "kube-probe/1.33"

Key = tuple[str, str, str]  # (pod uid, container name, "readiness" | "liveness")


@dataclass(frozen=True)
class ProbeSpec:
    """A probe's handler and timing, with the API server's defaults filled in."""

    handler: dict[str, Any]
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, probe: dict[str, Any], kind: str) -> ProbeSpec:
        """From a container's ``readinessProbe``/``livenessProbe`` (liveness needs ``successThreshold`` 1)."""
        def num(name: str, default: float, least: float) -> float:
            try:
                value = float(probe.get(name) or default)
            except (TypeError, ValueError):
                value = default
            return max(value, least)

        handler = {k: v for k, v in probe.items() if k in ("httpGet", "tcpSocket", "exec", "grpc")}
        success = 1 if kind == "liveness" else int(num("successThreshold", 1, 1))
        return cls(handler, num("initialDelaySeconds", 0, 0), num("periodSeconds", 10, 1),
                   num("timeoutSeconds", 1, 1), success, int(num("failureThreshold", 3, 1)))


def _port(value: Any, container: dict[str, Any]) -> int:
    """A probe port: a number, a numeric string, or the name of one of the container's ports."""
    if isinstance(value, int):
        return value
    text = str(value or "")
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text and p.get("containerPort"):
            return int(p["containerPort"])
    raise ValueError(f"unable to find port {text!r} in container {container.get('name')}")


def run_probe(handler: dict[str, Any], pod_ip: str, container: dict[str, Any], timeout: float) -> tuple[bool, str]:
    """One probe attempt: ``(success, message)``; the message says why it failed, as the kubelet's event does."""
    try:
        if "httpGet" in handler:
            return _http(handler["httpGet"] or {}, pod_ip, container, timeout)
        if "tcpSocket" in handler:
            spec = handler["tcpSocket"] or {}
            host, port = spec.get("host") or pod_ip, _port(spec.get("port"), container)
            with socket.create_connection((host, port), timeout=timeout):
                return True, ""
        if "grpc" in handler:
            return _grpc(handler["grpc"] or {}, pod_ip, timeout)
        if "exec" in handler:
            # The lab cannot run a command inside a container: an exec probe always succeeds.
            return True, ""
    except ValueError as e:
        return False, str(e)
    except (OSError, http.client.HTTPException) as e:
        return False, _dial_error(e, handler, pod_ip, container)
    return False, "probe has no handler"


def _dial_error(err: Exception, handler: dict[str, Any], pod_ip: str, container: dict[str, Any]) -> str:
    """The probe's failure text as the kubelet's: an HTTP probe's is Go's ``net/http`` client error, which names
    the URL (``Get "http://10.0.0.7:8080/healthz": dial tcp …``, ``pkg/probe/http``)."""
    spec = handler.get("httpGet") or handler.get("tcpSocket") or handler.get("grpc") or {}
    port = spec.get("port") if "grpc" in handler else _port(spec.get("port"), container)  # resolved before the dial
    where = f"{spec.get('host') or pod_ip}:{port}"
    get = ""
    if "httpGet" in handler:
        path = str(spec.get("path") or "/")
        get = f'Get "{str(spec.get("scheme") or "HTTP").lower()}://{where}{path if path.startswith("/") else "/" + path}": '
    if isinstance(err, ConnectionRefusedError):
        return f"{get}dial tcp {where}: connect: connection refused"
    if isinstance(err, (socket.timeout, TimeoutError)):
        return (f"{get}context deadline exceeded (Client.Timeout exceeded while awaiting headers)" if get
                else f"dial tcp {where}: i/o timeout")
    return f"{get}dial tcp {where}: {err}"


def _http(spec: dict[str, Any], pod_ip: str, container: dict[str, Any], timeout: float) -> tuple[bool, str]:
    host, port = spec.get("host") or pod_ip, _port(spec.get("port"), container)
    path = str(spec.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    scheme = str(spec.get("scheme") or "HTTP").upper()
    if scheme == "HTTPS":  # the kubelet does not verify the serving certificate
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=ssl._create_unverified_context())  # noqa: S323
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in spec.get("httpHeaders") or []:
        if h.get("name"):
            headers[str(h["name"])] = str(h.get("value", ""))
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read(10 * 1024)
        if 200 <= resp.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {resp.status}"
    finally:
        conn.close()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _grpc(spec: dict[str, Any], pod_ip: str, timeout: float) -> tuple[bool, str]:
    """``grpc.health.v1.Health/Check``; the two tiny messages are encoded by hand (field 1 in each)."""
    import grpc

    target = f"{pod_ip}:{int(spec.get('port', 0))}"
    service = str(spec.get("service") or "").encode()
    request = (b"\x0a" + _varint(len(service)) + service) if service else b""
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            raw: bytes = check(request, timeout=timeout)
        except grpc.RpcError as e:
            return False, f"failed to connect service {target!r} within {timeout:g}s: {e.code()}"
    status = raw[1] if len(raw) >= 2 and raw[0] == 0x08 else 0
    if status == 1:  # SERVING
        return True, ""
    names = {0: "UNKNOWN", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
    return False, f"service unhealthy (responded with {names.get(status, str(status))!r})"


@dataclass
class Worker:
    """Probes one container instance periodically and keeps the result."""

    key: Key
    instance: Any
    spec: ProbeSpec
    pod_ip: str
    container: dict[str, Any]
    on_change: Callable[[Worker], None]
    result: bool = False
    last: bool | None = None
    run: int = 0
    on_hold: bool = False
    stopped: bool = False
    message: str = ""
    probes: int = 0
    on_failure: Callable[[Worker], None] | None = None  # every failed attempt (the kubelet's Unhealthy Event)

    def record(self, ok: bool, message: str) -> bool:
        """Count one attempt; True when the kept result changed."""
        self.probes += 1
        self.message = message
        if ok == self.last:
            self.run += 1
        else:
            self.last, self.run = ok, 1
        threshold = self.spec.success_threshold if ok else self.spec.failure_threshold
        if self.run < threshold:
            return False
        changed = ok != self.result
        self.result = ok
        if not ok and self.key[2] == "liveness":
            self.on_hold, self.run = True, 0
        return changed


class Prober:
    """The kubelet's probe manager: workers scheduled by one thread, probes run on a small pool."""

    def __init__(self, scale: float = TIME_SCALE, max_workers: int = 8) -> None:
        self.scale = scale
        self._cond = threading.Condition()
        self._workers: dict[Key, Worker] = {}
        self._heap: list[tuple[float, int, Worker]] = []
        self._seq = itertools.count()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="prober")
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="prober", daemon=True)
        self._thread.start()

    def ensure(self, key: Key, instance: Any, probe: dict[str, Any], pod_ip: str, container: dict[str, Any],
               started_at: float, on_change: Callable[[Worker], None],
               on_failure: Callable[[Worker], None] | None = None) -> Worker:
        """The worker probing this container instance; a new instance replaces the old worker. ``on_change`` is
        called when the kept result changes, ``on_failure`` after every failed attempt (as the kubelet's prober
        records an ``Unhealthy`` Event for each, ``pkg/kubelet/prober/prober.go``)."""
        with self._cond:
            w = self._workers.get(key)
            if w is not None and w.instance == instance:
                return w
            if w is not None:
                w.stopped = True
            kind = key[2]
            w = Worker(key, instance, ProbeSpec.parse(probe, kind), pod_ip, container, on_change,
                       result=kind == "liveness", on_failure=on_failure)
            self._workers[key] = w
            # ``started_at`` is wall-clock time (what the container status shows); the delay counts from it
            wait = max(0.0, started_at + w.spec.initial_delay * self.scale - time.time())
            self._push(time.monotonic() + wait, w)
            return w

    def get(self, key: Key) -> Worker | None:
        with self._cond:
            return self._workers.get(key)

    def remove(self, key: Key) -> None:
        """Stop probing one container (it stopped running)."""
        with self._cond:
            w = self._workers.pop(key, None)
            if w is not None:
                w.stopped = True

    def remove_pod(self, uid: str) -> None:
        """Stop every worker of a pod."""
        with self._cond:
            for key in [k for k in self._workers if k[0] == uid]:
                self._workers.pop(key).stopped = True

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for w in self._workers.values():
                w.stopped = True
            self._workers.clear()
            self._cond.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _push(self, due: float, w: Worker) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), w))
        self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        due, _, w = heapq.heappop(self._heap)
                        break
                    self._cond.wait(timeout=self._heap[0][0] - now if self._heap else None)
                else:
                    return
            if w.stopped:
                continue
            if w.on_hold:
                self._reschedule(w, due)
                continue
            try:
                self._pool.submit(self._probe, w, due)
            except RuntimeError:  # the pool is shut down: the lab is stopping
                return

    def _probe(self, w: Worker, due: float) -> None:
        try:
            ok, message = run_probe(w.spec.handler, w.pod_ip, w.container, w.spec.timeout)
        except Exception as e:  # noqa: BLE001 - a prober bug is a failed attempt, not a dead scheduler
            log.exception("probe %s failed", w.key)
            ok, message = False, str(e)
        if w.stopped:
            return
        with self._cond:
            changed = w.record(ok, message)
        if not ok and w.on_failure is not None:
            try:
                w.on_failure(w)
            except Exception:
                log.exception("probe failure callback for %s failed", w.key)
        if changed:
            try:
                w.on_change(w)
            except Exception:
                log.exception("probe result callback for %s failed", w.key)
        self._reschedule(w, due)

    def _reschedule(self, w: Worker, due: float) -> None:
        with self._cond:
            if w.stopped or self._closed:
                return
            period = w.spec.period * self.scale
            self._push(max(due + period, time.monotonic()), w)
