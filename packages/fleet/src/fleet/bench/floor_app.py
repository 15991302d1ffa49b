"""The floor: a bare ASGI JSON-RPC endpoint answering tools/call for `add`, nothing else.

What no MCP server can beat: uvicorn, json, and one coroutine.
"""

import json
import os

import uvicorn

HEADERS = [(b"content-type", b"application/json")]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    request = json.loads(body or b"{}")
    arguments = request.get("params", {}).get("arguments", {})
    total = arguments.get("a", 0) + arguments.get("b", 0)
    result = {
        "jsonrpc": "2.0",
        "id": request.get("id"),
        "result": {
            "content": [{"type": "text", "text": str(total)}],
            "structuredContent": {"result": total},
        },
    }
    payload = json.dumps(result).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*HEADERS, (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8080")), log_level="warning"
    )
