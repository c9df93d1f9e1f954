# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
env = "lab"
overrides = []
run_dir = None
apply_fixes = False
dry_run = False

# %% [markdown]
# # 08 Troubleshoot: what broke, and how to fix it
#
# The source procedure ends with a FAQ for when no traces appear: read the collector's logs, check that every
# pod has an `istio-proxy` container, check the Telemetry resource, check `extensionProviders` in the `istio`
# ConfigMap. This notebook does all of that, and more, in code. It always runs, last, even after a failure.
#
# It reads the evidence, then ranks the likely causes, each with the evidence behind it and the fix: a
# `kubectl` command or a params change, given both ways: `--set path=value` for the runner and
# `overrides = ["path=value"]` for a notebook's parameters cell. On a healthy cluster it says that
# it found nothing. Safe remedies (restarting deployments whose pods predate the injection label, scaling the
# collector back to 1) are applied only when `apply_fixes=True`; add `dry_run=True` to have the API server
# accept them without changing anything (`dryRun=All`). Its checks never fail the environment.

# %%
from meshtrace.checks import readable
from meshtrace.runbook import Stage
from meshtrace.stages import diagnose, troubleshoot

st = Stage(env, troubleshoot.NOTEBOOK, overrides, run_dir=run_dir)
p = st.p

# %% [markdown]
# ## The evidence
# The equivalent commands, for reading the same things by hand:

# %%
st.cmd("\n".join([
    f"kubectl -n {p.collector.namespace} get deployment,pods,svc",
    f"kubectl -n {p.collector.namespace} logs deployment/{p.collector.name} | grep -iE 'error|Exporting failed'",
    f"kubectl -n {p.bookinfo.namespace} get pods -o jsonpath='{{range .items[*]}}{{.metadata.name}}: "
    "{.spec.containers[*].name}{\"\\n\"}{end}'",
    "kubectl get telemetry -A -o yaml",
    "kubectl -n istio-system get configmap istio -o jsonpath='{.data.mesh}'",
    "kubectl -n istio-system logs deployment/istiod | grep -i tracing",
    f"kubectl -n {p.bookinfo.namespace} get events --field-selector type=Warning --sort-by=.lastTimestamp",
]))
ev = troubleshoot.gather(st)
st.table([
    {"what": "mesh providers", "seen": ev.mesh_providers},
    {"what": "Telemetries", "seen": ev.telemetries},
    {"what": "collector replicas", "seen": ev.collector_replicas},
    {"what": "collector pods", "seen": readable(ev.collector_pods) or "none"},
    {"what": "collector Service ports", "seen": ev.service_ports},
    {"what": f"pods without istio-proxy in {p.bookinfo.namespace}", "seen": ev.uninjected or "none"},
    {"what": "traces of this run (fragments)", "seen": f"{ev.traces} ({ev.fragments})"},
    {"what": "denied", "seen": ev.denied or "none"},
], "Evidence")
if ev.errors:
    st.md("Reads that failed: " + "; ".join(ev.errors))

# %% [markdown]
# ## What the cluster said: Warning Events
# The kubelet, the scheduler and the controllers write an Event when something goes wrong: a container that
# crashes (`BackOff`), a probe that fails (`Unhealthy`), an image that cannot be pulled (`Failed`), a pod with no
# node (`FailedScheduling`), a ReplicaSet whose pods are refused (`FailedCreate`). These are the most recent ones
# in the kit's namespaces (`kubectl get events -n <namespace> --field-selector type=Warning`). An Event alone is
# not a diagnosis (a readiness probe fails once while an app starts, and Events outlive their pods by an hour):
# the diagnosis below uses one only when the object it is about is still in that state.

# %%
if ev.events is None:
    st.md("Events could not be read: " + "; ".join(e for e in ev.errors if e.startswith("list events")))
else:
    st.table(troubleshoot.warning_rows(ev), f"Recent Warning events (read from {ev.events_api})")

# %% [markdown]
# Log lines that matter: istiod's about tracing providers, the collector's errors, the proxies' export failures.
# Envoy reports a failed span export only at `debug` (an HTTP answer other than 200 is an `error` line), so
# with the default levels the proxies say nothing about it. To see it, raise one proxy's tracing logger:
# `istioctl proxy-config log <pod> -n <namespace> --level tracing:debug`, or give the pod the annotation
# `sidecar.istio.io/componentLogLevel: "misc:error,tracing:debug"` (it takes effect when the pod is recreated).

# %%
st.table([{"log": name, "line": line} for name, lines in troubleshoot.log_highlights(ev).items() for line in lines]
         or [{"log": "-", "line": "nothing about tracing, exports or errors"}], "Log highlights")

# %% [markdown]
# ## Diagnosis, most likely first

# %%
findings = diagnose.diagnose(ev)
troubleshoot.attach_remedies(st, ev, findings)
troubleshoot.record_checks(st, ev, findings)
if findings:
    top = findings[0]
    st.md(f"**Most likely: {top.title}** (`{top.cause_id}`)\n\nFix: `{top.fix}`")
else:
    st.md("**Found nothing wrong.** Pods, mesh config, Telemetry, collector and traces look as the params say.")
diagnose.findings_frame(findings).style.set_properties(**{"white-space": "pre-wrap", "text-align": "left"})

# %% [markdown]
# ## Safe remedies
# Only with `apply_fixes=True` (and with `dry_run=True` as a server dry run: what would be done, nothing done).
# Everything else is a change to params or to an application, left to you.

# %%
if apply_fixes:
    done = troubleshoot.apply_remedies(st, findings, dry_run=dry_run)
    st.md("\n".join(f"- {d}" for d in done) or "_No safe remedy applies._")
else:
    safe = [f.cause_id for f in findings if f.safe_remedy]
    st.md(f"Safe remedies available for: {', '.join(safe)}. Re-run with `apply_fixes=True` to apply them."
          if safe else "_No safe remedy applies._")

# %%
st.finish()
