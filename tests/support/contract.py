"""What DESIGN §5 promises other tools, in one place for the tests that check it."""

#: The seed's StreamingProgress fields: every NDJSON line and SSE event carries them.
STREAMING_PROGRESS_FIELDS = (
    "percentage",
    "stage",
    "message",
    "bytes_uploaded",
    "bytes_total",
    "chunk_index",
    "total_chunks",
    "timestamp",
    "upload_speed",
    "task_id",
)
