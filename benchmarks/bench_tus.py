"""tus uploads side by side on loopback: MB/s and client peak RSS; writes BENCHMARKS.md.

Run from the repository root, after `.ci/run` (or `pip install -e '.[test]'` and
`npm ci --prefix tests/interop/node`):

    .venv/bin/python benchmarks/bench_tus.py            # 256 MiB file, 3 runs per case
    .venv/bin/python benchmarks/bench_tus.py --big      # also upwell upload of a 4 GiB file

Cases (every client with its own default settings unless the label says otherwise):
  (a)  upwell upload            -> upwell serve
  (a1) upwell upload --parallel 1 -> upwell serve      (informative: one stream)
  (a4) upwell upload --parallel 4 -> upwell serve      (informative: concatenation)
  (b)  curl -T, one streamed PATCH -> upwell serve      (POST to create first)
  (c)  tus-js-client (Node)     -> upwell serve
  (d)  tuspy (sync TusClient)   -> upwell serve
  (e)  curl -T, one streamed PATCH -> @tus/server + @tus/file-store
  (f)  tus-js-client (Node)     -> @tus/server + @tus/file-store
  (big) upwell upload of a 4 GiB file -> upwell serve, for peak RSS (with --big)

Each run starts a fresh server with an empty data dir (in a temp dir on the same disk as the
source file), runs the client processes, then checks the stored bytes (SHA-256, untimed) and
deletes them. Time is wall clock from starting the client's first process to reaping its last;
MB/s is 10**6 bytes per second. Peak RSS is the larger of the kernel's high-water mark of each
client process (GNU time's %M, when /usr/bin/time exists) and the polled RSS sum of its process
tree (psutil, every 5 ms). The
median of the runs is reported. Exit status 1 when any case failed (it is still reported).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "interop"))

import peers

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.sections import write_section

MIB = 1024 * 1024
RSS_POLL_INTERVAL = 0.005
GNU_TIME = shutil.which("time", path="/usr/bin:/bin")  # the program, not the shell keyword

ServerFactory = Callable[[Path, Path], contextlib.AbstractContextManager[peers.Server]]
# A client runs its processes against a server and returns them with the upload's URL.
Client = Callable[[peers.Server, Path, Path, dict[str, str]], tuple[list["Measured"], str]]


@dataclass
class Measured:
    """One client process: exit status, its wall time, peak RSS in bytes, its output."""

    argv: list[str]
    returncode: int
    seconds: float
    peak_rss: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system time of the client (GNU time), 0 when unknown


@dataclass
class Case:
    key: str
    label: str
    server: str  # "upwell" or "tus-node"
    client: Client
    big: bool = False


@dataclass
class Outcome:
    case: Case
    seconds: list[float] = field(default_factory=list)
    peak_rss: list[int] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    error: str | None = None

    def mb_per_s(self, size: int) -> float | None:
        return size / 1e6 / statistics.median(self.seconds) if self.seconds else None

    def rss_mib(self) -> float | None:
        return statistics.median(self.peak_rss) / MIB if self.peak_rss else None


def measure(argv: Sequence[str], env: dict[str, str], workdir: Path) -> Measured:
    """Run one process to completion, timing it and tracking its peak RSS.

    `ru_maxrss` of a child forked from this (large) Python process counts the pages it shared
    with us before exec, so the kernel's figure comes from GNU time, a tiny parent, when it is
    installed; without it, psutil polls the RSS sum of the process tree.
    """
    out_path, err_path, rss_path = (workdir / n for n in ("client.out", "client.err", "rss"))
    wrapped = GNU_TIME is not None
    full = [GNU_TIME, "-f", "%M %U %S", "-o", str(rss_path), *argv] if GNU_TIME else list(argv)
    with out_path.open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(full, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    polled = 0
    done = threading.Event()

    def poll_tree() -> None:
        nonlocal polled
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(proc.pid)
            while not done.is_set():
                total = 0
                with contextlib.suppress(psutil.Error):
                    tree = root.children(recursive=True) + ([] if wrapped else [root])
                    for p in tree:
                        with contextlib.suppress(psutil.Error):
                            total += p.memory_info().rss
                polled = max(polled, total)
                done.wait(RSS_POLL_INTERVAL)

    # Each client is one process, so GNU time's figure is the whole of it. Polling the process
    # tree every few ms costs a good part of a core, which the client and server under test
    # would lose on a 2-core machine: poll only when there is no GNU time.
    poller = None if wrapped else threading.Thread(target=poll_tree, daemon=True)
    if poller is not None:
        poller.start()
    returncode = proc.wait()
    seconds = time.perf_counter() - start
    done.set()
    if poller is not None:
        poller.join()
    kernel, cpu = 0, 0.0
    if wrapped:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = rss_path.read_text().split()[-3:]
            kernel = int(fields[0]) * 1024  # %M is in KiB
            cpu = float(fields[1]) + float(fields[2])
    return Measured(
        argv=list(argv),
        returncode=returncode,
        seconds=seconds,
        peak_rss=max(polled, kernel),
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
        cpu_seconds=cpu,
    )


def checked(m: Measured) -> Measured:
    if m.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(m.argv)}` exited with {m.returncode}\n"
            f"stderr: {m.stderr[-2000:]}\nstdout: {m.stdout[-1000:]}"
        )
    return m


def upload_url_of(result: Measured) -> str:
    """The URL a client printed last: upwell's `file_uri`, the node and tuspy scripts' `url`."""
    last = peers.parse_last_json_line(result.stdout)
    url = last.get("file_uri") or last.get("url")
    if not isinstance(url, str):
        raise RuntimeError(f"no upload URL in the client's last stdout line: {last}")
    return url


# --- clients -------------------------------------------------------------------------------


def upwell_upload(parallel: int | None = None) -> Client:
    def run(
        server: peers.Server, src: Path, work: Path, env: dict[str, str]
    ) -> tuple[list[Measured], str]:
        m = checked(
            measure(peers.upwell_upload_argv(server.url, src, parallel=parallel), env, work)
        )
        return [m], upload_url_of(m)

    return run


def curl_put(
    server: peers.Server, src: Path, work: Path, env: dict[str, str]
) -> tuple[list[Measured], str]:
    created = checked(measure(peers.curl_create_argv(server.url, src.stat().st_size), env, work))
    if not created.stdout.strip():
        raise RuntimeError(f"POST {server.url} answered without a Location header")
    upload_url = peers.absolute_upload_url(server.url, created.stdout)
    patched = checked(measure(peers.curl_patch_argv(upload_url, src), env, work))
    return [created, patched], upload_url


def tus_js(
    server: peers.Server, src: Path, work: Path, env: dict[str, str]
) -> tuple[list[Measured], str]:
    m = checked(measure(peers.tus_js_upload_argv(server.url, src), env, work))
    return [m], upload_url_of(m)


def tuspy(
    server: peers.Server, src: Path, work: Path, env: dict[str, str]
) -> tuple[list[Measured], str]:
    m = checked(measure(peers.tuspy_upload_argv(server.url, src), env, work))
    return [m], upload_url_of(m)


CASES = [
    Case("a", "upwell upload → upwell serve", "upwell", upwell_upload()),
    Case("a1", "upwell upload --parallel 1 → upwell serve", "upwell", upwell_upload(1)),
    Case("a4", "upwell upload --parallel 4 → upwell serve", "upwell", upwell_upload(4)),
    Case("b", "curl -T (one PATCH) → upwell serve", "upwell", curl_put),
    Case("c", "tus-js-client → upwell serve", "upwell", tus_js),
    Case("d", "tuspy → upwell serve", "upwell", tuspy),
    Case("e", "curl -T (one PATCH) → @tus/server", "tus-node", curl_put),
    Case("f", "tus-js-client → @tus/server", "tus-node", tus_js),
]
SERVERS: dict[str, ServerFactory] = {
    "upwell": peers.upwell_serve,
    "tus-node": peers.tus_node_server,
}
RATIOS = [
    ("upwell upload / curl -T, into upwell serve", "a", "b", 0.8),
    ("upwell upload / tus-js-client, into upwell serve", "a", "c", 1.5),
    ("upwell serve / @tus/server, same curl -T", "b", "e", 1.5),
]


def verify(server: peers.Server, upload_url: str, src_hash: str) -> None:
    """The stored bytes are the source's; read from the store (@tus/server) or by GET (upwell)."""
    if server.name == "@tus/server":
        got = peers.sha256_file(server.data_dir / upload_url.rstrip("/").rsplit("/", 1)[-1])
    else:
        got = peers.sha256_url(upload_url)
    if got != src_hash:
        raise RuntimeError(f"{upload_url}: stored bytes differ from the source (sha256 {got})")


