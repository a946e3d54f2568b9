"""The HTTP floor for bench/serve_bench.py: a bare ASGI app under uvicorn (httptools, uvloop, no access log) that
reads the request body and answers a fixed V1-shaped JSON body. No framework, no model: what one core can serve.

    python bench/floor_server.py --port 8090
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn

BODY = b'{"predictions":[{"churn":0,"churn_probability":0.1234,"risk":"low"}],"model_version":"1"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8090)
    args = ap.parse_args()
    uvicorn.run(
        app, host="127.0.0.1", port=args.port, http="httptools", loop="uvloop", access_log=False, lifespan="off"
    )


if __name__ == "__main__":
    main()
