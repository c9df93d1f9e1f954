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

# %% [markdown]
# # 00 Preflight: is everything in place before we change anything?
#
# Tracing in Istio has several moving parts: a cluster, `istioctl`, an OpenTelemetry Collector, a backend that
# needs a token. When one of them is missing, the failure shows up much later as "no traces", which is hard to
# trace back. This notebook checks each prerequisite up front and changes nothing:
#
# - the environment's params are valid (and which settings look like mistakes);
# - the cluster answers with the kubeconfig's credentials, and its version;
# - `istioctl` runs and is Istio 1.19 or later (the source's own manifests need 1.22);
# - the backend token is present (it is never printed);
# - `kubectl` is installed (optional: only for typing the equivalent commands yourself);
# - the kubeconfig's user may do every verb the kit needs (one SelfSubjectAccessReview each).

# %%
from meshtrace.runbook import Stage
from meshtrace.stages import preflight

st = Stage(env, preflight.NOTEBOOK, overrides)

# %% [markdown]
# ## Params
# One YAML file per environment under `params/`, plus any `--set` overrides. Secrets are only referenced
# (an environment variable or a Kubernetes Secret), never written there.

# %%
preflight.check_params(st)
st.md(f"Params: `{st.p.source}`")

# %% [markdown]
# ## The cluster
# The kit talks to the cluster through the kubeconfig named in params, as `kubectl` does.

# %%
st.cmd("kubectl version\nkubectl get namespaces")
cluster_ok = preflight.check_cluster(st)

# %% [markdown]
# ## istioctl
# Istio's OpenTelemetry provider exists from 1.19; `telemetry.istio.io/v1` and the provider's `http:` block
# need 1.22. The version decides what the kit renders.

# %%
st.cmd("istioctl version")
preflight.check_istioctl(st)

# %% [markdown]
# ## Credentials and tools
# The collector exports to the backend with a token. It must be present now, but its value is never shown.

# %%
preflight.check_credentials(st, cluster_ok)
preflight.check_kubectl(st)

# %% [markdown]
# ## Permissions
# Installing Istio needs cluster-wide rights (CRDs, webhooks); the other stages need namespaced ones.
# A SelfSubjectAccessReview asks the API server "may I?" without trying.

# %%
st.cmd("kubectl auth can-i create telemetries.telemetry.istio.io -n istio-system")
if cluster_ok:
    rows = preflight.check_permissions(st)
else:
    st.checks.blocked(preflight.PERMISSIONS, by=preflight.REACHABLE)

# %%
st.finish()
