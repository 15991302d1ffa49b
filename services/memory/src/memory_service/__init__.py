"""Memory MCP service: a knowledge graph that agents keep across chats, one per caller."""

from mcp_common import ServiceSpec
from memory_service.settings import get_settings

service = ServiceSpec(
    name="memory",
    tools_package="memory_service.tools",
    settings=get_settings,
    instructions=(
        "A persistent knowledge graph of entities (with observations) and relations between "
        "them, private to you. Search or open what you know before asking; record new facts "
        "as observations; relations are in active voice."
    ),
)
