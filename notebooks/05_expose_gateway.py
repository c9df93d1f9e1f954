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
# # 05 Expose Bookinfo through the ingress gateway
#
# Traffic enters the mesh at the ingress gateway, an Envoy of its own. With a mesh-wide Telemetry it is the
# first proxy on the path, so it starts the trace and makes the sampling decision. A `Gateway` opens port 80 on
# it, and a `VirtualService` routes `/productpage` (and Bookinfo's other paths) to the productpage Service.
#
# `GATEWAY_URL` is how you reach it from here: the LoadBalancer address when the cluster has one, else a node's
# address and the Service's NodePort (kind, minikube without a tunnel).

# %%
from meshtrace.errors import MeshtraceError
from meshtrace.manifests import render_gateway
from meshtrace.runbook import Stage
from meshtrace.stages import gateway

st = Stage(env, "05_expose_gateway", overrides)

# %%
objs = render_gateway(st.p, st.version)
st.show_yaml(objs, "Gateway and VirtualService")
st.cmd(f"kubectl apply --server-side --field-manager=meshtrace -n {st.p.gateway.namespace} -f bookinfo-gateway.yaml")

# %%
results = st.apply(objs, dry_run=dry_run)

# %% [markdown]
# ## GATEWAY_URL

# %%
try:
    addr = gateway.resolve_gateway(st)
except MeshtraceError as exc:
    addr = None
    if dry_run:
        st.checks.skip("gateway.address", "GATEWAY_URL resolves (LoadBalancer, else NodePort)", f"dry run: {exc}")
    else:
        st.checks.check("gateway.address", "GATEWAY_URL resolves (LoadBalancer, else NodePort)", False,
                        observed=str(exc), expected="host:port",
                        hint="give the ingress gateway Service a LoadBalancer address or a NodePort")
else:
    st.checks.check("gateway.address", "GATEWAY_URL resolves (LoadBalancer, else NodePort)", True,
                    observed=f"{addr.url} via {addr.via}" + (f" ({addr.note})" if addr.note else ""),
                    expected="host:port")
    st.md(f"`GATEWAY_URL={addr.url}`")

# %% [markdown]
# ## The page title through the gateway
# The route can take a moment to reach the gateway, so the kit polls until the deadline.

# %%
path = st.p.app.entry.path   # /productpage for Bookinfo; app.entry.path for an app of one's own
title = gateway.TITLE if st.p.app.is_bookinfo else None   # any HTTP 200 for an app of one's own
st.cmd(f'curl -s "http://$GATEWAY_URL{path}"' + (' | grep -o "<title>.*</title>"' if title else ""))
if addr is None or dry_run:
    st.checks.skip("gateway.title", "The product page is served through the gateway",
                   "dry run" if dry_run else "no GATEWAY_URL", required=not dry_run)
else:
    ok, seen = gateway.wait_for_title(f"http://{addr.url}{path}", timeout, title)
    st.checks.check("gateway.title", "The product page is served through the gateway" if title else
                    f"The app's entry {path} is served through the gateway", ok, observed=seen,
                    expected="HTTP 200" + (f" with {title}" if title else ""),
                    hint="check that the Gateway selector matches the ingress gateway pods and the VirtualService "
                         f"routes {path}: kubectl get gateway,virtualservice -A")

# %%
st.finish()
