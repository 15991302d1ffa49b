"""Shared library for the MCP fleet.

Kept import-light on purpose: cold starts pay for every import, so the heavy
pieces (fastmcp, auth, AWS clients) load only from the modules that need them.
"""

from mcp_common.service import ServiceSpec

__all__ = ["ServiceSpec"]
