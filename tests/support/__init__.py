"""Helpers shared by the integration tests: free ports, real processes, waiting on conditions."""
