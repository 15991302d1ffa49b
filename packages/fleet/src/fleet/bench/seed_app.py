"""The seed design being measured against: one file, one FastMCP server, the same `add` tool.

Packaged the way SAM's default Python builder packages it (wheels unzipped, no bytecode).
"""

import os

import uvicorn
from fastmcp import FastMCP

mcp = FastMCP("math")


@mcp.tool
def add(a: float, b: float) -> float:
    """Add two numbers and return a + b."""
    return a + b


app = mcp.http_app(path="/math/mcp", stateless_http=True, json_response=True)

if __name__ == "__main__":
    uvicorn.run(
        app, host="127.0.0.1", port=int(os.environ.get("PORT", "8080")), log_level="warning"
    )
