"""The lab's mesh: istiod's tracing config, Envoy-like proxies, spans, sampling, OTLP export, Bookinfo.

Container classes the runtime picks by image: ``istiod.Istiod`` (``*/pilot*``), ``proxy.Sidecar``
and ``proxy.Gateway`` (``*/proxyv2*``), ``bookinfo.BookinfoApp`` (``*/examples-bookinfo-*``).
"""
