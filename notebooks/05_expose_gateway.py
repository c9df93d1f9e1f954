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
# # 05 Expose Bookinfo through the ingress gateway
#
# Traffic enters the mesh at the ingress gateway, an Envoy of its own. With a mesh-wide Telemetry it is the
# first proxy on the path, so it starts the trace and makes the sampling decision. A `Gateway` opens port 80 on
# it, and a `VirtualService` routes `/productpage` (and Bookinfo's other paths) to the productpage Service.
#
# With `gateway.kind: gateway-api` the Kubernetes Gateway API does the same, as Istio's
# `samples/bookinfo/gateway-api/bookinfo-gateway.yaml`: a `Gateway` of class `istio` and an `HTTPRoute`. There
# is no gateway to select: istiod deploys one for the Gateway (`bookinfo-gateway-istio`, a Deployment and a
# Service), and reports `Programmed` with the gateway's address in the Gateway's status once it can serve.
#
# `GATEWAY_URL` is how you reach it from here: the LoadBalancer address when the cluster has one, else a node's
# address and the Service's NodePort (kind, minikube without a tunnel).

# %%
from meshtrace.errors import MeshtraceError
from meshtrace.runbook import Stage
from meshtrace.stages import gateway

st = Stage(env, gateway.NOTEBOOK, overrides, run_dir=run_dir)

# %%
objs = gateway.show_gateway(st)

# %%
results = st.apply(objs, dry_run=dry_run)

# %% [markdown]
# ## GATEWAY_URL
# `GATEWAY_URL` is `host:port` of the ingress gateway as seen from here. The kit reads both ways in from the
# gateway's Service: the LoadBalancer's address and port, and a node's address with the Service's NodePort. The
# commands below set `INGRESS_HOST`, `INGRESS_PORT` and `GATEWAY_URL` the way this cluster offers. For the
# Gateway API the kit first waits for the Gateway to be `Programmed`, then reads the address from its
# `status.addresses` (a NodePort of the deployed Service when that address is not reachable from here).

# %%
try:
    addr = gateway.resolve_gateway(st)
except MeshtraceError as exc:
    addr = None
    if dry_run:
        st.checks.skip(gateway.ADDRESS, f"dry run: {exc}")
    else:
        gateway.address_failed(st, exc)
else:
    gateway.address_found(st, addr)
    st.md(f"`GATEWAY_URL={addr.url}`")

# %% [markdown]
# ## The page title through the gateway
# The route can take a moment to reach the gateway, so the kit polls until the deadline.

# %%
if dry_run:
    st.checks.skip(gateway.PAGE, "dry run")
elif addr is not None:
    gateway.check_title(st, addr, timeout)

# %%
st.finish()
