"""``meshlab.testing``: the pytest plugin for tests against the lab (registered as ``pytest11`` in pyproject).

It holds what tests share, so no test imports helpers from a conftest:

- ``RunningLab``, ``start_lab`` and ``stop_lab``: a lab daemon started with ``python -m meshlab up`` into a
  state directory, with its kubeconfig, ``istioctl``, ``kubectl`` and ``python -m meshlab`` at hand;
- ``eventually``: the one polling helper; it returns the first truthy value and raises at its deadline;
- ``MiniLab``: the lab's parts (store, network, faults, per-lab registries) composed in process, without the
  daemon or the controllers; it implements ``context.LabContext`` as ``lab.Lab`` does, so it cannot drift;
- ``deployment``: a Deployment manifest for tests that need a workload.

Fixtures: ``lab`` (one lab per test session) and ``namespace`` (a fresh namespace per test, then deleted).

Example::

    def test_pods_come_up(lab: RunningLab, namespace: str) -> None:
        lab.kubectl("-n", namespace, "apply", "-f", "-", stdin=json.dumps(deployment("web")))
        eventually(lambda: "Running" in lab.kubectl_text("-n", namespace, "get", "pods"), what="a running pod")
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from meshlab.context import LabConfig

if TYPE_CHECKING:
    from meshlab.faults import Faults
    from meshlab.mesh.istiod import Istiods
    from meshlab.mesh.podnet import PodNets
    from meshlab.mesh.sampling import IdGenerator
    from meshlab.network import Network
    from meshlab.resources import Registry
    from meshlab.runtime.container import Container
    from meshlab.store import Store

READY_DELAY = "0.1"
TOKEN_ENV = "MESHLAB_BACKEND_TOKEN"  # the lab's backend reads the token it accepts from here at ``up``
KUBECTL = os.environ.get("KUBECTL", "kubectl")

T = TypeVar("T")


class PortForward:
    """A background ``kubectl port-forward``: its local ports once it prints "Forwarding from", its stderr."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        import queue
        import threading

        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        out, err = self.proc.stdout, self.proc.stderr
        assert out is not None and err is not None
        threading.Thread(target=lambda: list(map(self.lines.put, out)), daemon=True).start()
        threading.Thread(target=lambda: list(map(self.stderr.append, err)), daemon=True).start()

    def ports(self, n: int, timeout: float = 60.0) -> list[int]:
        """The first ``n`` local ports kubectl listens on (127.0.0.1); AssertionError with its stderr if none come."""
        import queue
        import re

        found: list[int] = []
        while len(found) < n:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no 'Forwarding from' from kubectl: {''.join(self.stderr)}") from None
            m = re.match(r"Forwarding from 127\.0\.0\.1:(\d+) ->", line)
            if m:
                found.append(int(m.group(1)))
        return found

    def stop(self) -> None:
        """Terminate kubectl and wait for it."""
        self.proc.terminate()
        self.proc.wait(timeout=10)


def eventually(fn: Callable[[], T], timeout: float = 60.0, interval: float = 0.05, what: str = "") -> T:
    """Poll ``fn`` until it returns a truthy value and return it; raise AssertionError at the deadline.

    The deadline is generous on purpose: the poll returns as soon as the condition holds, and a loaded
    two-core machine can take many seconds to roll out pods the lab's controllers create one by one.

    >>> eventually(lambda: 42)
    42
    >>> eventually(lambda: 0, timeout=0.01, what="zero to turn true")
    Traceback (most recent call last):
    AssertionError: timed out after 0.01s waiting for zero to turn true; last value 0
    """
    deadline = time.monotonic() + timeout
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}; last value {last!r}")
        time.sleep(interval)


