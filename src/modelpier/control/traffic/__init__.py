"""What the gateways report: the traffic store (``store``), the counters' arithmetic (``counters``)
and the ready/desired replicas over time (``replica_history``) behind the traffic charts and the
autoscaler."""
