"""Math MCP service: arithmetic, statistics and a safe expression evaluator."""

from mcp_common import ServiceSpec

service = ServiceSpec(
    name="math",
    tools_package="math_service.tools",
    instructions=(
        "Exact arithmetic and descriptive statistics. Use `evaluate` for a whole "
        "expression, the single-operation tools when you already have the operands."
    ),
)
