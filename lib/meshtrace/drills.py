"""Training drills: the lab broken in a known way, the symptom a trainee sees, and a ladder of hints.

A configuration mistake is an environment ``params/drill-<name>.yaml``: the kit renders the mistake. A
cluster condition keeps the correct params (``lab``) and starts the lab with ``--fault <name>``, so the
condition is in place before the runbook runs.

    python -m meshtrace.drills list
    python -m meshtrace.drills show sampling-zero --hints 2   # the trainer reveals hints, level by level
    python -m meshtrace.drills start sampling-zero     # restart the lab, run the runbook with the mistake
    python -m meshtrace.drills start sampling-zero --answers   # the same, with hints and 08's diagnosis shown
    python -m meshtrace.drills check sampling-zero     # 06-07 (+08) on the correct params: exit 0 once fixed
    python -m meshtrace.drills markdown                # the list in notebooks/drills.md

``make drill FAULT=<name>`` (``ANSWERS=1`` for ``--answers``), ``make drill-hint FAULT=<name> LEVEL=<n>`` and
``make drill-check FAULT=<name>`` call these. Starting a drill shows the symptoms only: the checks that did not
pass and what they observed; no hint, no cause, no fix, in the terminal and in ``summary.html``. Checking runs
the correct environment (``lab``) against the running lab, so it passes only once the cluster itself is fixed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .checks import Check
from .errors import MeshtraceError, ParamsError
from .params import load_params, repo_root
from .report_render import for_trainee

CONFIG, CLUSTER = "configuration mistake", "cluster condition"
REFERENCE_ENV = "lab"


@dataclass(frozen=True)
class Drill:
    """One drill: its params environment, what a trainee sees, and three hints from vague to the answer."""

    name: str
    kind: str
    symptom: str
    hints: tuple[str, str, str]
    # notebooks the runbook skips when the drill starts: an app deployed earlier is not re-deployed by 04 (a
    # fresh apply would roll its pods); the namespace only gets the injection label, as an operator does
    skip_deploy: bool = False
    fault_value: str | None = None  # the lab fault's value, e.g. rbac-deny's verb:resource
    reference: str = REFERENCE_ENV  # the correct environment that `check` runs (lab-shop for the shop's drill)

    @property
    def env(self) -> str:
        """The params environment: ``drill-<name>`` for a configuration mistake, else the correct ``lab``."""
        return f"drill-{self.name}" if self.kind == CONFIG else REFERENCE_ENV

    @property
    def fault(self) -> str | None:
        """The lab fault a cluster condition starts the lab with, as ``meshlab up --fault`` takes it."""
        if self.kind != CLUSTER:
            return None
        return self.name + (f"={self.fault_value}" if self.fault_value else "")

    @property
    def where(self) -> str:
        """Where the drill's condition comes from, for people."""
        return f"params/{self.env}.yaml" if self.kind == CONFIG else f"lab fault --fault {self.fault}"


