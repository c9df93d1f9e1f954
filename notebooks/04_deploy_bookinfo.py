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
restart_uninjected = False
timeout = 180

# %% [markdown]
# # 04 Deploy Bookinfo into the mesh
#
# Spans come from Envoy sidecars, not from the applications. A pod gets its `istio-proxy` sidecar when it is
# *created* in a namespace labelled `istio-injection=enabled`. So the order matters: label first, then deploy.
# Pods that already existed before the label stay uninjected (and invisible to tracing) until they are
# restarted. The kit reports them with the fix, and restarts them only when `restart_uninjected=True`.
#
# Bookinfo has six deployments: productpage calls details and reviews; reviews v2 and v3 call ratings.

# %%
from meshtrace.runbook import Stage
from meshtrace.stages import bookinfo

st = Stage(env, bookinfo.NOTEBOOK, overrides, run_dir=run_dir)
ns = st.p.bookinfo.namespace

# %% [markdown]
# ## Label the namespace for injection
# Istio's injection webhook acts on pods created in a namespace labelled `istio-injection=enabled`. The label
# goes on first, so that every Bookinfo pod created below gets its `istio-proxy`.

# %%
label_result = bookinfo.label_namespace(st, dry_run)

# %% [markdown]
# ## Apply Bookinfo
# Bookinfo's Services, ServiceAccounts and Deployments, from the Istio samples, with the image registry and tag
# from params. The manifests are saved in the run folder, so the command below applies the very same file.

# %%
results = bookinfo.apply_bookinfo(st, dry_run)

# %% [markdown]
# ## Wait for the six deployments, then check the sidecars

# %%
if dry_run:
    bookinfo.skip_checks(st, "dry run")
else:
    bookinfo.check_available(st, timeout)
    missing = bookinfo.check_sidecars(st)

# %% [markdown]
# ## Pods that predate the label
# `kubectl rollout restart` recreates a deployment's pods, which are then injected.

# %%
if not dry_run and missing:
    if restart_uninjected:
        bookinfo.restart(st, sorted(missing), timeout)
        bookinfo.check_sidecars(st)
    else:
        st.md("Some pods have no sidecar; they are **not** restarted because `restart_uninjected` is false. "
              f"Run `kubectl rollout restart deployment -n {ns}`, or re-run with `restart_uninjected = True` in the "
              "parameters cell (`-p restart_uninjected=true` for the runner).")

# %%
st.finish()
