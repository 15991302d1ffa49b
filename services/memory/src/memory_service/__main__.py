"""`python -m memory_service`: what run.sh starts."""

from mcp_common.entrypoint import serve
from memory_service import service

if __name__ == "__main__":
    serve(service)