DRILLS: tuple[Drill, ...] = (
    Drill("wrong-service", CONFIG,
          "00 warns about the params; everything installs and traffic gets 200s, but 07 finds no span at the "
          "collector.",
          ("Spans leave the proxies but never arrive: where are they sent?",
           "Compare extensionProviders in the istio ConfigMap with the collector's Service name.",
           "The provider's service FQDN has a typo: set istio.provider.service to "
           "opentelemetry-collector.observability.svc.cluster.local, re-run 02 and 03.")),
    Drill("wrong-port", CONFIG,
          "00 warns about the params; everything installs and traffic gets 200s, but 07 finds no span at the "
          "collector (accepted 0).",
          ("The proxies talk to the right host. Do they knock on the right door?",
           "The provider's port and protocol must match one collector port: gRPC is 4317, HTTP 4318.",
           "The provider sends gRPC to 4318: set istio.provider.port=4317 and re-run 02.")),
    Drill("wrong-protocol", CONFIG,
          "00 warns about the params; everything installs and traffic gets 200s, but no span reaches the "
          "collector.",
          ("Host and port look fine. What language do the two ends speak?",
           "Look at the provider block in the mesh config: is it http: or grpc:, and which port does it use?",
           "OTLP/HTTP is sent to the gRPC port 4317: set istio.provider.protocol=grpc (or port 4318), re-run 02.")),
    Drill("unknown-provider", CONFIG,
          "00 warns about the params; 03 fails its Telemetry provider check and the runbook stops there.",
          ("The Telemetry is there. Does Istio know what it refers to?",
           "Compare the Telemetry's tracing provider name with the names under extensionProviders.",
           "The Telemetry names a provider the mesh config lacks: set telemetry.provider=otel-tracing "
           "(or remove it), re-run 03.")),
    Drill("sampling-zero", CONFIG,
          "00 warns about the params; every install check passes and traffic gets 200s, yet 07 sees no trace at "
          "all.",
          ("Tracing is wired end to end. Is anything actually chosen to be traced?",
           "Read randomSamplingPercentage in the Telemetry (kubectl get telemetry -A -o yaml).",
           "The Telemetry samples 0 %: set telemetry.sampling=100 and re-run 03.")),
    Drill("receiver-localhost", CONFIG,
          "00 warns about the params; the collector is Ready and healthy, but 07 finds no span at the collector.",
          ("The collector runs. Is it listening where the proxies can reach it?",
           "Read the receiver endpoints in the collector's ConfigMap; newer collectors default to localhost.",
           "The OTLP receivers bind localhost: set collector.receiver_host=0.0.0.0, re-run 01 "
           "(it restarts the collector).")),
    Drill("logging-exporter", CONFIG,
          "00 warns about the params; in 01 the collector's pod crash-loops, the wait gives up after its third "
          "restart, and the runbook stops there.",
          ("Why does the collector not stay up? Its own words say why.",
           "kubectl -n observability logs deployment/opentelemetry-collector: which exporter does it reject?",
           "The logging exporter was removed in 0.111: set collector.exporter=debug, re-run 01, then 02-06.")),
    Drill("service-port-name", CONFIG,
          "00 warns about the params; everything installs, the provider's host and port look right, but no span "
          "reaches the collector.",
          ("Istio decides how to talk to a port partly from its Service. Look there.",
           "kubectl -n observability get svc opentelemetry-collector -o yaml: how is port 4317 named?",
           "The gRPC port is not named grpc-…: set collector.grpc_port_name=grpc-otlp, re-run 01.")),
    Drill("port-no-protocol", CONFIG,
          "00 warns about the params; everything installs, the provider's host and port are right and the port "
          "name even says grpc, but no span reaches the collector.",
          ("The name of port 4317 reads well to a person. How does Istio read it?",
           "Istio takes a port's protocol from appProtocol, else from the name's prefix before the first '-': "
           "what is the prefix of otlp-grpc?",
           "Istio sniffs a port without a protocol prefix and sends the gRPC export as HTTP/1.1: set "
           "collector.grpc_port_name=grpc-otlp (or give the port appProtocol: grpc), re-run 01.")),
    Drill("collector-scaled-to-zero", CLUSTER,
          "Everything installs, but 07 finds the collector at 0/0 available and no span from any service.",
          ("Who is supposed to receive the spans, and is it there?",
           "kubectl -n observability get deployment: how many replicas does the collector have?",
           "Someone scaled the collector to 0: kubectl -n observability scale deployment "
           "opentelemetry-collector --replicas=1 (or run 08 with apply_fixes=True).")),
    Drill("pods-predate-injection", CLUSTER,
          "Bookinfo was running before injection was enabled; 07 fails the sidecar check and finds no spans "
          "from the apps.",
          ("Some workloads are not in the mesh. Which ones, and since when?",
           "kubectl get pods -o jsonpath for container names: which pods lack istio-proxy? When were they created?",
           "Pods created before the injection label stay uninjected: kubectl rollout restart deployment -n default "
           "(or run 04 with restart_uninjected=True)."),
          skip_deploy=True),
    Drill("backend-token-rotated", CLUSTER,
          "Spans reach the collector, but 07 fails the backend export check (sent 0, failed many) and the backend "
          "holds no trace.",
          ("The first leg works. What happens on the way out of the collector?",
           "Collector logs and its exporter metrics: what does the backend answer?",
           "The backend rejects the token (it was rotated): fetch the new one, put it in the Secret and restart "
           "the collector. The lab issues the new token into .meshlab/backend-token.rotated (its stand-in for the "
           "provider's console), so 08's fix works as printed: export MESHLAB_BACKEND_TOKEN=\"$(cat "
           ".meshlab/backend-token.rotated)\", write it into the Secret otel-backend-token and kubectl -n "
           "observability rollout restart deployment opentelemetry-collector.")),
    Drill("app-drops-trace-headers", CLUSTER,
          "Spans arrive from every service, but 07 fails traces.whole: many traces are fragments.",
          ("Every service reports. Do their spans belong together?",
           "Look for traces whose root is not the entry point: which hop loses the parent?",
           "An application does not forward trace headers (traceparent, x-b3-*, x-request-id): the app's code "
           "must copy them. In the lab the trainer plays the app team: python -m meshlab fault clear "
           "app-drops-trace-headers.")),
    Drill("rbac-deny", CLUSTER,
          "Everything installs, but 07 fails the Telemetry provider check with HTTP 403 (forbidden).",
          ("The cluster is fine, but what is the kit allowed to see?",
           "Read the observed value of the failed check, and the 'denied' line of 08's evidence: which verb, which resource?",
           "RBAC denies listing telemetries: ask an admin for that verb (kubectl auth can-i list telemetries -A). "
           "In the lab the trainer plays the admin: python -m meshlab fault clear rbac-deny."),
          fault_value="list:telemetries"),
    Drill("shop-no-propagation", CONFIG,
          "The shop (an app of one's own, not Bookinfo) installs, every request gets a 200 and every service "
          "reports spans, but 07 fails traces.whole and traces.propagation: traces fall apart below one service.",
          ("Every service reports. Do all of its calls belong to the request it was serving?",
           "Read the failing traces.propagation row and 07's dependency graph: whose outbound calls start new "
           "traces, and to which services?",
           "catalog does not forward the trace headers (traceparent, tracestate, b3 / x-b3-*, x-request-id) of the "
           "request it serves to its calls to stock and price. The fix is in the app: its Deployment sets "
           "PROPAGATE=false (params/apps/shop-catalog-drops-headers.yaml); apply the shop as shipped "
           "(python -m meshtrace run --env lab-shop --notebooks 04-07), then make drill-check "
           "FAULT=shop-no-propagation."),
          reference="lab-shop"),
)


