"""MCP (Model Context Protocol) for Ouroboros: ``ouro mcp`` on stdio, ``/mcp`` in ``ouro serve``.

`catalogue` holds what is offered (each tool the body of an ``ouro`` command), `server` puts
it on the official SDK's low-level server for any transport, `stdio` and `http` are the two
ways in. See docs/serve.md, "MCP".
"""
