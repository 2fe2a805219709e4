"""`upwell serve` whose os.fsync of an upload's file says on stdout when it starts ("fsync
PATH") and ends ("fsynced PATH"), holding each moment briefly, so a test can kill -9 the
server inside the fsync, or between the fsync and the commit of the offset.

Run as a script: python serve_with_sync_hook.py --port P --data-dir D [--hold SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

from upwell.server.runner import running_server
from upwell.server.settings import ServerSettings


def hook(hold: float) -> None:
    real = os.fsync

    def fsync(fd: int) -> None:
        try:
            path = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            path = ""
        watched = "/files/" in path  # an upload's file, not the directory holding them
        if watched:
            print(f"fsync {path}", flush=True)
            time.sleep(hold)  # the fsync window, held open: this runs in an I/O thread
        real(fd)
        if watched:
            print(f"fsynced {path}", flush=True)
            time.sleep(hold)  # durable bytes, offset not yet committed

    os.fsync = fsync


async def serve(port: int, data_dir: Path) -> None:
    settings = ServerSettings(host="127.0.0.1", port=port, data_dir=data_dir)
    async with running_server(settings):
        print("listening", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--hold", type=float, default=0.15)
    args = parser.parse_args()
    hook(args.hold)
    asyncio.run(serve(args.port, args.data_dir))


if __name__ == "__main__":
    main()
