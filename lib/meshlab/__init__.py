"""meshlab: the embedded lab, a stand-in Kubernetes cluster with Istio on loopback.

It is reached like any cluster: through the kubeconfig, the ``istioctl`` executable and the
URLs it writes into its state directory. It simulates causes; what the kit sees follows from them.
"""

__version__ = "0.1.0"
