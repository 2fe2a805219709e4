"""tuspy uploading to Supabase Storage the way Supabase's guide configures a tus client.

    SUPABASE_KEY=... python tuspy_supabase.py --endpoint URL --file PATH --bucket B --object O
        [--upsert] [--chunk-size BYTES]

Prints {"url": UPLOAD_URL, "size": BYTES} on success; a traceback and exit 1 on failure.
"""

from __future__ import annotations

import argparse
import json
import os

from tusclient.client import TusClient


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--endpoint", "--file", "--bucket", "--object"):
        parser.add_argument(name, required=True)
    parser.add_argument("--upsert", action="store_true")
    parser.add_argument("--chunk-size", type=int, default=6 * 1024 * 1024)
    args = parser.parse_args()
    key = os.environ["SUPABASE_KEY"]
    headers = {"apikey": key, "x-upsert": "true" if args.upsert else "false"}
    if key.startswith("eyJ"):
        headers["Authorization"] = f"Bearer {key}"
    uploader = TusClient(args.endpoint, headers=headers).uploader(
        file_path=args.file,
        chunk_size=args.chunk_size,
        metadata={
            "bucketName": args.bucket,
            "objectName": args.object,
            "contentType": "application/octet-stream",
            "cacheControl": "3600",
        },
    )
    uploader.upload()
    print(json.dumps({"url": uploader.url, "size": os.path.getsize(args.file)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
