"""The gateway: the data plane's front door, one endpoint per deployment over its replicas."""
