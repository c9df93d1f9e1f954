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
dry_run = False
timeout = 180

# %% [markdown]
# # 03 Enable tracing with a Telemetry resource
#
# The mesh config only *declares* the provider. Nothing is traced until a `Telemetry` resource names it. Where
# the Telemetry lives sets its reach: in the root namespace `istio-system` it applies to the whole mesh,
# including the ingress gateway; in `default` (as the source procedure does, by applying it without a
# namespace) it applies only to that namespace's workloads, so the gateway emits no span and productpage's
# proxy makes the sampling decision.
#
# `randomSamplingPercentage` (0-100) is the share of requests traced. The kit also adds a custom tag filled from
# its own correlation header, so that notebook 07 can match every trace to a request it sent.

# %%
from meshtrace.runbook import Stage
from meshtrace.stages import telemetry

st = Stage(env, telemetry.NOTEBOOK, overrides, run_dir=run_dir)

# %%
tel = telemetry.show_telemetry(st)

# %%
results = st.apply([tel], dry_run=dry_run)

# %% [markdown]
# ## Read it back
# The API server may default or drop fields; reading the object back proves what the mesh will act on. Its
# provider must be one the mesh config defines, or no proxy traces.

# %%
if dry_run:
    telemetry.skip_checks(st, "dry run")
else:
    live = telemetry.read_back(st, tel)
    telemetry.check_telemetry(st, tel, live)

# %%
st.finish()
