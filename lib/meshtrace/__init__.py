"""meshtrace: the runbook library behind the notebooks.

It works against any Kubernetes cluster reachable through a kubeconfig, an ``istioctl``
executable and URLs; it never knows (or asks) whether that cluster is the embedded lab.
"""

__version__ = "0.1.0"
