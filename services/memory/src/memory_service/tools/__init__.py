"""Every module in this package is scanned for `@tool` functions at startup."""
