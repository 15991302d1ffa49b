#!/bin/sh
# The front door (mcp_common.frontdoor): the whole fleet at /mcp and /search/mcp, on $PORT.
# Started by the Lambda Web Adapter and locally alike; its catalog.json is built beside it
# (`fleet build --frontdoor`). The path: this folder, then the fleet's layers in /opt/python
# inside Lambda (FLEET_LAYERS_DIR elsewhere).
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
layers=${FLEET_LAYERS_DIR:-${LAMBDA_TASK_ROOT:+/opt}}
export PYTHONPATH="$here${layers:+:$layers/python}${PYTHONPATH:+:$PYTHONPATH}"
export MCP_FRONTDOOR_CATALOG="${MCP_FRONTDOOR_CATALOG:-$here/catalog.json}"
exec python -m mcp_common.frontdoor "$@"
