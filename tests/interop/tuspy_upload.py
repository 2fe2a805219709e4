"""tuspy (PyPI `tuspy`) uploading one file with its sync client, as its README shows.

    python tuspy_upload.py --endpoint URL --file PATH [--chunk-size BYTES] [--checksum]

Defaults are tuspy's own (chunk_size = sys.maxsize: the whole file in one PATCH). On success
prints one JSON line on stdout, {"url": UPLOAD_URL, "size": BYTES}; on error the traceback goes
to stderr and the exit status is 1.
"""

from __future__ import annotations

import argparse
import json
import os

from tusclient.client import TusClient


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--chunk-size", type=int)
    parser.add_argument("--checksum", action="store_true", help="send Upload-Checksum (sha1)")
    args = parser.parse_args()

    options: dict[str, object] = {"file_path": args.file, "upload_checksum": args.checksum}
    if args.chunk_size is not None:
        options["chunk_size"] = args.chunk_size
    uploader = TusClient(args.endpoint).uploader(**options)
    uploader.upload()
    size = os.path.getsize(args.file)
    print(json.dumps({"url": uploader.url, "size": size}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