def find(name: str) -> Drill:
    """The drill by name, by environment (``drill-…``) or by lab fault name; ParamsError names the choices."""
    key = name.strip().removeprefix("params/").removesuffix(".yaml").removeprefix("drill-").split("=")[0]
    for d in DRILLS:
        if d.name == key:
            return d
    raise ParamsError(f"no drill {name!r}; drills: {', '.join(d.name for d in DRILLS)}")


def lab_setup(drill: Drill, root: Path | None = None) -> tuple[str, list[str]]:
    """(state dir, ``meshlab up`` arguments) of the drill: its environment's lab, plus its fault if any."""
    p = load_params(drill.env, root=root)
    if p.lab is None:
        raise ParamsError(f"drill {drill.name!r}: params/{drill.env}.yaml has no lab: block (drills run on the lab)")
    base = Path(root) if root else repo_root()
    args = list(p.lab.args) + (["--fault", drill.fault] if drill.fault else [])
    return str(base / p.lab.state_dir), args


def card(drill: Drill, hints: int = 0) -> str:
    """The drill as text: name, kind, symptom, and the first ``hints`` hints."""
    lines = [f"drill {drill.name} ({drill.kind}; {drill.where})", f"symptom: {drill.symptom}"]
    lines += [f"hint {i + 1}: {h}" for i, h in enumerate(drill.hints[:hints])]
    return "\n".join(lines)


def markdown() -> str:
    """The drills as Markdown (the list in ``notebooks/drills.md``): symptom, then hints folded away."""
    out = []
    for d in DRILLS:
        out += [f"### `{d.name}` ({d.kind})", "",
                f"`make drill FAULT={d.name}` · `{d.where}`", "", f"**Symptom.** {d.symptom}", ""]
        for i, hint in enumerate(d.hints, 1):
            out += [f"<details><summary>Hint {i}</summary>", "", hint, "", "</details>", ""]
    return "\n".join(out)


def _meshtrace(args: list[str]) -> int:
    return subprocess.call([sys.executable, "-m", "meshtrace", *args])


def label_for_injection(env: str) -> None:
    """Label the Bookinfo namespace for sidecar injection, and nothing else (what 04 does first)."""
    from .runbook import Stage

    st = Stage(env, "drill")
    st.kube.label_namespace(st.p.bookinfo.namespace, st.p.istio.injection_label)


def symptoms(rows: list[Check]) -> str:
    """What a trainee sees of a broken run: each check that did not pass, with what it observed (no hint).

    Example: ``FAIL  07_verify traces.backend-export: otlp: sent 0, failed 40``.
    """
    bad = [r for r in for_trainee(rows) if r.status in ("fail", "warn", "blocked")]
    if not bad:
        return "no check failed: the symptom is in the traces themselves (look at 07)"
    return "\n".join(f"{r.status.upper():7} {r.notebook} {r.id}: {r.observed or r.title}" for r in bad)


def _run_quietly(args: list[str], log: Path) -> int:
    """The runner with its output (matrix, hints) into ``log`` instead of the terminal."""
    with log.open("a", encoding="utf-8") as fh:
        return subprocess.call([sys.executable, "-m", "meshtrace", *args], stdout=fh, stderr=subprocess.STDOUT)


