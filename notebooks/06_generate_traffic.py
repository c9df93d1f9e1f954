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
requests = None
concurrency = None
run_dir = None
timeout = 180

# %% [markdown]
# # 06 Generate traffic
#
# Traces exist only for requests that happened. This notebook sends `requests` GETs of `/productpage` through
# the gateway, `concurrency` at a time (None = the params' `traffic` values).
#
# Each request carries two fresh UUIDs: the kit's correlation header, which the Telemetry copies into a span tag,
# and an `x-request-id`. Envoy may rewrite `x-request-id` (it records its sampling decision in the id's 14th hex
# digit), so the correlation header is what lets notebook 07 match each trace to the request that caused it.
# What was sent is saved as `sent_requests.json` in the run folder.

# %%
from meshtrace.errors import MeshtraceError
from meshtrace.runbook import Stage
from meshtrace.stages import gateway, hints, traffic

st = Stage(env, traffic.NOTEBOOK, overrides, run_dir=run_dir)
try:
    addr = gateway.resolve_gateway(st, show=False)
    st.md(f"`GATEWAY_URL={addr.url}` (via {addr.via})")
except MeshtraceError as exc:
    addr = None
    st.checks.check(traffic.SENT, False, observed=str(exc),
                    expected="GATEWAY_URL", hint=hints.cluster_hint(exc, "run 05_expose_gateway first"))

# %%
sent = traffic.generate_traffic(st, addr.url, requests, concurrency, timeout) if addr else []

# %% [markdown]
# ## Latency
# How long each request took, as seen from here. The spread shows whether the mesh was under strain; how many
# of these requests are traced depends on the Telemetry's sampling percentage.

# %%
if sent:
    rate = st.p.telemetry.sampling
    st.md(f"Sampling is {rate:g} %: " + ("every request is traced." if rate >= 100 else
          "no request is traced." if rate <= 0 else f"about {len(sent) * rate / 100:.0f} of {len(sent)} requests "
          "are traced."))
    fig = traffic.plot_latency(sent)

# %%
st.finish()
