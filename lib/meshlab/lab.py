"""The lab daemon's composition root: store, network, API server, controllers, runtime, backend, faults."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshlab import httpheaders
from meshlab.apiserver import Api, HttpServer, admission
from meshlab.apiserver.tls import make_certs
from meshlab.collector import textworker
from meshlab.context import LabConfig
from meshlab.controllers import Controllers
from meshlab.controllers.cluster_shapes import install_shapes
from meshlab.faults import Faults
from meshlab.gotime import parse_version
from meshlab.mesh.istiod import Istiods
from meshlab.mesh.podnet import PodNets
from meshlab.mesh.sampling import IdGenerator
from meshlab.network import API_PORT, Network
from meshlab.node import node_object
from meshlab.resources import Registry
from meshlab.runtime import Runtime
from meshlab.store import Store

if TYPE_CHECKING:
    from meshlab.backend import Backend

log = logging.getLogger("meshlab")

BOOT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
BACKEND_NS, BACKEND_SVC = "meshlab-backend", "otel-backend"
BACKEND_PORTS = (("grpc-otlp", 4317), ("http-otlp", 4318), ("http-query", 16686), ("http-tempo", 3200))


def version_tuple(v: str) -> tuple[int, int]:
    """``"1.25.2"`` → ``(1, 25)``."""
    return parse_version(v)[:2]


__all__ = ["Lab", "LabConfig", "version_tuple"]


class Lab:
    """One running lab, the composition root; implements ``context.LabContext`` for the parts it runs.

    It owns the per-lab registries (``ids``, ``pod_nets``, ``istiods``) next to the store, network and faults.
    """

    def __init__(self, config: LabConfig) -> None:
        self.config = config
        self.state_dir = Path(config.state_dir).resolve()
        self.istio_version = config.istio_version
        self.random = random.Random(config.seed)
        self.ids = IdGenerator(config.seed)
        self.pod_nets = PodNets()
        self.istiods = Istiods()
        self.store = Store()
        self.registry = Registry(version_tuple(config.istio_version))
        self.faults = Faults(config.faults)
        self.token = secrets.token_urlsafe(32)
        raw = os.environ.get(config.backend_token_env, "")
        self.backend_token_sha256: str | None = hashlib.sha256(raw.encode()).hexdigest() if raw else None
        self.network: Network = Network(0, self.store, config.seed)
        self.runtime = Runtime(self)
        self.controllers = Controllers(self)
        self.api = Api(self)
        self.http: HttpServer | None = None
        self.backend: Backend | None = None
        self.stopping = False
        self._stopped = threading.Event()

    # -- paths --------------------------------------------------------------------------------------
    @property
    def kubeconfig_path(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def istioctl_path(self) -> Path:
        return self.state_dir / "bin" / "istioctl"

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.crt"

    @property
    def status_path(self) -> Path:
        return self.state_dir / "status.json"

    @property
    def api_url(self) -> str:
        return f"https://{self.network.api_ip}:{API_PORT}"

    @property
    def block(self) -> int:
        return self.network.block

    @property
    def node_ip(self) -> str:
        return self.network.node_ip

    # -- lifecycle ----------------------------------------------------------------------------------
    def _bind(self) -> None:
        for block in range(10, 255):
            try:
                self.http = HttpServer(self.api, f"127.{block}.0.1", API_PORT, self.token)
            except OSError:
                continue
            self.network.block = block
            return
        raise OSError("no free loopback block 127.B.0.1:6443 for B in 10..254")

    def start(self) -> None:
        """Bind the API, seed the cluster, start controllers and backend, write the state files."""
        httpheaders.install()  # every hop of the lab is HTTP: its header blocks read without the email parser
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._bind()
        assert self.http is not None
        self.certs = make_certs(self.network.api_ip)
        self.http.enable_tls(self.certs.server_context())
        _atomic_write(self.ca_path, self.certs.ca_pem.decode())
        self._bootstrap()
        self.controllers.start()
        install_shapes(self)  # after the controllers start, so that they act on what it creates
        assert self.http is not None
        self.http.start()
        self._start_backend()
        self._install_fault_hooks()
        self.write_kubeconfig()
        self.write_istioctl()
        self.faults.on_change(lambda name, on: self.write_status())
        self.write_status(ready=True)
        log.info("lab ready: api %s block %s istio %s faults %s", self.api_url, self.block, self.istio_version,
                 self.faults.as_list() or "none")

    def _bootstrap(self) -> None:
        ns_res = self.registry.builtin("namespaces")
        for name in (*BOOT_NAMESPACES, BACKEND_NS):
            self.store.create("namespaces", admission.prepare_create(self, ns_res, {"metadata": {"name": name}}, None))
        svc = {"metadata": {"name": BACKEND_SVC, "namespace": BACKEND_NS, "labels": {"app": BACKEND_SVC}},
               "spec": {"type": "ClusterIP",
                        "ports": [{"name": n, "port": p, "targetPort": p, "protocol": "TCP"} for n, p in BACKEND_PORTS]}}
        svc_res = self.registry.builtin("services")
        self.store.create("services", admission.prepare_create(self, svc_res, svc, BACKEND_NS))
        ep = {"apiVersion": "v1", "kind": "Endpoints",
              "metadata": {"name": BACKEND_SVC, "namespace": BACKEND_NS, "labels": {"app": BACKEND_SVC}},
              "subsets": [{"addresses": [{"ip": self.network.backend_ip}],
                           "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in BACKEND_PORTS]}]}
        self.store.create("endpoints", ep)
        kube_svc = {"metadata": {"name": "kubernetes", "namespace": "default",
                                 "labels": {"component": "apiserver", "provider": "kubernetes"}},
                    "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "targetPort": API_PORT}]}}
        self.store.create("services", admission.prepare_create(self, svc_res, kube_svc, "default"))
        self.store.create("nodes", node_object(self.node_ip))
        self.api.bootstrap()

    def _install_fault_hooks(self) -> None:
        """Faults that change what runs in the cluster (e.g. an app installed before the injection label)."""
        from meshlab.mesh.bookinfo import install_fault_hooks

        install_fault_hooks(self)

    def _start_backend(self) -> None:
        from meshlab.backend import Backend

        self.backend = Backend(self)
        self.backend.start()

    def stop(self) -> None:
        """Stop everything (pods' containers included) and remove status.json."""
        if self.stopping:
            return
        self.stopping = True
        log.info("lab stopping")
        self.controllers.stop()
        self.runtime.stop_all()
        if self.backend is not None:
            try:
                self.backend.stop()
            except Exception:
                log.exception("backend stop failed")
        if self.http is not None:
            self.http.stop()
        textworker.shutdown()
        try:
            self.status_path.unlink()
        except FileNotFoundError:
            pass
        self._stopped.set()

    def serve_forever(self) -> None:
        """Start, then run until SIGTERM/SIGINT."""
        done = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        signal.signal(signal.SIGINT, lambda *_: done.set())
        self.start()
        while not done.wait(1.0):
            pass
        self.stop()

    # -- state files --------------------------------------------------------------------------------
    def status(self, ready: bool = True) -> dict[str, Any]:
        b = self.network.backend_ip
        return {
            "pid": os.getpid(), "ready": ready, "api_url": self.api_url, "block": self.block,
            "istio_version": self.istio_version, "node_ip": self.node_ip, "state_dir": str(self.state_dir),
            "faults": self.faults.as_list(),
            "backend": {"otlp_grpc": f"{b}:4317", "otlp_http": f"http://{b}:4318", "query_url": f"http://{b}:16686",
                        "tempo_url": f"http://{b}:3200"},
            "kubeconfig": str(self.kubeconfig_path), "ca": str(self.ca_path), "istioctl": str(self.istioctl_path),
            "log": str(self.state_dir / "lab.log"), "no_lb": self.config.no_lb,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "backend_token_sha256": self.backend_token_sha256,   # a hash only: `status --check-token` compares
        }

    def write_status(self, ready: bool = True) -> None:
        if self.stopping:
            return
        _atomic_write(self.status_path, json.dumps(self.status(ready), indent=2) + "\n")

    def write_kubeconfig(self) -> None:
        text = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: meshlab\n  cluster:\n    server: {self.api_url}\n"
            f"    certificate-authority-data: {base64.b64encode(self.certs.ca_pem).decode()}\n"
            f"users:\n- name: meshlab\n  user:\n    token: {self.token}\n"
            "contexts:\n- name: meshlab\n  context:\n    cluster: meshlab\n    user: meshlab\n    namespace: default\n"
            "current-context: meshlab\npreferences: {}\n"
        )
        _atomic_write(self.kubeconfig_path, text, 0o600)

    def write_istioctl(self) -> None:
        self.istioctl_path.parent.mkdir(parents=True, exist_ok=True)
        text = f"#!/bin/sh\nexec '{sys.executable}' -m meshlab.istioctl --lab-version {self.istio_version} \"$@\"\n"
        _atomic_write(self.istioctl_path, text, 0o755)


def _atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
