"""`python -m math_service`: what run.sh starts."""

from math_service import service
from mcp_common.entrypoint import serve

if __name__ == "__main__":
    serve(service)
