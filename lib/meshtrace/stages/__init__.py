"""The runbook's stages: one module per notebook, each a few functions taking a :class:`~meshtrace.runbook.Stage`.

| module | notebook | entry point |
| --- | --- | --- |
| preflight | 00_preflight | ``run_preflight(st)`` |
| collector | 01_install_collector | ``install_collector(st, dry_run, timeout)`` |
| istio | 02_install_istio | ``install_istio(st, existing_install, dry_run, timeout)`` |
| telemetry | 03_enable_tracing | ``enable_tracing(st, dry_run)`` |
| bookinfo | 04_deploy_bookinfo | ``deploy_bookinfo(st, restart_uninjected, dry_run, timeout)`` |
| gateway | 05_expose_gateway | ``expose_gateway(st, dry_run, timeout)`` |
| traffic | 06_generate_traffic | ``generate_traffic(st, requests, concurrency, timeout)`` |
| verify | 07_verify | ``pod_checks(st)``, ``collect_traces(st, …)``, ``trace_checks(st, ev)``, ``pictures(st, res)`` |
| troubleshoot | 08_troubleshoot | ``run_troubleshoot(st, apply_fixes)`` (evidence → ``diagnose.diagnose`` → ranked findings) |
| cleanup | 99_cleanup | ``cleanup(st, dry_run, timeout)`` |
"""
