"""Bearer tokens mapped to owners: `--tokens-file FILE` (one `token owner` per line, `#`
comments) or `UPWELL_TOKENS` (the same pairs separated by commas or newlines).

With tokens, every request but `/`, `/static/*`, `/healthz`, `/readyz` and CORS preflights
needs `Authorization: Bearer <token>` (else 401 with `WWW-Authenticate: Bearer`). Without
tokens every request is the owner `anonymous`: fine on a loopback address, and loudly
warned about on any other.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.typedefs import Middleware

from ..errors import ConfigError
from .owners import OWNER, current_owner
from .state import ANONYMOUS

log = logging.getLogger("upwell.server")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_PATHS = frozenset({"/", "/healthz", "/readyz", "/favicon.ico"})
_OPEN_PREFIXES = ("/static/",)
MIN_TOKEN_LENGTH = 16


def parse_tokens(text: str, where: str) -> dict[str, str]:
    """`token owner` pairs, one per line or comma-separated; ConfigError on a bad line."""
    tokens: dict[str, str] = {}
    for number, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ConfigError(f"{where} entry {number}: expected 'token owner'")
        token, owner = fields
        if len(token) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"{where} entry {number}: tokens must be at least {MIN_TOKEN_LENGTH} characters"
            )
        if token in tokens:
            raise ConfigError(f"{where} entry {number}: the same token appears twice")
        tokens[token] = owner
    return tokens


def load_tokens(tokens_file: Path | None, env: Mapping[str, str]) -> dict[str, str]:
    """Tokens from the file and $UPWELL_TOKENS together (never from the command line)."""
    tokens: dict[str, str] = {}
    if tokens_file is not None:
        try:
            text = tokens_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"{tokens_file}: cannot read the tokens file ({exc.strerror})"
            ) from None
        tokens.update(parse_tokens(text, str(tokens_file)))
    if env.get("UPWELL_TOKENS"):
        tokens.update(parse_tokens(env["UPWELL_TOKENS"], "UPWELL_TOKENS"))
    return tokens


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_open(host: str, tokens: Mapping[str, str]) -> bool:
    """Log a loud warning when a server without tokens listens beyond loopback."""
    if tokens or is_loopback(host):
        return False
    log.warning(
        "WARNING: no tokens are configured and the server listens on %s: ANYONE who can reach"
        " it can upload, read and delete files. Set --tokens-file or UPWELL_TOKENS.",
        host or "all addresses",
    )
    return True


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def owner_for(token: str | None, tokens: Mapping[str, str]) -> str | None:
    """The token's owner; every token is compared, in constant time per token."""
    if token is None:
        return None
    found = None
    candidate = token.encode()
    for known, owner in tokens.items():
        if hmac.compare_digest(candidate, known.encode()):
            found = owner
    return found


def auth_middleware(
    tokens: Mapping[str, str],
) -> Middleware:
    """Sets the request's owner (current_owner) from its bearer token."""
    tokens = dict(tokens)

    @web.middleware
    async def auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
        path = request.path
        if not tokens:
            owner: str | None = ANONYMOUS
        elif path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES):
            owner = None
        else:
            owner = owner_for(_bearer(request), tokens)
            if owner is None:
                return web.Response(
                    status=401,
                    text="a valid bearer token is needed (Authorization: Bearer <token>)\n",
                    headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="upwell"'},
                )
        if owner is not None:
            request[OWNER] = owner
        reset = current_owner.set(owner)
        try:
            return await handler(request)
        finally:
            current_owner.reset(reset)

    return auth
