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
from meshtrace.stages.common import wait_deployments

st = Stage(env, "04_deploy_bookinfo", overrides)
ns = st.p.bookinfo.namespace

# %% [markdown]
# ## Label the namespace for injection

# %%
label_result = bookinfo.label_namespace(st, dry_run)

# %% [markdown]
# ## Apply Bookinfo

# %%
results = bookinfo.apply_bookinfo(st, dry_run)

# %% [markdown]
# ## Wait for the six deployments, then check the sidecars

# %%
if dry_run:
    st.checks.skip("bookinfo.available", f"All {bookinfo.app_title(st.p)} deployments are available", "dry run")
    st.checks.skip("bookinfo.sidecars", f"Every {bookinfo.app_title(st.p)} pod has the istio-proxy sidecar", "dry run")
else:
    names = bookinfo.app_deployments(st.p)   # Bookinfo's six, or the Deployments of app.manifests
    ok, seen = wait_deployments(st, ns, names, timeout)
    st.checks.check("bookinfo.available", f"All {bookinfo.app_title(st.p)} deployments are available", ok,
                    observed=seen,
                    expected=f"{len(names)} deployments available",
                    hint=f"kubectl get pods -n {ns}; kubectl describe pod <pod>")
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
              f"Run `kubectl rollout restart deployment -n {ns}` or re-run with `-p restart_uninjected=true`.")

# %%
st.finish()