def run_once(
    case: Case, outcome: Outcome, i: int, src: Path, src_hash: str, work_root: Path
) -> None:
    """Run `case` once (run number i), adding its time and peak RSS to `outcome`."""
    if outcome.error:
        return
    work = work_root / f"{case.key}-{i}"
    work.mkdir()
    env = peers.client_env(work / "client-sessions")
    try:
        with SERVERS[case.server](work / "server-data", work / "server.log") as server:
            try:
                results, upload_url = case.client(server, src, work, env)
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{server.name} log:\n{server.log_tail()}") from exc
            verify(server, upload_url, src_hash)
            outcome.seconds.append(sum(r.seconds for r in results))
            outcome.peak_rss.append(max(r.peak_rss for r in results))
            outcome.commands = [redact(r.argv, work_root, server.url, results[0]) for r in results]
    except Exception as exc:  # one broken case must not hide the others' numbers
        outcome.error = f"run {i + 1}: {type(exc).__name__}: {exc}"
        print(f"  [{case.key}] FAILED {outcome.error}", file=sys.stderr)
        return
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rate = src.stat().st_size / 1e6 / outcome.seconds[-1]
    rss = outcome.peak_rss[-1] / MIB
    print(f"  [{case.key}] run {i + 1}: {rate:.1f} MB/s, peak RSS {rss:.1f} MiB", file=sys.stderr)


