"""Opening one session (connect, ``hello``, ``welcome``), where to try, and the backoff between tries.

Why a module of its own: this is the only code that decides whether a failed
connection attempt is worth retrying, and where the next attempt goes
(:class:`_HubList`: the configured URL, the fallbacks, and the nodes the hub's
cluster named, tried round robin). :func:`open_session` needs no agent
state beyond the ``hello`` to send, and classifies every way it can fail
into exactly two outcomes: :class:`~switchyard_agent.errors.AgentError`
(a refused token, HTTP 401/403, or a permanent refusal of ``hello``: the
agent stops) or :class:`~switchyard_agent.errors._Retry` / a socket error
(the session loop moves to the next URL, waits :class:`_Backoff` and tries
again). Keeping that
decision in one place keeps the loop in ``session`` about sessions only.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Iterable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from . import protocol
from .errors import AgentError, _Retry
from .protocol import PERMANENT_HELLO_ERRORS, Error, ProtocolError, Shutdown, Welcome

log = logging.getLogger("switchyard_agent")


class _Backoff:
    """Exponential delays from ``low`` to ``high`` seconds with jitter (each
    delay plus up to as much again, capped at ``high``), like the Rust SDK."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, high
        self.reset()

    def reset(self) -> None:
        self._next = self.low

    def next(self) -> float:
        delay = min(self._next * (1.0 + random.random()), self.high)
        self._next = min(self._next * 2.0, self.high)
        return delay


class _HubList:
    """Where the hub can be reached, like the Rust SDK's runner: the
    configured URL, then the fallback URLs, then the nodes named since in
    ``welcome.hubs`` and ``shutdown.hubs``, normalised
    (``ws://host:port/v1/agents/connect``) and without duplicates.
    :attr:`current` is the one tried next."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self.urls: list[str] = []
        self.index = 0
        self.learn(urls)

    @property
    def current(self) -> str:
        return self.urls[self.index]

    def learn(self, urls: Iterable[str]) -> list[int]:
        """Adds the URLs (base URLs or full ones) not known yet, skipping
        invalid ones; returns the positions of all of them, in order."""
        at = []
        for url in urls:
            try:
                url = protocol.normalize_url(url)
            except ValueError:
                log.warning("ignoring a hub URL that is not ws:// or http://: %r", url)
                continue
            if url not in self.urls:
                log.debug("learned a hub node: %s", url)
                self.urls.append(url)
            at.append(self.urls.index(url))
        return at

    def rotate(self) -> None:
        """Moves to the next known node, after a broken session or a failed connect."""
        if self.urls:
            self.index = (self.index + 1) % len(self.urls)

    def move_to(self, urls: Iterable[str]) -> None:
        """Learns the nodes a ``shutdown`` named and moves to the first one
        that is not the current URL (stays put when there is none)."""
        for i in self.learn(urls):
            if i != self.index:
                self.index = i
                return


async def open_session(
    url: str,
    token: str,
    hello: dict[str, Any],
    *,
    timeout: float,
    user_agent: str,
) -> tuple[ClientConnection, Welcome]:
    """Connects with ``Authorization: Bearer``, sends ``hello`` and waits (at
    most ``timeout`` seconds for each of the upgrade and the answer) for
    ``welcome``.

    Raises :class:`AgentError` when retrying cannot help, :class:`_Retry`,
    ``OSError``, ``WebSocketException`` or ``asyncio.TimeoutError`` when it
    may. On any failure the socket is closed.
    """
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            user_agent_header=user_agent,
            open_timeout=timeout,
            max_size=None,
        )
    except InvalidStatus as e:
        status = e.response.status_code
        body = (e.response.body or b"").decode("utf-8", "replace").strip()
        if status in (401, 403):
            raise AgentError(
                f"the hub refused the agent's token (HTTP {status}){': ' + body if body else ''}; "
                "an agent needs a token of role `agent` whose `sub` is its name",
                status=status,
            ) from None
        raise _Retry(f"the hub answered the upgrade with HTTP {status}") from None
    try:
        await ws.send(protocol.encode(hello))
        return ws, await _await_welcome(ws, timeout)
    except BaseException:
        await close(ws)
        raise


async def _await_welcome(ws: ClientConnection, timeout: float) -> Welcome:
    deadline = time.monotonic() + timeout
    refusal: Error | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retry("no `welcome` in time after `hello`")
        try:
            raw = await asyncio.wait_for(ws.recv(), remaining)
        except ConnectionClosed as e:
            if refusal is not None:
                raise _Retry(f"the hub refused hello: {refusal.code}: {refusal.message}") from None
            raise _Retry(f"closed before `welcome`: {describe(e)}") from None
        try:
            msg = protocol.decode(raw)
        except ProtocolError as e:
            log.warning("ignoring a frame from the hub: %s", e)
            continue
        if isinstance(msg, Welcome):
            return msg
        if isinstance(msg, Error):
            log.warning("the hub refused hello: %s: %s", msg.code, msg.message)
            if msg.code in PERMANENT_HELLO_ERRORS:
                raise AgentError(f"the hub refused the agent's hello: {msg.code}: {msg.message}", code=msg.code)
            refusal = msg
        elif isinstance(msg, Shutdown):
            raise _Retry(f"the hub is shutting down: {msg.reason}")
        else:
            log.warning("ignoring a %s before `welcome`", type(msg).__name__.lower())


async def close(ws: ClientConnection) -> None:
    """Closes the socket, waiting at most a second for the closing handshake."""
    try:
        await asyncio.wait_for(ws.close(), 1.0)
    except (asyncio.TimeoutError, OSError, WebSocketException):
        pass


def describe(e: BaseException) -> str:
    """A short description of why a connection failed or ended, for logs."""
    if isinstance(e, ConnectionClosed):
        frame = e.rcvd or e.sent
        if frame is None:
            return "the connection broke"
        return f"closed ({frame.code}{': ' + frame.reason if frame.reason else ''})"
    return str(e) or type(e).__name__
