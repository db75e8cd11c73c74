"""Wire formats: each module turns one protocol's bytes into ``server.types`` messages and back.

Codecs are pure functions over bytes and numpy arrays (no I/O, no framework imports), so the HTTP
and gRPC transports stay thin and the formats are unit-tested without a server.
"""
