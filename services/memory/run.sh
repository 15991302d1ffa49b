#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) and
# locally alike: serve the memory service with uvicorn on $PORT (default 8080).
# The path: this folder first (the service's code; a host twin bundles everything here),
# then, inside Lambda, the fleet's layers in /opt/python (FLEET_LAYERS_DIR elsewhere).
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
layers=${FLEET_LAYERS_DIR:-${LAMBDA_TASK_ROOT:+/opt}}
export PYTHONPATH="$here${layers:+:$layers/python}${PYTHONPATH:+:$PYTHONPATH}"
exec python -m memory_service "$@"
