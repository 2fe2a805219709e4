"""The upload gateway around the tus server: POST /upload, the catalog (GET /uploads...),
SSE events and forwarding to providers."""
