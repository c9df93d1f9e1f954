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
existing_install = None
timeout = 180
restart_workloads = False

# %% [markdown]
# # 02 Install Istio with an OpenTelemetry tracing provider
#
# Tracing in Istio is configured in two places. The **mesh config** (this notebook) declares *where* spans can
# go: an `extensionProviders` entry of type `opentelemetry` naming the collector's Service, port and protocol,
# plus `enableTracing` and `defaultConfig.tracingServiceName` (how each proxy names its service in spans).
# A **Telemetry** resource (notebook 03) then decides *which* workloads use that provider, and how often.
#
# `istioctl install -f` with only `meshConfig` resets every other setting of an existing install. So the kit
# first looks for an install it did not make, shows the mesh-config diff, and refuses to touch it unless
# `existing_install` says `merge` (lay the kit's tracing settings over the whole installed configuration: the
# live mesh config and the installed components such as an egress gateway, which `istioctl install -f` would
# otherwise prune) or `replace`. With `dry_run=True` it only shows the diff. `istio.revision` installs (or
# updates) that revision: `istiod-<rev>` and the ConfigMap `istio-<rev>`.
#
# `meshConfig.defaultConfig` (`tracingServiceName` among it) is fixed in a proxy's bootstrap when its pod
# starts: after a change, running pods keep their old settings until they restart. The notebook names them
# and the `kubectl rollout restart`; `restart_workloads=True` restarts them.

# %%
from meshtrace.runbook import Stage
from meshtrace.stages import istio

st = Stage(env, istio.NOTEBOOK, overrides, run_dir=run_dir)
mode = existing_install or st.p.istio.existing_install

# %% [markdown]
# ## Which Istio?
# The target version comes from params (a pin), else the installed control plane, else the `istioctl` client.

# %%
istio.show_version_notes(st)

# %% [markdown]
# ## Is Istio already installed?

# %%
st.cmd("kubectl get deploy -n istio-system -l app=istiod\n"
       f"kubectl get configmap {st.p.istio.mesh_configmap} -n istio-system -o yaml")
existing = istio.detect_existing(st)
st.md(istio.mode_note(existing, mode))
iop = istio.check_existing(st, existing, mode)

# %% [markdown]
# ## The IstioOperator
# What `istioctl install` is given: the default profile with the ingress gateway, and the mesh config with the
# tracing provider from params. The file is saved in the run folder; the command below installs exactly it.

# %%
operator = iop or istio.render_istio_operator(st.p, st.version)
st.show_yaml(operator, "IstioOperator")
st.cmd(f"istioctl install -y -f {st.save_manifests(operator, 'istio-operator.yaml')}")

# %% [markdown]
# ## Install and wait
# `istioctl install` applies the control plane (istiod) and the ingress gateway, then writes the merged mesh
# config into the `istio` ConfigMap (`istio-<rev>` for a revision). The kit records what it installed in a
# ConfigMap `meshtrace-install`. If `defaultConfig` changed, the pods whose proxies still run with the old one
# are named below (and restarted when `restart_workloads=True`).

# %%
if iop is None or dry_run:
    st.md("Not installing: " + ("dry run." if iop is not None else "the existing install was left alone."))
    istio.skip_control_plane(st, iop, dry_run)
else:
    istio.install_and_check(st, existing, iop, mode, timeout, restart_workloads)

# %%
st.finish()
