"""``pier bench``'s load generator and report: bounded HTTP load against an endpoint, measured.

``histogram`` (fixed log buckets), ``report`` (pure summary), ``payload`` (request bodies), ``load``
(the asyncio workers). Below the CLI; talks to nothing but the URL it is given.
"""