def run_cases(
    cases: list[Case], src: Path, src_hash: str, runs: int, work_root: Path
) -> list[Outcome]:
    """Every case once per round, round after round, so that the machine's slow and fast
    moments (this VM's are large) fall on all cases alike; one untimed warm-up round first."""
    warmup = [Outcome(c) for c in cases]
    print("warm-up round (not counted)", file=sys.stderr)
    for case, outcome in zip(cases, warmup, strict=True):
        run_once(case, outcome, 0, src, src_hash, work_root)
    outcomes = [Outcome(c) for c in cases]
    for i in range(runs):
        print(f"round {i + 1} of {runs}", file=sys.stderr)
        for case, outcome in zip(cases, outcomes, strict=True):
            run_once(case, outcome, i, src, src_hash, work_root)
    return outcomes


def redact(argv: list[str], work_root: Path, endpoint: str, first: Measured) -> str:
    """The command as a reader can rerun it: temp paths and ports become names."""
    text = shlex.join(argv)
    if first.stdout.strip() and not first.stdout.lstrip().startswith("{"):
        text = text.replace(peers.absolute_upload_url(endpoint, first.stdout), "$UPLOAD_URL")
    text = text.replace(endpoint, "$ENDPOINT").replace(str(work_root), "$WORK")
    text = text.replace(str(peers.REPO) + "/", "").replace(sys.executable, "python")
    return text


