"""The connection loop: one session at a time, reconnecting for ever.

Why a layer of its own: everything here is about the socket's life, not a
task's. :class:`_SessionLoop` extends the task layer (``tasks._TaskRunner``)
with the transport it needs: ``_send`` and the reading, heartbeat and
housekeeping loops. The handshake, the list of hub URLs and the backoff are
in ``connection``.

* **One session at a time, reconnect for ever.** :meth:`_run_loop` connects
  (``hello`` lists unfinished attempts in ``resume``), runs the session, and
  on a broken socket waits an exponential backoff with jitter and tries
  again. Only a refused token (HTTP 401/403) or a permanent refusal of
  ``hello`` stops it (:class:`~switchyard_agent.errors.AgentError`).
* **Follow the cluster.** The agent knows a list of hub URLs
  (``connection._HubList``: the configured one, the fallbacks, the nodes
  named in ``welcome.hubs``). A broken session or a failed connect moves to
  the next one before the backoff; a ``shutdown`` naming other nodes moves to
  the first of them, after ``reconnect_after_ms`` plus a jittered backoff
  delay (so a node's agents do not all arrive in the same millisecond).
* **One ordered outbox per session.** Everything sent is put on a queue
  synchronously and a single writer task sends it, so a resumed attempt's
  items always precede its result, and handlers never wait on the socket.
  While disconnected nothing is queued; the local task keeps what matters.
* **Drain.** Once draining with no task left, the session ends
  ``"drained"`` and the loop returns instead of reconnecting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, WebSocketException

from . import protocol
from .connection import _Backoff, _HubList, close, describe, open_session
from .errors import AgentError, _Retry
from .protocol import Ack, Cancel, Error, HubMessage, ProtocolError, Shutdown, Task, TaskRef, Welcome
from .tasks import _TaskRunner

log = logging.getLogger("switchyard_agent")


@dataclass
class _End:
    """Why a session ended."""

    kind: str  # "drained" | "lost" | "shutdown"
    reason: str = ""
    after: float | None = None  # seconds, for "shutdown"
    hubs: tuple[str, ...] = ()  # other nodes to go to, for "shutdown"


class _SessionLoop(_TaskRunner):
    """Sessions with the hub, one at a time, around the task table."""

    # Settings, set by Agent.__init__.
    url: str
    _hubs: _HubList
    name: str
    version: str
    labels: dict[str, str]
    agent_id: str | None
    _token: str
    _user_agent: str
    _backoff: tuple[float, float]
    _ack_timeout: float
    _connect_timeout: float
    _heartbeat_override: float | None
    _auto_extend: bool
    _on_welcome: Callable[[Welcome], None] | None
    _health: str
    _started: float
    # Run state: set by Agent.run, or per session.
    _outbox: asyncio.Queue[dict[str, Any]] | None
    _end: asyncio.Future[_End] | None
    _wake: asyncio.Event | None
    _connected: asyncio.Event | None

    # ---------------------------------------------- the loop

    async def _run_loop(self) -> None:
        backoff = _Backoff(*self._backoff)
        hubs = self._hubs
        while True:
            if self._draining and not self._tasks:
                log.info("drained")
                return
            url = hubs.current
            try:
                ws, welcome = await self._handshake(url)
            except AgentError:
                raise
            except (_Retry, OSError, WebSocketException, asyncio.TimeoutError) as e:
                hubs.rotate()
                delay = backoff.next()
                log.warning(
                    "cannot connect to the hub at %s (%s); trying %s in %.2fs", url, describe(e), hubs.current, delay
                )
            else:
                backoff.reset()
                hubs.learn(welcome.hubs)
                end = await self._session(ws, welcome)
                if end.kind == "drained":
                    log.info("drained")
                    return
                if end.kind == "shutdown":
                    hubs.move_to(end.hubs)
                    # Jitter on top of the hub's delay: the node's agents
                    # must not all arrive in one millisecond.
                    delay = (end.after or 0.0) + backoff.next()
                else:
                    hubs.rotate()
                    delay = backoff.next()
                log.warning(
                    "disconnected from the hub at %s (%s); connecting to %s in %.2fs",
                    url, end.reason, hubs.current, delay,
                )
            await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Sleeps before reconnecting; a drain with nothing left ends it early."""
        assert self._wake is not None
        deadline = time.monotonic() + delay
        while not (self._draining and not self._tasks):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def _handshake(self, url: str) -> tuple[ClientConnection, Welcome]:
        hello = protocol.hello(
            self.name,
            [r.capability for r in self._caps.values()],
            version=self.version,
            labels=self.labels,
            resume=[t.ref for t in self._tasks.values()],
        )
        return await open_session(
            url, self._token, hello, timeout=self._connect_timeout, user_agent=self._user_agent
        )

    async def _session(self, ws: ClientConnection, welcome: Welcome) -> _End:
        assert self._connected is not None
        log.info(
            "connected to the hub at %s as %s: agent_id=%s session_id=%s resumed=%d",
            self._hubs.current,
            self.name,
            welcome.agent_id,
            welcome.session_id,
            len(welcome.resumed),
        )
        self.agent_id = welcome.agent_id
        self._lease_ms = max(welcome.lease_ms, 1)
        interval = self._heartbeat_override or welcome.heartbeat_interval_ms / 1000.0
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        end_fut: asyncio.Future[_End] = asyncio.get_running_loop().create_future()
        self._outbox, self._end = outbox, end_fut
        writer = asyncio.create_task(self._write_loop(ws, outbox))
        helpers = [
            asyncio.create_task(self._read_loop(ws)),
            asyncio.create_task(self._heartbeat_loop(max(interval, 0.01))),
            asyncio.create_task(self._housekeeping_loop()),
        ]
        end: _End | None = None
        try:
            self._resume(welcome.resumed)
            if self._draining:
                self._send(protocol.drain())
            self._connected.set()
            if self._on_welcome is not None:
                try:
                    self._on_welcome(welcome)
                except Exception:
                    log.exception("on_welcome raised")
            self._check_drained()
            end = await end_fut
        finally:
            self._outbox = self._end = None
            self._connected.clear()
            self._pending_declines.clear()
            for t in helpers:
                t.cancel()
            if end is not None and end.kind in ("drained", "shutdown"):
                try:  # let the last frames (the drain, results) go out
                    await asyncio.wait_for(outbox.join(), 1.0)
                except asyncio.TimeoutError:
                    pass
            writer.cancel()
            await asyncio.gather(writer, *helpers, return_exceptions=True)
            await close(ws)
        return end

    def _resume(self, resumed: tuple[TaskRef, ...]) -> None:
        """Keeps the attempts the hub still gives us, re-sending their items
        and result (in this order), and drops the others."""
        keep = set(resumed)
        for task_id, local in list(self._tasks.items()):
            if local.ref not in keep:
                log.warning("the hub did not resume task %s attempt %d: dropping it", task_id, local.ref.attempt)
                self._drop(task_id)
                continue
            for msg in local.items:
                self._send(msg)
            if local.result is not None:
                self._send(local.result)
                local.result_sent_at = time.monotonic()

    # ---------------------------------------------- the session's tasks

    async def _write_loop(self, ws: ClientConnection, outbox: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            msg = await outbox.get()
            try:
                await ws.send(protocol.encode(msg))
            except ConnectionClosed as e:
                self._end_session(_End("lost", describe(e)))
                return
            except (TypeError, ValueError) as e:
                log.error("cannot encode a %s message: %s", msg.get("type"), e)
            finally:
                outbox.task_done()

    async def _read_loop(self, ws: ClientConnection) -> None:
        reason = "the connection ended"
        try:
            async for raw in ws:
                try:
                    msg = protocol.decode(raw)
                except ProtocolError as e:
                    log.warning("ignoring a frame from the hub: %s", e)
                    continue
                self._on_message(msg)
        except ConnectionClosed as e:
            reason = describe(e)
        else:
            if ws.close_code is not None:
                reason = f"closed by the hub ({ws.close_code}{': ' + ws.close_reason if ws.close_reason else ''})"
        self._end_session(_End("lost", reason))

    async def _heartbeat_loop(self, interval: float) -> None:
        while True:  # the first one right after `welcome`
            self._send(self._heartbeat())
            await asyncio.sleep(interval)

    async def _housekeeping_loop(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            now = time.monotonic()
            for local in self._tasks.values():
                if local.result_sent_at is not None and now - local.result_sent_at >= self._ack_timeout:
                    self._end_session(
                        _End("lost", f"no ack for the result of task {local.task.task_id} within {self._ack_timeout}s")
                    )
                    return
            for ref, sent in list(self._pending_declines.items()):
                if now - sent >= self._ack_timeout:
                    log.warning("no ack for the decline of task %s; forgetting it", ref.task_id)
                    del self._pending_declines[ref]
            self._check_drained()
            if self._auto_extend:
                every = self._lease_ms / 3000.0
                for local in self._tasks.values():
                    if local.running and now - local.last_progress >= every:
                        local.last_progress = now
                        self._send(protocol.progress(local.ref))

    # ---------------------------------------------- frames

    def _send(self, msg: dict[str, Any]) -> bool:
        """Queues a frame on the current session; ``False`` when offline."""
        if self._outbox is None:
            return False
        self._outbox.put_nowait(msg)
        return True

    def _on_message(self, msg: HubMessage) -> None:
        if isinstance(msg, Task):
            self._on_task(msg)
        elif isinstance(msg, Cancel):
            self._on_cancel(msg)
        elif isinstance(msg, Ack):
            self._on_ack(msg)
        elif isinstance(msg, Error):
            self._on_error(msg)
        elif isinstance(msg, Shutdown):
            log.info("the hub asked us to go away: %s%s", msg.reason, f" (to {', '.join(msg.hubs)})" if msg.hubs else "")
            after = msg.reconnect_after_ms / 1000.0 if msg.reconnect_after_ms is not None else None
            self._end_session(_End("shutdown", f"shutdown: {msg.reason}", after, msg.hubs))
        elif isinstance(msg, Welcome):
            log.warning("ignoring a second `welcome`")

    def _heartbeat(self) -> dict[str, Any]:
        capacity = sum(r.capability.max_concurrency for r in self._caps.values())
        running = sum(1 for t in self._tasks.values() if t.running)
        return protocol.heartbeat(
            status=self._health,
            uptime_ms=int((time.monotonic() - self._started) * 1000),
            load=running / capacity if capacity else 0.0,
            metrics={"running_tasks": running},
        )

    # ---------------------------------------------- ending

    def _end_session(self, end: _End) -> None:
        if self._end is not None and not self._end.done():
            self._end.set_result(end)

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()
        self._check_drained()

    def _check_drained(self) -> None:
        if self._draining and not self._tasks and not self._pending_declines:
            self._end_session(_End("drained", "drained"))
