"""The Kubernetes backend: the ``ModelDeployment`` CRD, manifest rendering and the kopf operator.

Pure parts (no cluster, no kopf): ``crd`` and ``structural`` (the CRD generated from the spec),
``render`` with ``workloads`` and ``routing`` (spec → manifests), ``status`` and ``reconcile`` (the
operator's decisions). I/O parts: ``cluster`` (the Kubernetes API), ``operator`` (kopf handlers)
and ``apply`` (``apply_deployment`` for the CLI). Only this package imports kopf and the
``kubernetes`` client (checked by import-linter); ``pier render`` needs neither.
"""
