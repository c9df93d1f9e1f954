"""``python -m meshlab up|down|status|fault|serve``."""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from meshlab.faults import KNOWN, FaultError, parse

UP_TIMEOUT = 30.0
DOWN_TIMEOUT = 15.0


def _state(args: argparse.Namespace) -> Path:
    return Path(args.state_dir).resolve()


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """status.json of the lab in ``state_dir`` (None if absent or unreadable)."""
    try:
        return json.loads((state_dir / "status.json").read_text())
    except (OSError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _token(state_dir: Path) -> str:
    cfg = yaml.safe_load((state_dir / "kubeconfig").read_text())
    return cfg["users"][0]["user"]["token"]


def _call(state_dir: Path, status: dict[str, Any], method: str, path: str, body: Any = None,
          timeout: float = 5.0) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(status["api_url"] + path, data=data, method=method,
                                 headers={"Authorization": f"Bearer {_token(state_dir)}",
                                          "Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=str(state_dir / "ca.crt"))
    with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
        return json.loads(resp.read() or b"null")


def running(state_dir: Path) -> dict[str, Any] | None:
    """The status of the lab running in ``state_dir`` if its process is alive and its API answers."""
    st = read_status(state_dir)
    if not st or not st.get("ready") or not pid_alive(st.get("pid")):
        return None
    try:
        _call(state_dir, st, "GET", "/version", timeout=3)
    except (OSError, urllib.error.URLError, ValueError, KeyError):
        return None
    return st


def _print_status(st: dict[str, Any]) -> None:
    print(f"meshlab running (pid {st['pid']}), Istio {st['istio_version']}")
    print(f"  state dir:   {st['state_dir']}")
    print(f"  api:         {st['api_url']}")
    print(f"  kubeconfig:  {st.get('kubeconfig')}")
    print(f"  istioctl:    {st.get('istioctl')}")
    print(f"  node ip:     {st['node_ip']}  (NodePorts)")
    b = st.get("backend") or {}
    print(f"  backend:     otlp grpc {b.get('otlp_grpc')}, otlp http {b.get('otlp_http')}, jaeger query "
          f"{b.get('query_url')}, tempo {b.get('tempo_url')}")
    print(f"  faults:      {', '.join(st.get('faults') or []) or 'none'}")
    print(f"  log:         {st.get('log')}")


def cmd_up(args: argparse.Namespace) -> int:
    sd = _state(args)
    st = running(sd)
    if st:
        print(f"meshlab: a lab is already running in {sd} ({st['api_url']})")
        return 0
    try:
        for f in args.fault or []:
            parse(f)
    except FaultError as e:
        print(f"meshlab: {e}", file=sys.stderr)
        return 2
    if not os.environ.get(args.backend_token_env):
        print(f"meshlab: warning: ${args.backend_token_env} is not set, so the lab's backend accepts no token and "
              "every export into it fails. Export it first (any value), and use the same shell for make run or "
              "make jupyter, so the kit sends the token this backend expects.", file=sys.stderr)
    sd.mkdir(parents=True, exist_ok=True)
    (sd / "status.json").unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "meshlab", "serve", "--state-dir", str(sd), "--istio-version", args.istio_version,
           "--backend-token-env", args.backend_token_env, "--ready-delay", str(args.ready_delay),
           "--envoy-flush", args.envoy_flush]
    for f in args.fault or []:
        cmd += ["--fault", f]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.no_lb:
        cmd.append("--no-lb")
    if args.gateway_api_crds:
        cmd.append("--gateway-api-crds")
    cmd += ["--ingress", args.ingress]
    with open(sd / "lab.log", "ab") as logf:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        st = read_status(sd)
        if st and st.get("ready") and st.get("pid") == proc.pid:
            _print_status(st)
            print(f"  export KUBECONFIG={st.get('kubeconfig')}")
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    if proc.poll() is None:
        proc.terminate()
    tail = (sd / "lab.log").read_text(errors="replace").splitlines()[-20:]
    print("meshlab: the lab did not become ready; last lines of lab.log:\n  " + "\n  ".join(tail), file=sys.stderr)
    return 1


def cmd_down(args: argparse.Namespace) -> int:
    sd = _state(args)
    st = read_status(sd)
    if not st or not pid_alive(st.get("pid")):
        (sd / "status.json").unlink(missing_ok=True)
        print(f"meshlab: no lab running in {sd}")
        return 0
    pid = int(st["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + DOWN_TIMEOUT
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    (sd / "status.json").unlink(missing_ok=True)
    print(f"meshlab: stopped the lab in {sd}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    sd = _state(args)
    st = running(sd)
    if args.check_token:  # read-only: 0 when $MESHLAB_BACKEND_TOKEN is the token the lab's backend was started with
        if not st:
            print(f"meshlab: no lab running in {sd}", file=sys.stderr)
            return 1
        raw = os.environ.get(args.backend_token_env, "")
        known = str(st.get("backend_token_sha256") or "")
        if raw and known and hmac.compare_digest(hashlib.sha256(raw.encode()).hexdigest(), known):
            print(f"meshlab: ${args.backend_token_env} is the token the lab's backend accepts")
            return 0
        print(f"meshlab: ${args.backend_token_env} is {'not' if raw else 'unset, not'} the token the lab's backend "
              "was started with", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(st if st else {"running": False, "state_dir": str(sd)}, indent=2))
        return 0 if st else 1
    if not st:
        print(f"meshlab: no lab running in {sd}")
        return 1
    _print_status(st)
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    sd = _state(args)
    st = running(sd)
    if args.action == "list" and not args.name:
        active = set()
        if st:
            active = {f.split("=", 1)[0] for f in _call(sd, st, "GET", "/meshlab/faults")["faults"]}
        for name, text in KNOWN.items():
            print(f"{'*' if name in active else ' '} {name:26} {text}")
        if not st:
            print(f"(no lab running in {sd})")
        return 0
    if not st:
        print(f"meshlab: no lab running in {sd}", file=sys.stderr)
        return 1
    try:
        if args.action == "set":
            parse(args.name or "")
            out = _call(sd, st, "POST", "/meshlab/faults", {"fault": args.name})
        elif args.action == "clear":
            out = _call(sd, st, "DELETE", f"/meshlab/faults/{args.name}")
        else:
            out = _call(sd, st, "GET", "/meshlab/faults")
    except FaultError as e:
        print(f"meshlab: {e}", file=sys.stderr)
        return 2
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("message")
        except ValueError:
            msg = str(e)
        print(f"meshlab: {msg}", file=sys.stderr)
        return 1
    print("active faults: " + (", ".join(out["faults"]) or "none"))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from meshlab.lab import Lab, LabConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    lab = Lab(LabConfig(state_dir=_state(args), istio_version=args.istio_version, faults=list(args.fault or []),
                        seed=args.seed, no_lb=args.no_lb, backend_token_env=args.backend_token_env,
                        ready_delay=args.ready_delay, envoy_flush=args.envoy_flush,
                        gateway_api_crds=args.gateway_api_crds, ingress=args.ingress))
    lab.serve_forever()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m meshlab", description="The embedded lab: a cluster with Istio on loopback.")
    sub = p.add_subparsers(dest="command", required=True)

    def state(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--state-dir", default=".meshlab", help="state directory (default .meshlab)")

    for name in ("up", "serve"):
        sp = sub.add_parser(name, help="start the lab in the background" if name == "up" else argparse.SUPPRESS)
        state(sp)
        sp.add_argument("--istio-version", default="1.25.2")
        sp.add_argument("--fault", action="append", metavar="NAME[=VALUE]", help="activate a fault (repeatable)")
        sp.add_argument("--seed", type=int, default=None)
        sp.add_argument("--no-lb", action="store_true", help="keep LoadBalancer addresses pending")
        sp.add_argument("--backend-token-env", default="MESHLAB_BACKEND_TOKEN",
                        help="environment variable holding the token the trace backend accepts")
        sp.add_argument("--ready-delay", type=float, default=0.3, help="seconds from pod creation to Ready")
        sp.add_argument("--envoy-flush", choices=("fast", "real"), default="fast",
                        help="when proxies export spans: fast (every 0.2 s) or real (Envoy's 5 s or 5 spans)")
        sp.add_argument("--gateway-api-crds", action="store_true",
                        help="a cluster with the Gateway API's standard-channel CRDs (v1.2.1) installed")
        sp.add_argument("--ingress", choices=("istioctl", "helm"), default="istioctl",
                        help="helm: also the Helm gateway chart's istio-ingress in namespace istio-ingress")
    sp = sub.add_parser("down", help="stop the lab")
    state(sp)
    sp = sub.add_parser("status", help="exit 0 while the lab runs; print its paths and URLs")
    state(sp)
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--check-token", action="store_true",
                    help="exit 0 if the token variable holds the token the backend was started with, else 3")
    sp.add_argument("--backend-token-env", default="MESHLAB_BACKEND_TOKEN", help=argparse.SUPPRESS)
    sp = sub.add_parser("fault", help="list, set or clear faults on the running lab")
    state(sp)
    sp.add_argument("action", choices=("list", "set", "clear"))
    sp.add_argument("name", nargs="?", help="NAME or NAME=VALUE")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "fault" and args.action in ("set", "clear") and not args.name:
        print("meshlab: fault set|clear needs a NAME", file=sys.stderr)
        return 2
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "fault": cmd_fault, "serve": cmd_serve}[
        args.command](args)
