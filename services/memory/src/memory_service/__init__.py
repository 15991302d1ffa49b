"""memory MCP service."""

from mcp_common import ServiceSpec

service = ServiceSpec(
    name="memory",
    tools_package="memory_service.tools",
    instructions="Describe here what the memory tools are for, for the model choosing them.",
)
