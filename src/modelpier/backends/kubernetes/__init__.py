"""The Kubernetes backend: the ``ModelDeployment`` CRD, its synchroniser, leader election, and the backend.

Pure parts (no cluster): ``crd`` and ``structural`` (the CRD generated from the spec), ``crplan``
(what the CR synchroniser does about a deployment: the last writer wins), ``names`` and ``options``
(names, labels, the ports and the image pods share), ``pods`` (a replica's pod manifest). I/O parts:
``kubeapi`` (a small async REST client), ``crsync`` (ModelDeployment CRs <-> the control plane by
LIST+WATCH, status and events written back), ``lease`` (a ``coordination.k8s.io`` Lease so one
control-plane replica reconciles), ``events``, ``backend`` (the ``Backend`` of pods: ``pods``
renders and reads them, ``informer`` caches them), and ``cluster``/``apply`` (``pier deploy
--backend kubernetes`` writes the CR). The control plane runs in the cluster and reconciles with the same engine as on a
laptop; there is no separate operator. Only this package imports the ``kubernetes`` client (checked
by import-linter); ``pier render`` needs none.
"""
