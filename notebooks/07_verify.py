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
settle_timeout = 30
max_spans = 200000

# %% [markdown]
# # 07 Verify: pods, then traces
#
# The earlier notebooks each checked their own step. This one checks the whole result from the outside, the
# way an operator would: first that every pod the tracing path needs is there and ready, then that the traces
# of the requests 06 sent arrived, whole, in the collector and in the backend.
#
# Which services should report spans is worked out from the params, not from a fixed list: a Telemetry in the
# root namespace (`istio-system`) traces the whole mesh, gateway included; one in Bookinfo's namespace (as the
# source procedure does) traces only Bookinfo, so traces start at productpage. `tracingServiceName` decides the
# form of `service.name` (`productpage.default` or `productpage`).

# %%
from IPython.display import Image, display

from meshtrace.runbook import Stage
from meshtrace.stages import verify
from meshtrace.traces import error_spans, latency_percentiles

st = Stage(env, verify.NOTEBOOK, overrides, run_dir=run_dir)
p = st.p

# %% [markdown]
# ## Pods
# istiod, the ingress gateway and the collector must be ready, Bookinfo's six deployments available, every
# Bookinfo pod injected with `istio-proxy` and the collector not injected (its pod says
# `sidecar.istio.io/inject: "false"`). The mesh config must hold the provider the params describe, and the
# Telemetry must reference it.

# %%
st.cmd(f"kubectl get pods -n istio-system; kubectl get pods -n {p.collector.namespace}; "
       f"kubectl get pods -n {p.bookinfo.namespace}")
pods = verify.pod_checks(st)
pods.drop(columns=["created"])

# %% [markdown]
# ## Read the spans
# Spans are read from the sources `traces.sources` names: the collector's own log (its `debug` exporter
# prints every span), the collector's metrics (spans accepted and exported), and the backend's query API,
# Jaeger's or Grafana Tempo's. Spans take a moment to travel (Envoy batches them, the collector batches
# them again), so the sources are polled until the sent requests' traces have arrived or `settle_timeout`
# seconds have passed.

# %%
ev = verify.collect_traces(st, settle_timeout=settle_timeout, max_spans=max_spans)
st.table([r.stats() for r in ev.reads.values()], "Sources read")
if ev.errors:
    st.md("Source problems: " + "; ".join(f"**{k}**: {v}" for k, v in ev.errors.items()))
st.md(f"{len(ev.sent)} requests sent by 06; waited {ev.waited:.1f}s for spans"
      + ("" if ev.settled else " (spans were still arriving at the deadline)"))

# %% [markdown]
# ## Trace checks

# %%
res = verify.trace_checks(st, ev)
res.report.frame().head(50)

# %% [markdown]
# ## Trace context propagation
# Per service: the requests it served (its sidecar's SERVER spans) and the calls its sidecar made while serving
# them (CLIENT spans). A call that starts a new trace means the application did not copy the trace headers of
# the request it was serving onto its call; `traces.propagation` names each such service and the headers to
# forward. Spans an application emits itself with an OpenTelemetry SDK join the trace and are accepted.

# %%
st.table(res.propagation.rows() if res.propagation is not None else [], "Trace context per service")

# %% [markdown]
# ## One trace, as a waterfall
# Each bar is a span: the gateway's, then productpage's inbound (SERVER) span and its outbound (CLIENT) calls
# to details and reviews, and so on down. The picture is saved beside the executed notebook.

# %%
files = verify.pictures(st, res)
if "waterfall" in files:
    display(Image(filename=str(files["waterfall"])))
else:
    st.md("_No trace to draw._")

# %% [markdown]
# ## Service dependencies
# Edges drawn from parent/child spans, with how many times each call was seen. An expected call that never
# showed up is dashed red; a call the app is not expected to make is orange; a call that started a new trace
# (its caller does not propagate trace context) is solid red and named.

# %%
display(Image(filename=str(files["graph"])))

# %% [markdown]
# ## Latency per service and error spans
# Percentiles of SERVER span durations, per service, and every span with status ERROR or HTTP ≥ 500.

# %%
spans = [s for t in res.traces for s in t.spans]
latency_percentiles(spans).round(2)

# %%
errors = error_spans(spans)
if len(errors):
    display(errors)
else:
    st.md(f"No error spans among the {len(spans)} spans of this run.")

# %%
st.finish()
