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
# when the kit installed it (its `meshtrace-install` record is there); an Istio you installed yourself is kept.
# The runner never runs this notebook; run it by hand, with `dry_run=True` first to see what it would delete.

# %%
from meshtrace.runbook import Stage
from meshtrace.stages import cleanup

st = Stage(env, "99_cleanup", overrides)

# %%
rows = cleanup.cleanup(st, dry_run, timeout)

# %%
st.finish()
