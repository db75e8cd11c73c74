"""The ceiling: a bare ASGI app that reads and parses the request body and returns a fixed answer.

Run under the same uvicorn (uvloop + httptools) as modelpier; no routing, no model, no encoding.
"""

from __future__ import annotations

from typing import Any

import orjson

RESPONSE = orjson.dumps({"model_name": "m", "outputs": [{"name": "predict", "datatype": "INT64", "shape": [1],
                                                         "data": [0]}]})
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(RESPONSE)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":  # readiness probe of the benchmark driver
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        await send({"type": "http.response.body", "body": RESPONSE})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    orjson.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": RESPONSE})