def start(drill: Drill, echo=print, answers: bool = False) -> int:
    """Restart the lab with the drill's condition, then run the runbook on the drill's params (without 08).

    The terminal and ``summary.html`` show the symptoms: the checks that did not pass and what they observed.
    Hints and causes wait for the trainer (``show --hints N``), or ``answers=True`` shows them at once.
    """
    from .report import build_report, collect_rows, write_report
    from .runner import lab_down, lab_running, lab_up

    state_dir, args = lab_setup(drill)
    if lab_running(state_dir):
        echo(f"stopping the running lab at {state_dir} …")
        lab_down(state_dir)
    echo(f"starting the lab at {state_dir}" + (f" with {' '.join(args)}" if args else "") + " …")
    lab_up(state_dir, args)
    echo(f"running the runbook with params/{drill.env}.yaml (failures here are the drill) …")
    runs = repo_root() / "runs"
    runs.mkdir(exist_ok=True)
    log = runs / "drill.log"
    log.write_text("", encoding="utf-8")
    # the runner finds this lab running and leaves it running: it is the drill's; 08 is the trainee's to run
    if drill.skip_deploy:
        _run_quietly(["run", "--env", drill.env, "--notebooks", "00-03", "--no-troubleshoot"], log)
        label_for_injection(drill.env)
        _run_quietly(["run", "--env", drill.env, "--notebooks", "05-07", "--no-troubleshoot"], log)
    else:
        _run_quietly(["run", "--env", drill.env, "--no-troubleshoot"], log)
    run_dir = (runs / "latest").resolve()
    echo("")
    if answers:
        build_report(run_dir, echo)
        echo("")
        echo(card(drill, hints=3))
    else:
        rows = collect_rows(run_dir)
        paths = write_report(run_dir, rows, answers=False)
        echo(f"drill {drill.name} ({drill.kind}): the symptoms")
        echo(symptoms(rows))
        echo(f"report (symptoms only): {paths['html']}; the runner's output: {log}")
    where = f'env = "{drill.env}"' if drill.kind == CONFIG else 'env = "lab"'
    echo("")
    echo(f"Next: in JupyterLab, with {where} in the parameters cell, run 06, 07 and 08_troubleshoot,")
    echo(f"fix the cause, then: make drill-check FAULT={drill.name}")
    echo(f"Stuck? The trainer reveals hints: make drill-hint FAULT={drill.name} LEVEL=1 (then 2, then 3)")
    return 0


def check(drill: Drill, echo=print, sets: list[str] | None = None) -> int:
    """Send traffic and verify on the correct params (06, 07, then 08); 0 only when every check passes.

    ``sets`` are params overrides for the runner (``--set PATH=VALUE``), e.g. a lab in another state dir."""
    extra = [x for s in sets or [] for x in ("--set", s)]
    code = _meshtrace(["run", "--env", drill.reference, "--notebooks", "06-07", *extra])
    echo("")
    if code == 0:
        echo(f"drill {drill.name}: FIXED. Traces flow and every check passes.")
    else:
        echo(f"drill {drill.name}: not fixed yet. Read 08's diagnosis above, or ask for a hint:")
        echo(f"  python -m meshtrace.drills show {drill.name} --hints 1")
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m meshtrace.drills list|show|start|check``."""
    ap = argparse.ArgumentParser(prog="python -m meshtrace.drills", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="every drill with its symptom")
    sub.add_parser("markdown", help="the drills as Markdown, as in notebooks/drills.md")
    for name, text in (("show", "one drill's card"), ("start", "break the lab for a drill"),
                       ("check", "exit 0 once the drill is fixed")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("drill", help="drill name, drill-<name> environment, or lab fault name")
        if name == "show":
            sp.add_argument("--hints", type=int, default=0, choices=range(4), help="how many hints to show")
        if name == "check":
            sp.add_argument("--set", action="append", default=[], dest="sets", metavar="PATH=VALUE",
                            help="a params override for the run (repeatable), e.g. lab.state_dir=/tmp/lab")
        if name == "start":
            sp.add_argument("--answers", action="store_true",
                            help="show hints and 08's diagnosis at once (default: the symptoms only)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "list":
            for d in DRILLS:
                print(f"{d.name:26} {d.kind:22} {d.symptom}")
            return 0
        if args.cmd == "markdown":
            print(markdown(), end="")
            return 0
        drill = find(args.drill)
        if args.cmd == "show":
            print(card(drill, args.hints))
            return 0
        return start(drill, answers=args.answers) if args.cmd == "start" else check(drill, sets=args.sets)
    except MeshtraceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