def versions() -> dict[str, str]:
    def cmd(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
            return out.splitlines()[0].strip() if out else "?"
        except OSError:
            return "not found"

    def dist(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    v = {
        "upwell": dist("upwell"),
        "aiohttp": dist("aiohttp"),
        "Python": platform.python_version(),
        "tuspy": dist("tuspy"),
        "requests (tuspy's HTTP)": dist("requests"),
        "curl": cmd(["curl", "--version"]),
        "Node.js": cmd(["node", "--version"]),
    }
    for name in peers.NPM_PEERS:
        try:
            v[name] = peers.npm_peer_version(name)
        except OSError:
            v[name] = "not installed"
    return v


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "CPU model": model,
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": platform.release(),
    }


def server_command(argv_of: Callable[[int, Path], list[str]]) -> str:
    return (
        shlex.join(argv_of(1, Path("/WORK/server-data")))
        .replace(" 1 ", " $PORT ")
        .replace("/WORK", "$WORK")
    )


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "—" if value is None else format(value, spec)


def report(
    outcomes: list[Outcome], size: int, runs: int, big_size: int, argv: list[str], work: Path
) -> str:
    by_key = {o.case.key: o for o in outcomes}
    lines = [
        "## tus uploads side by side",
        "",
        f"Written by `benchmarks/bench_tus.py` on {time.strftime('%Y-%m-%d %H:%M %Z')}: "
        f"`{shlex.join(argv)}`.",
        "",
        f"tus uploads on loopback (127.0.0.1) of a {size / MIB:.0f} MiB file of random bytes; "
        f"median of {runs} runs per case, run in rounds (every case once per round, after one "
        "untimed warm-up round) so the machine's slow moments fall on all cases alike; every "
        "run starts a fresh server with an empty data "
        f"directory under `{work}` (same disk as the source file) and checks the stored bytes' "
        "SHA-256 afterwards (untimed). MB/s = 10^6 bytes/s of wall time from the client's first "
        "process start to its last exit (the process start-up is included: it is what a user "
        "waits for). Peak RSS = the client's kernel high-water mark (GNU time %M; each client "
        "is one process), in MiB; the larger of the two curl calls'. Each client runs with its "
        "own defaults."
        + ("" if GNU_TIME else " (GNU time was not installed: RSS polled every 5 ms instead.)"),
        "",
        "| case | client → server | MB/s | client peak RSS (MiB) | runs (s) |",
        "|---|---|---:|---:|---|",
    ]
    for o in outcomes:
        case_size = big_size if o.case.big else size
        if o.error is not None:
            lines.append(f"| {o.case.key} | {o.case.label} | failed | — | see below |")
            continue
        runs_s = ", ".join(f"{s:.2f}" for s in o.seconds)
        lines.append(
            f"| {o.case.key} | {o.case.label} | {fmt(o.mb_per_s(case_size))} "
            f"| {fmt(o.rss_mib())} | {runs_s} |"
        )
    lines += [
        "",
        "### Ratios (MB/s over MB/s)",
        "",
        "| ratio | value | target | met |",
        "|---|---:|---:|---|",
    ]
    for label, num, den, target in RATIOS:
        a, b = by_key.get(num), by_key.get(den)
        ra = a.mb_per_s(size) if a else None
        rb = b.mb_per_s(size) if b else None
        if ra is None or rb is None:
            lines.append(f"| {label} ({num}/{den}) | — | ≥ {target} | not measured |")
        else:
            ratio = ra / rb
            met = "yes" if ratio >= target else "**no**"
            lines.append(f"| {label} ({num}/{den}) | {ratio:.2f} | ≥ {target} | {met} |")
    failures = [(o, o.error) for o in outcomes if o.error is not None]
    if failures:
        lines += ["", "### Failures", ""]
        for o, error in failures:
            lines += [f"### ({o.case.key}) {o.case.label}", "", "```", error.strip(), "```", ""]
    lines += ["", "### Machine", ""]
    lines += [f"- {k}: {v}" for k, v in machine().items()]
    lines += ["", "### Versions", ""]
    lines += [f"- {k}: {v}" for k, v in versions().items()]
    lines += [
        "",
        "### Commands",
        "",
        "`$ENDPOINT` is the server's tus endpoint `http://127.0.0.1:PORT/files/`; `$UPLOAD_URL` "
        "the Location the POST answered; `$WORK` the run's temp directory. Servers:",
        "",
        "```",
        " ".join(peers.upwell_serve_argv(0, Path("$WORK/server-data"))).replace(" 0 ", " $PORT "),
        " ".join(peers.tus_node_server_argv(0, Path("$WORK/server-data"))).replace(
            " 0 ", " $PORT "
        ),
        "```",
        "",
    ]
    for o in outcomes:
        if o.commands:
            lines += [f"({o.case.key}) {o.case.label}:", "", "```", *o.commands, "```", ""]
    text = "\n".join(lines).rstrip() + "\n"
    return text.replace(str(peers.REPO) + "/", "").replace(sys.executable, "python")


@contextlib.contextmanager
def source(path: Path, size: int) -> Iterator[tuple[Path, str]]:
    print(f"writing {size / MIB:.0f} MiB of random bytes to {path}", file=sys.stderr)
    try:
        peers.write_random_file(path, size)
        yield path, peers.sha256_file(path)
    finally:
        path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=256, help="file size (default 256)")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (default 3)")
    parser.add_argument("--big", action="store_true", help="also upwell upload of a 4 GiB file")
    parser.add_argument("--big-gib", type=int, default=4, help=argparse.SUPPRESS)
    parser.add_argument("--only", help="comma-separated case keys, e.g. a,b,e")
    parser.add_argument("--work-dir", type=Path, default=None, help="temp root (default $TMPDIR)")
    parser.add_argument("--output", type=Path, default=peers.REPO / "BENCHMARKS.md")
    args = parser.parse_args(argv)

    missing = peers.missing_node_peers()
    if missing is not None:
        parser.error(missing)
    if not peers.upwell_binary().exists():
        parser.error(f"{peers.upwell_binary()} does not exist; run `pip install -e '.[test]'`")
    if shutil.which("curl") is None:
        parser.error("curl is not on PATH")

    # A pip install compiles upwell's bytecode; an editable one in an environment with
    # PYTHONDONTWRITEBYTECODE set would recompile it at every start, so compile it first.
    compiled = subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(peers.REPO / "src" / "upwell")],
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": ""},
        check=False,
    )
    if compiled.returncode != 0:
        parser.error("could not compile upwell's bytecode (compileall failed)")

    cases = CASES
    if args.only:
        keys = set(args.only.split(","))
        cases = [c for c in CASES if c.key in keys]
    size, big_size = args.size_mib * MIB, args.big_gib * 1024 * MIB
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="upwell-bench-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        with source(work / f"random-{args.size_mib}MiB.bin", size) as (src, src_hash):
            outcomes.extend(run_cases(cases, src, src_hash, args.runs, work))
        if args.big:
            big = Case(
                "big", f"upwell upload → upwell serve, {args.big_gib} GiB file", "upwell",
                upwell_upload(), big=True,
            )  # fmt: skip
            with source(work / f"random-{args.big_gib}GiB.bin", big_size) as (src, src_hash):
                print(f"({big.key}) {big.label}", file=sys.stderr)
                outcomes.append(Outcome(big))
                run_once(big, outcomes[-1], 0, src, src_hash, work)
        text = report(outcomes, size, args.runs, big_size, sys.argv, work.parent)
    write_section(args.output, "tus", text)
    print(text)
    return 1 if any(o.error for o in outcomes) else 0


if __name__ == "__main__":
    raise SystemExit(main())
