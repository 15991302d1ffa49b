#!/bin/sh
# Started by the Lambda Web Adapter (AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap) and
# locally alike: serve the memory service with uvicorn on $PORT (default 8080).
# The script's own folder goes first on the path so a built artifact runs as is.
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
exec python -m memory_service "$@"
