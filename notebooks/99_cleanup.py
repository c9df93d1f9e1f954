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
timeout = 180

# %% [markdown]
# # 99 Clean up
#
# Removes what the kit created, in reverse order: the Gateway and VirtualService, the Telemetry, Bookinfo, the
# injection label, and the collector's namespace. Istio is uninstalled (`istioctl uninstall --purge -y`) only
# when the kit installed it (its `meshtrace-install` record is there); an Istio you installed yourself, or one
# the kit merged its tracing settings into, is kept.
#
# The runner runs this notebook only when asked: `python -m meshtrace run --cleanup` runs it last, after the
# other notebooks, and only if none of them failed (an environment stops at its first failed notebook);
# `--notebooks 99 --no-troubleshoot` runs it alone. By hand, run it with `dry_run=True` first to see what it
# would delete.

# %%
from meshtrace.runbook import Stage
from meshtrace.stages import cleanup

st = Stage(env, cleanup.NOTEBOOK, overrides)

# %% [markdown]
# A deletion the cluster refuses (RBAC) does not stop the others: the table says `skipped` with the reason, and
# the checks below name what stayed. The collector's namespace is deleted as a whole, so its Deployment, Service,
# ConfigMap and Secret go with it; a namespace terminates asynchronously, so the notebook waits (up to
# `timeout` seconds) until it is gone.

# %%
rows = cleanup.cleanup(st, dry_run, timeout)

# %% [markdown]
# ## Checks
#
# Deleting is not proof: something may re-create what was deleted (a GitOps tool, a Helm release), a finalizer
# may hold a namespace in `Terminating`, or the deletion may be refused. So each part is read back from the
# cluster: `cleanup.gateway-removed`, `cleanup.telemetry-removed`, `cleanup.bookinfo-removed` (with the
# injection label) and `cleanup.collector-removed`, then `cleanup.istio-removed` when the kit uninstalled Istio
# (or none is there) or `cleanup.istio-kept` when it kept one it did not install. A dry run deletes nothing, so
# its checks are skipped. A failed check fails this notebook, with the fix in its hint.

# %%
st.finish()
