"""The lab's ``istioctl``: a separate process that talks to the lab only through a kubeconfig.

The state directory's ``bin/istioctl`` launcher runs ``python -m meshlab.istioctl --lab-version <v> "$@"``
(``__main__.py``). ``cli`` parses the command line, ``operator`` validates IstioOperator files, ``manifest``
renders the objects an install creates and ``install`` applies and removes them over the Kubernetes API.
Nothing here imports the lab daemon's modules.
"""
