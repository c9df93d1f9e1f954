"""The lab's ``istioctl``: ``version``, ``install``, ``uninstall``, ``manifest generate``, ``tag``, ``verify-install``.

The state directory's ``bin/istioctl`` wrapper runs ``python -m meshlab.istioctl --lab-version <v> "$@"``.
It emulates istioctl ``<v>`` and talks to the cluster only through a kubeconfig, like the real one:
``-c/--kubeconfig``, ``--context`` and ``KUBECONFIG`` are honoured. ``verify-install`` exists before 1.24
only; from 1.24 the command is unknown, as in the real client.

Example::

    istioctl version -o json
    istioctl install -y -f istio-otel-config.yaml --set meshConfig.enableTracing=true
    istioctl uninstall --purge -y
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from meshlab import gotime
from meshlab.errors import MeshlabError
from meshlab.istioctl.install import (
    COMPONENT_DONE,
    InstallClient,
    InstallError,
    api_error,
    control_plane_versions,
    data_plane_proxies,
    install,
    uninstall,
    wait_available,
)
from meshlab.istioctl.manifest import namespace_of, render_components, render_install
from meshlab.istioctl.operator import (
    IstioOperatorError,
    Version,
    apply_set_flags,
    egress_gateway_enabled,
    ingress_gateway_enabled,
    load_iop_text,
    overlay,
    parse_version,
    pilot_enabled,
    profile_of,
    validate_iop,
    version_text,
)
from meshlab.istioctl.tag import TagError, list_tags, remove_tag, set_tag

DEFAULT_VERSION = "1.25.2"
COMMANDS = ("version", "install", "uninstall", "manifest", "tag", "verify-install")
GLOBAL_FLAGS = {"-c": "kubeconfig", "--kubeconfig": "kubeconfig", "--context": "context",
                "-i": "namespace", "--istioNamespace": "namespace", "--lab-version": "lab_version"}
GO_VERSIONS = {(1, 19): "go1.21.1", (1, 20): "go1.21.4", (1, 21): "go1.22.0", (1, 22): "go1.22.3",
               (1, 23): "go1.23.0", (1, 24): "go1.23.3", (1, 25): "go1.24.1"}


class UsageError(MeshlabError):
    """A command line istioctl would refuse."""


def _out(line: str = "") -> None:
    print(line, flush=True)


def _err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def split_global_flags(argv: list[str]) -> tuple[dict[str, str | None], list[str]]:
    """Take the global flags (anywhere on the line) out of ``argv``; return ``(globals, rest)``."""
    found: dict[str, str | None] = {"kubeconfig": None, "context": None, "namespace": None,
                                    "lab_version": None}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if name in GLOBAL_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"flag needs an argument: {name}")
                value = argv[i + 1]
                i += 1
            found[GLOBAL_FLAGS[name]] = value
        else:
            rest.append(arg)
        i += 1
    return found, rest


def build_info(version: str) -> dict[str, str]:
    """The ``BuildInfo`` fields istioctl prints for a component of ``version``."""
    v = parse_version(version)
    return {
        "version": version,
        "revision": hashlib.sha1(f"istio-{version}".encode()).hexdigest(),
        "golang_version": GO_VERSIONS.get(v[:2], "go1.24.1"),
        "status": "Clean",
        "tag": version,
    }


def _build_info_text(info: dict[str, str]) -> str:
    return (f'version.BuildInfo{{Version:"{info["version"]}", GitRevision:"{info["revision"]}", '
            f'GolangVersion:"{info["golang_version"]}", BuildStatus:"{info["status"]}", GitTag:"{info["tag"]}"}}')


def parse_duration(text: str) -> float:
    """Go duration → seconds. Example: ``parse_duration("5m0s") == 300.0``."""
    try:
        return gotime.parse_duration(text)
    except ValueError:
        raise UsageError(f'invalid duration "{text}"') from None


def _bool_flag(value: str) -> bool:
    if value.lower() in ("true", "1", "t", "yes"):
        return True
    if value.lower() in ("false", "0", "f", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def _parsers() -> dict[str, argparse.ArgumentParser]:
    version = _Parser(prog="istioctl version", add_help=True)
    version.add_argument("-o", "--output", choices=["", "json", "yaml"], default="")
    version.add_argument("--remote", nargs="?", const=True, default=True, type=_bool_flag)
    version.add_argument("-s", "--short", nargs="?", const=True, default=True, type=_bool_flag)
    version.add_argument("-r", "--revision", default="")

    inst = _Parser(prog="istioctl install")
    inst.add_argument("-f", "--filename", action="append", default=[])
    inst.add_argument("-s", "--set", action="append", default=[])
    inst.add_argument("-y", "--skip-confirmation", action="store_true")
    inst.add_argument("--readiness-timeout", default="5m0s")
    inst.add_argument("--dry-run", action="store_true")
    inst.add_argument("--force", action="store_true")
    inst.add_argument("-r", "--revision", default="")
    inst.add_argument("-d", "--manifests", default="")
    inst.add_argument("--verify", action="store_true")

    uninst = _Parser(prog="istioctl uninstall")
    uninst.add_argument("--purge", action="store_true")
    uninst.add_argument("-y", "--skip-confirmation", action="store_true")
    uninst.add_argument("-f", "--filename", action="append", default=[])
    uninst.add_argument("-r", "--revision", default="")
    uninst.add_argument("--dry-run", action="store_true")

    manifest = _Parser(prog="istioctl manifest generate")
    manifest.add_argument("action", choices=["generate"])
    manifest.add_argument("-f", "--filename", action="append", default=[])
    manifest.add_argument("-s", "--set", action="append", default=[])

    tag = _Parser(prog="istioctl tag")
    tag.add_argument("action", choices=["set", "list", "remove"])
    tag.add_argument("tag", nargs="*")
    tag.add_argument("-r", "--revision", default="")
    tag.add_argument("--overwrite", action="store_true")
    tag.add_argument("-y", "--skip-confirmation", action="store_true")
    tag.add_argument("-o", "--output", choices=["table", "json", "yaml"], default="table")

    verify = _Parser(prog="istioctl verify-install")
    verify.add_argument("-f", "--filename", action="append", default=[])
    verify.add_argument("-r", "--revision", default="")
    return {"version": version, "install": inst, "uninstall": uninst, "manifest": manifest, "tag": tag,
            "verify-install": verify}


def read_operator(files: list[str], sets: list[str], version: Version) -> dict[str, Any]:
    """Load, overlay (in order) and validate the IstioOperator from ``-f`` files and ``--set`` flags."""
    iop: dict[str, Any] = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": {}}
    for name in files:
        try:
            text = sys.stdin.read() if name == "-" else open(name, encoding="utf-8").read()
        except OSError as exc:
            raise IstioOperatorError(f"could not read {name}: {exc.strerror}") from exc
        iop = overlay(iop, load_iop_text(text))
    iop = apply_set_flags(iop, sets)
    validate_iop(iop, version)
    return iop


def _confirm(question: str) -> bool:
    _out(f"{question} (y/N) ")
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def cmd_version(args: argparse.Namespace, g: dict[str, Any], version: Version) -> int:
    client_info = build_info(version_text(version))
    result: dict[str, Any] = {"clientVersion": client_info}
    problem = ""
    proxies = []
    if args.remote:
        ns = g["namespace"] or "istio-system"
        try:
            kube = InstallClient.connect(g["kubeconfig"], g["context"])
            planes = control_plane_versions(kube, ns)
            if planes:
                result["meshVersion"] = [
                    {"Component": "istiod", "Revision": rev, "Info": build_info(v)} for rev, v in planes
                ]
                proxies = data_plane_proxies(kube)
                result["dataPlaneVersion"] = [{"ID": p.id, "IstioVersion": p.version} for p in proxies]
            else:
                problem = f'Istio is not present in the cluster: no running Istio pods in namespace "{ns}"'
        except (InstallError, ApiException, OSError) as exc:
            reason = api_error(exc) if isinstance(exc, ApiException) else str(exc)
            problem = f"failed to get the control plane version: {reason}"
        except Exception as exc:  # urllib3 connection errors and the like
            problem = f"failed to get the control plane version: {exc}"
    if problem:
        _err(problem)
    if args.output == "json":
        _out(json.dumps(result, indent=2))
        return 0
    if args.output == "yaml":
        _out(yaml.safe_dump(result, sort_keys=True).rstrip())
        return 0
    if not args.short:
        _out(f"client version: {_build_info_text(client_info)}")
        for mv in result.get("meshVersion", []):
            _out(f"{mv['Component']} version: {_build_info_text(mv['Info'])}")
        for p in proxies:
            _out(f'data plane version: version.ProxyInfo{{ID:"{p.id}", IstioVersion:"{p.version}"}}')
        return 0
    _out(f"client version: {client_info['version']}")
    if "meshVersion" in result:
        _out("control plane version: " + ", ".join(sorted({m["Info"]["version"] for m in result["meshVersion"]})))
        counts: dict[str, int] = {}
        for p in proxies:
            counts[p.version] = counts.get(p.version, 0) + 1
        if counts:
            _out("data plane version: " + ", ".join(f"{v} ({n} proxies)" for v, n in sorted(counts.items())))
        else:
            _out("data plane version: none")
    return 0


def _components_text(iop: dict[str, Any]) -> str:
    names = ["Istio core"]
    if pilot_enabled(iop):
        names.append("Istiod")
    if egress_gateway_enabled(iop):
        names.append("Egress gateways")
    if ingress_gateway_enabled(iop):
        names.append("Ingress gateways")
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + ", and " + names[-1]


def cmd_install(args: argparse.Namespace, g: dict[str, Any], version: Version) -> int:
    sets = list(args.set)
    if args.revision:
        sets.append(f"revision={args.revision}")
    iop = read_operator(args.filename, sets, version)
    timeout = parse_duration(args.readiness_timeout)
    if args.dry_run:  # validated and rendered; nothing is sent to the cluster
        for component, _ in render_components(iop, version):
            _out(COMPONENT_DONE[component])
        _out("✔ Installation complete")
        return 0
    if not args.skip_confirmation:
        question = (f'This will install the Istio {version_text(version)} profile "{profile_of(iop)}" '
                    f"(with components: {_components_text(iop)}) into the cluster. Proceed?")
        if not _confirm(question):
            _out("Cancelled.")
            return 1
    kube = InstallClient.connect(g["kubeconfig"], g["context"])
    install(kube, iop, version, _out, timeout=timeout)
    return 0


def cmd_uninstall(args: argparse.Namespace, g: dict[str, Any], version: Version) -> int:
    if not (args.purge or args.filename or args.revision):
        raise UsageError("at least one of the --revision (or --set revision=<revision>), --filename or "
                         "--purge flags must be set")
    ns = g["namespace"] or "istio-system"
    if args.filename:
        ns = namespace_of(read_operator(args.filename, [], version))
    if args.dry_run:
        _out("All Istio resources will be pruned from the cluster (dry run)")
        return 0
    if not args.skip_confirmation and not _confirm("All Istio resources will be pruned from the cluster\nProceed?"):
        _out("Cancelled.")
        return 1
    kube = InstallClient.connect(g["kubeconfig"], g["context"])
    uninstall(kube, ns, version, _out, revision=None if args.purge else (args.revision or "default"))
    return 0


def cmd_tag(args: argparse.Namespace, g: dict[str, Any], version: Version) -> int:
    """``istioctl tag set <tag> --revision <rev>``, ``tag list``, ``tag remove <tag>`` (``istioctl/pkg/tag``)."""
    kube = InstallClient.connect(g["kubeconfig"], g["context"])
    ns = g["namespace"] or "istio-system"
    if args.action == "list":
        if args.tag:
            raise UsageError("tag list command does not accept arguments")
        rows = list_tags(kube)
        if args.output != "table":
            data = [{"tag": t.tag, "revision": t.revision, "namespaces": t.namespaces} for t in rows]
            _out(json.dumps(data, indent="\t") if args.output == "json" else yaml.safe_dump(data).rstrip())
        elif not rows:
            _out("No Istio revision tag MutatingWebhookConfigurations to list")
        else:
            width = [max(len(x) for x in col) for col in zip(("TAG", "REVISION"),
                                                              *((t.tag, t.revision) for t in rows), strict=True)]
            _out(f"{'TAG':<{width[0]}} {'REVISION':<{width[1]}} NAMESPACES")
            for t in rows:
                _out(f"{t.tag:<{width[0]}} {t.revision:<{width[1]}} {','.join(t.namespaces)}")
        return 0
    if len(args.tag) != 1:
        raise UsageError(f"must provide a single tag for {'creation' if args.action == 'set' else 'removal'}")
    if args.action == "set":
        set_tag(kube, args.tag[0], args.revision, ns, _out, overwrite=args.overwrite)
    else:
        remove_tag(kube, args.tag[0], _out)
    return 0


def cmd_manifest(args: argparse.Namespace, g: dict[str, Any], version: Version) -> int:
    iop = read_operator(args.filename, list(args.set), version)
    docs = [yaml.safe_dump(obj, sort_keys=False).rstrip() for obj in render_install(iop, version)]
    _out("\n---\n".join(docs))
    return 0


def cmd_verify_install(args: argparse.Namespace, g: dict[str, Any], version: Version) -> int:
    ns = g["namespace"] or "istio-system"
    kube = InstallClient.connect(g["kubeconfig"], g["context"])
    planes = control_plane_versions(kube, ns)
    if not planes:
        raise InstallError(f'could not find any installed Istio control plane in namespace "{ns}"')
    _out(f'{len(planes)} Istio control planes detected, checking --revision "default" only')
    checked = 0
    for name in ("istiod", "istio-egressgateway", "istio-ingressgateway"):
        if kube.get(f"/apis/apps/v1/namespaces/{ns}/deployments/{name}") is None:
            continue
        wait_available(kube, ns, name, time.monotonic() + 10)
        _out(f"✔ Deployment: {name}.{ns} checked successfully")
        checked += 1
    _out(f"Checked {checked} Istio Deployments")
    _out("✔ Istio is installed and verified successfully")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace, dict[str, Any], Version], int]] = {
    "version": cmd_version, "install": cmd_install, "uninstall": cmd_uninstall, "manifest": cmd_manifest,
    "tag": cmd_tag, "verify-install": cmd_verify_install,
}


def main(argv: list[str] | None = None) -> int:
    """Run one istioctl command line; returns the exit code."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    argv = list(sys.argv[1:] if argv is None else argv)
    command = ""
    try:
        g, rest = split_global_flags(argv)
        version = parse_version(g["lab_version"] or DEFAULT_VERSION)
        if not rest or rest[0] in ("-h", "--help", "help"):
            _out("Istio configuration command line utility (lab edition).\n\nAvailable Commands:\n  "
                 + "\n  ".join(_available(version)))
            return 0
        command = rest[0]
        if command not in _available(version):
            _err(f'Error: unknown command "{command}" for "istioctl"')
            _err("Run 'istioctl --help' for usage.")
            return 1
        args = _parsers()[command].parse_args(rest[1:])
        return HANDLERS[command](args, g, version)
    except UsageError as exc:
        _err(f"Error: {exc}")
        return 1
    except IstioOperatorError as exc:
        _err(f"Error: {exc}")
        return 1
    except TagError as exc:
        _err(f"Error: {exc}")
        return 1
    except InstallError as exc:
        if command == "install" and "encountered an error" in str(exc):
            _err(f"✘ {exc}")
            _err("Error: failed to install manifests: errors occurred during operation")
        else:
            _err(f"Error: {exc}")
        return 1
    except ApiException as exc:
        _err(f"Error: {api_error(exc)}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped (``| head``)
        sys.stdout = None  # type: ignore[assignment]
        return 141


def _available(version: Version) -> list[str]:
    return [c for c in COMMANDS if not (c == "verify-install" and version >= (1, 24, 0))]

