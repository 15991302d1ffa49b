"""`python -m weather_service`: what run.sh starts."""

from mcp_common.entrypoint import serve
from weather_service import service

if __name__ == "__main__":
    serve(service)
