"""upwell as an MCP server: `upwell mcp` (stdio, `server.py`) and `/mcp` on `upwell serve`
(streamable HTTP, `http.py`). Needs the `mcp` extra; nothing here loads it until asked."""