def deployment(name: str, image: str = "meshlab/echo", port: int = 8080, replicas: int = 1,
               labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A Deployment manifest (dict) running ``image`` with one container port.

    >>> deployment("web")["spec"]["template"]["spec"]["containers"][0]["image"]
    'meshlab/echo'
    """
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [{"name": name, "image": image,
                                                       "ports": [{"name": "http", "containerPort": port}]}]}}},
    }


# -- a lab daemon -------------------------------------------------------------------------------------------------
@dataclass
class RunningLab:
    """A lab started for the tests: its state dir, kubeconfig, istioctl and status.json."""

    state_dir: Path
    kubeconfig: Path
    istioctl: Path
    status: dict[str, Any]
    cwd: Path | None = None
    backend_token: str | None = None  # the token its backend accepts (OTLP and query APIs), when known
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """The bearer token of the lab's kubeconfig."""
        import yaml

        return str(yaml.safe_load(self.kubeconfig.read_text())["users"][0]["user"]["token"])

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this lab (one per lab, reused)."""
        if "api" not in self._clients:
            from kubernetes import config

            self._clients["api"] = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self._clients["api"]

    def dynamic_client(self) -> Any:
        """A ``DynamicClient`` with a discovery cache file of this lab's own."""
        if "dyn" not in self._clients:
            from kubernetes.dynamic import DynamicClient

            self._clients["dyn"] = DynamicClient(self.api_client(),
                                                 cache_file=str(self.state_dir / "discovery-cache.json"))
        return self._clients["dyn"]

    @property
    def kube(self) -> Any:
        """The kit's ``meshtrace.kube.Kube`` on this lab (one per lab, reused)."""
        if "kube" not in self._clients:
            from meshtrace.kube import connect

            self._clients["kube"] = connect(self.kubeconfig, "meshlab")
        return self._clients["kube"]

    def env(self) -> dict[str, str]:
        """Process environment pointing kubectl and istioctl at this lab."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run kubectl against the lab; with ``check``, a non-zero exit fails the test with its output."""
        res = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), *args], input=stdin,
                             capture_output=True, text=True, env=self.env(), timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}")
        return res

    def port_forward(self, *args: str, env: dict[str, str] | None = None) -> PortForward:
        """``kubectl port-forward *args`` in the background (``stop()`` it); ``ports(n)`` waits for its ports."""
        return PortForward([KUBECTL, "--kubeconfig", str(self.kubeconfig), "port-forward", *args],
                           {**self.env(), **(env or {})})

    def kubectl_text(self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 150) -> str:
        """``kubectl`` and its standard output."""
        return self.kubectl(*args, stdin=stdin, check=check, timeout=timeout).stdout

    def apply(self, *objs: dict[str, Any], ns: str | None = None) -> None:
        """``kubectl apply`` of ``objs`` (into namespace ``ns``)."""
        import yaml

        extra = ["-n", ns] if ns else []
        self.kubectl("apply", "--validate=false", *extra, "-f", "-", stdin=yaml.safe_dump_all(objs))

    def logs(self, ns: str, selector: str, container: str) -> str:
        """Every log line of ``container`` in the pods ``selector`` picks (empty when there is none)."""
        return self.kubectl_text("logs", "-n", ns, "-l", selector, "-c", container, "--tail=-1", check=False)

    def run_istioctl(self, *args: str, stdin: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the lab's ``istioctl``; a non-zero exit fails the test with its output."""
        res = subprocess.run([str(self.istioctl), *args], input=stdin, capture_output=True, text=True,
                             timeout=timeout, env=self.env())
        assert res.returncode == 0, f"istioctl {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}"
        return res

    def overrides(self, *extra: str) -> list[str]:
        """Params overrides that point an environment at this lab (kubeconfig, istioctl, state dir), then ``extra``."""
        return [f"cluster.kubeconfig={self.kubeconfig}", f"cluster.istioctl={self.istioctl}",
                f"lab.state_dir={self.state_dir}", *extra]

    def stage(self, notebook: str, *extra: str, env: str = "lab", run_dir: Path | None = None) -> Any:
        """A notebook's ``meshtrace.runbook.Stage`` on this lab."""
        from meshtrace.runbook import Stage

        return Stage(env, notebook, self.overrides(*extra), run_dir=run_dir)

    def meshlab(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run ``python -m meshlab <args> --state-dir <this lab>``."""
        res = subprocess.run([sys.executable, "-m", "meshlab", *args, "--state-dir", str(self.state_dir)],
                             capture_output=True, text=True, cwd=self.cwd, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"meshlab {' '.join(args)} failed ({res.returncode}):\n{res.stderr}{res.stdout}")
        return res

    def fresh_status(self) -> dict[str, Any]:
        """``status.json`` as the lab writes it now."""
        return dict(json.loads((self.state_dir / "status.json").read_text()))


def start_lab(state_dir: Path, *extra: str, env: dict[str, str] | None = None, cwd: Path | None = None,
              timeout: float = 120) -> RunningLab:
    """``python -m meshlab up`` into ``state_dir`` (``extra`` are more ``up`` flags); returns the running lab.

    ``env`` is the daemon's whole environment (default: this process's), e.g. to give its backend a token.
    """
    res = subprocess.run([sys.executable, "-m", "meshlab", "up", "--state-dir", str(state_dir),
                          "--ready-delay", READY_DELAY, *extra],
                         capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"meshlab up failed:\n{res.stdout}{res.stderr}")
    status = json.loads((state_dir / "status.json").read_text())
    token = (os.environ if env is None else env).get(TOKEN_ENV) or None
    return RunningLab(state_dir, state_dir / "kubeconfig", state_dir / "bin" / "istioctl", status, cwd, token)


def stop_lab(lab: RunningLab) -> None:
    """``python -m meshlab down`` and close the lab's clients."""
    subprocess.run([sys.executable, "-m", "meshlab", "down", "--state-dir", str(lab.state_dir)],
                   capture_output=True, text=True, cwd=lab.cwd, timeout=60)
    for c in lab._clients.values():
        close = getattr(c, "close", None)
        if close:
            close()


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """One lab for the whole session; its backend accepts ``$MESHLAB_BACKEND_TOKEN``, or a token of its own."""
    token = os.environ.get(TOKEN_ENV) or "session-" + uuid.uuid4().hex
    running = start_lab(tmp_path_factory.mktemp("meshlab") / "state", env={**os.environ, TOKEN_ENV: token})
    yield running
    stop_lab(running)


@pytest.fixture
def namespace(lab: RunningLab) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(lab.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


# -- the lab's parts in process -----------------------------------------------------------------------------------
class MiniLab:
    """The lab parts the mesh, the collector and the backend use, composed in process (a ``LabContext``).

    No daemon, no API server, no controllers: a test creates Services, Endpoints and pods in the store and
    starts the containers the runtime would start (``pod``). ``block`` is the loopback block (``127.B.x.y``)
    of its network; pick one away from real labs (they count up from 10).

    >>> mini = MiniLab(block=251)
    >>> mini.istio_version, mini.network.backend_ip
    ('1.25.2', '127.251.0.3')
    """

    def __init__(self, version: str = "1.25.2", block: int = 250, seed: int | None = 42,
                 state_dir: Path | None = None, backend_token_env: str = "MESHLAB_BACKEND_TOKEN",
                 envoy_flush: str = "fast") -> None:
        from meshlab.faults import Faults
        from meshlab.gotime import parse_version
        from meshlab.mesh.istiod import Istiods
        from meshlab.mesh.podnet import PodNets
        from meshlab.mesh.sampling import IdGenerator
        from meshlab.network import Network
        from meshlab.resources import Registry
        from meshlab.store import Store

        self._config = LabConfig(Path(state_dir or "."), istio_version=version, seed=seed,
                                 backend_token_env=backend_token_env, envoy_flush=envoy_flush)
        self._store = Store()
        self._registry = Registry(parse_version(version)[:2])
        self._network = Network(block, self._store, seed=5)
        self._faults = Faults()
        self._ids = IdGenerator(seed)
        self._pod_nets = PodNets()
        self._istiods = Istiods()
        self.containers: list[Container] = []
        self.logs: dict[str, list[str]] = {}
        self.gateway_ip = ""

    # LabContext
    @property
    def config(self) -> LabConfig:
        return self._config

    @property
    def istio_version(self) -> str:
        return self._config.istio_version

    @property
    def state_dir(self) -> Path:
        return self._config.state_dir

    @property
    def store(self) -> Store:
        return self._store

    @property
    def registry(self) -> Registry:
        return self._registry

    @property
    def network(self) -> Network:
        return self._network

    @property
    def faults(self) -> Faults:
        return self._faults

    @property
    def backend_token_sha256(self) -> str | None:
        return None  # the backend reads config.backend_token_env at its start

    @property
    def ids(self) -> IdGenerator:
        return self._ids

    @property
    def pod_nets(self) -> PodNets:
        return self._pod_nets

    @property
    def istiods(self) -> Istiods:
        return self._istiods

    # building a cluster by hand
    def create(self, key: str, obj: dict[str, Any]) -> None:
        """Store ``obj`` under resource ``key`` (``services``, ``pods``, ``telemetries.telemetry.istio.io`` …)."""
        self._store.create(key, obj)

    def service(self, ns: str, name: str, ports: list[dict[str, Any]], selector: dict[str, str] | None) -> None:
        """A Service (selector-less when ``selector`` is None: its Endpoints come from ``endpoints``)."""
        spec: dict[str, Any] = {"ports": ports}
        if selector:
            spec["selector"] = selector
        self.create("services", {"metadata": {"name": name, "namespace": ns}, "spec": spec})

    def endpoints(self, ns: str, name: str, ips: list[str], ports: list[dict[str, Any]]) -> None:
        """The Endpoints of Service ``ns/name``."""
        self.create("endpoints", {"metadata": {"name": name, "namespace": ns},
                                  "subsets": [{"addresses": [{"ip": ip} for ip in ips], "ports": ports}]})

    def pod(self, ns: str, name: str, labels: dict[str, str], containers: list[dict[str, Any]]) -> str:
        """Store a pod and start its containers as the runtime would; returns the pod IP."""
        from meshlab.runtime.container import ContainerContext
        from meshlab.runtime.images import container_class

        ip = self._network.allocate_pod_ip(f"{ns}/{name}")
        pod = {"metadata": {"name": name, "namespace": ns, "labels": labels},
               "spec": {"containers": containers}, "status": {"podIP": ip}}
        self.create("pods", pod)
        for spec in containers:
            log = self.logs.setdefault(f"{ns}/{name}/{spec['name']}", [])
            cls = container_class(spec["image"], spec)
            obj = cls(ContainerContext(lab=self, pod=pod, spec=spec, pod_ip=ip, env=dict(spec.get("envs", {})),
                                       log=log.append, args=list(spec.get("args", []))))
            obj.start()
            self.containers.append(obj)
        return ip

    def flush(self) -> None:
        """Export every buffered span now (synchronously)."""
        for c in self.containers:
            exporter = getattr(c, "exporter", None)
            if exporter is not None:
                exporter.flush()

    def log_text(self, suffix: str) -> str:
        """The log lines of every container whose ``ns/pod/container`` key ends with ``suffix``."""
        return "\n".join(line for k, v in self.logs.items() if k.endswith(suffix) for line in v)

    def stop(self) -> None:
        """Stop every container, the last started first."""
        for c in reversed(self.containers):
            c.stop()


if TYPE_CHECKING:  # the type checker holds the daemon and the double to the one interface
    from meshlab.context import LabContext
    from meshlab.lab import Lab

    def _both_are_lab_contexts(mini: MiniLab, lab: Lab) -> tuple[LabContext, LabContext]:
        return mini, lab
