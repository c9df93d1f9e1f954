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
# # 01 Install the OpenTelemetry Collector
#
# Istio's proxies do not talk to your tracing backend directly: they send spans over OTLP to a collector, which
# batches them, can print them (the `debug` exporter, handy for checking), and forwards them to the backend with
# its credentials. Keeping the collector between the mesh and the backend means the mesh never holds the token,
# and you can change backends without touching Istio.
#
# This notebook creates, in the collector's namespace: the Secret holding the backend token (the Deployment
# reads it through an environment variable, never from the ConfigMap), the ConfigMap with the collector's
# config, the Service exposing OTLP on 4317 (gRPC) and 4318 (HTTP), and the Deployment. The pod is annotated
# `sidecar.istio.io/inject: "false"`: the collector must not be part of the mesh it observes.

# %%
from meshtrace.runbook import Stage
from meshtrace.stages import collector

st = Stage(env, collector.NOTEBOOK, overrides, run_dir=run_dir)

# %% [markdown]
# ## What will be applied
# The Secret is shown with its value redacted. Applying is server-side and idempotent: a re-run says
# `unchanged`.

# %%
objs = collector.show_collector(st)

# %%
results = collector.apply_collector(st, dry_run=dry_run)

# %% [markdown]
# ## Is it running?
# Wait for the rollout, then ask the collector's `health_check` extension (port 13133) through the API server's
# proxy, and check that no sidecar was injected.

# %%
if dry_run:
    collector.skip_checks(st, "dry run")
elif collector.check_token(st):
    collector.check_collector(st, timeout)

# %%
st.finish()
