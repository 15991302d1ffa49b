"""`python -m <service_package>`: serve one service with uvicorn on $PORT.

This is what `run.sh` execs, under the Lambda Web Adapter and locally alike.
"""

from __future__ import annotations

from mcp_common.service import ServiceSpec
from mcp_common.settings import RuntimeSettings


def serve(spec: ServiceSpec) -> None:
    """Build the service's app and serve it until the process is told to stop."""
    import uvicorn

    from mcp_common.app import create_app

    runtime = RuntimeSettings()
    app = create_app(spec, runtime)
    uvicorn.run(
        app,
        host=runtime.bind_host(),
        port=runtime.port,
        log_config=None,  # keep our JSON handlers; uvicorn's records propagate to them
        access_log=False,  # the MCP request line is the access log
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
