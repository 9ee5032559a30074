"""The agent: declare capabilities, then :meth:`Agent.run` speaks the protocol.

Why it is built this way (mirroring the Rust SDK's ``runner``):

* **One session at a time, reconnect for ever.** :meth:`Agent.run` loops:
  connect with ``Authorization: Bearer``, ``hello`` (listing unfinished
  attempts in ``resume``), wait for ``welcome``, run the session, and on a
  broken socket wait an exponential backoff with jitter and try again. Only a
  refused token (HTTP 401/403) or a permanent refusal of ``hello`` stops it.
* **Local tasks outlive sessions.** Each accepted attempt is a
  :class:`_LocalTask` holding its handler's asyncio task, every item it
  emitted and, once the handler returned, its ``complete``/``fail``. It is
  forgotten only when the hub acks the result, cancels the attempt, refuses it
  as stale, or leaves it out of ``welcome.resumed``. After a reconnect its
  items and result are re-sent (the hub stores an item id once).
* **One ordered outbox per session.** Everything sent is put on a queue
  synchronously and a single writer task sends it, so a resumed attempt's
  items always precede its result, and handlers never wait on the socket.
  While disconnected nothing is queued; the local task keeps what matters.
* **Drain** (``drain()``, or SIGTERM/SIGINT in :meth:`run_until_signal`)
  sends ``drain``, declines further pushes, lets running handlers finish and
  returns once every result (and decline) is acked.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from . import protocol
from .context import Fail, TaskContext
from .protocol import (
    MAX_RESULT_REFUSALS,
    PERMANENT_HELLO_ERRORS,
    TASK_GONE_ERRORS,
    TRANSIENT_ERRORS,
    Ack,
    Cancel,
    Capability,
    Error,
    HubMessage,
    Pricing,
    ProtocolError,
    Shutdown,
    Task,
    TaskRef,
    Welcome,
)

log = logging.getLogger("switchyard_agent")
log.addHandler(logging.NullHandler())  # the application configures logging

__version__ = "0.1.0"

Handler = Callable[[TaskContext, Any], Awaitable[Any]]
"""``async def handler(ctx, input) -> output``: the return value becomes
``complete.output``; an exception becomes ``fail``."""

DeclineFilter = Callable[[Task], "str | None"]
"""Called on every push before accepting; a returned string declines the push
with that reason."""


class AgentError(Exception):
    """The agent cannot run: a bad configuration, a refused token (HTTP
    401/403) or a permanent refusal of ``hello`` (see
    :data:`~switchyard_agent.protocol.PERMANENT_HELLO_ERRORS`). Retrying with
    the same settings cannot succeed, so :meth:`Agent.run` raises it."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class _Retry(Exception):
    """A connection attempt failed for now; reconnect with backoff."""


@dataclass
class _End:
    """Why a session ended."""

    kind: str  # "drained" | "lost" | "shutdown"
    reason: str = ""
    after: float | None = None  # seconds, for "shutdown"


@dataclass
class _LocalTask:
    """An attempt this agent runs, or whose result the hub has not acked yet."""

    task: Task
    handle: asyncio.Task[None] | None = None
    items: list[dict[str, Any]] = field(default_factory=list)
    result: dict[str, Any] | None = None
    result_sent_at: float | None = None
    result_refusals: int = 0
    last_progress: float = field(default_factory=time.monotonic)
    dropped: bool = False

    @property
    def ref(self) -> TaskRef:
        return self.task.ref

    @property
    def running(self) -> bool:
        return self.result is None and not self.dropped


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


@dataclass
class _Registered:
    capability: Capability
    handler: Handler
    decline_if: DeclineFilter | None


class Agent:
    """A Switchyard agent.

    ``url`` is the hub (``ws://host:port/v1/agents/connect``; ``http://host:port``
    works too), ``token`` a JWT of role ``agent`` whose ``sub`` is ``name``.
    Declare capabilities with :meth:`capability` (a decorator) or
    :meth:`handle`, then ``await agent.run_until_signal()``.
    """

    def __init__(
        self,
        url: str,
        token: str,
        name: str,
        *,
        version: str = __version__,
        labels: Mapping[str, str] | None = None,
        reconnect_backoff: tuple[float, float] = (0.1, 5.0),
        ack_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        heartbeat_interval: float | None = None,
        auto_extend_leases: bool = False,
        on_welcome: Callable[[Welcome], None] | None = None,
    ) -> None:
        try:
            self.url = protocol.normalize_url(url)
        except ValueError as e:
            raise AgentError(str(e)) from None
        if not name.strip():
            raise AgentError("the agent name is empty (it must equal the token's `sub`)")
        token = token.strip()
        if not token or any(c in token for c in "\r\n"):
            raise AgentError("the token is empty or holds a line break")
        low, high = reconnect_backoff
        if not 0 < low <= high:
            raise AgentError(f"reconnect backoff needs 0 < min <= max, got {low}..{high}")
        self.name = name
        self.version = version
        self.labels = dict(labels or {})
        self._token = token
        self._backoff = (low, high)
        self._ack_timeout = ack_timeout
        self._connect_timeout = connect_timeout
        self._heartbeat_override = heartbeat_interval
        self._auto_extend = auto_extend_leases
        self._on_welcome = on_welcome
        self._caps: dict[str, _Registered] = {}
        self._health = "active"
        # Run state.
        self._tasks: dict[str, _LocalTask] = {}
        self._pending_declines: dict[TaskRef, float] = {}
        self._outbox: asyncio.Queue[dict[str, Any]] | None = None
        self._end: asyncio.Future[_End] | None = None
        self._draining = False
        self._stopped = False
        self._run_task: asyncio.Task[Any] | None = None
        self._wake: asyncio.Event | None = None
        self._connected: asyncio.Event | None = None
        self._finished: asyncio.Event | None = None
        self._lease_ms = 60_000
        self._started = time.monotonic()
        self.agent_id: str | None = None

    # ------------------------------------------------------------ declaring

    def capability(
        self,
        name: str,
        *,
        version: str = "",
        max_concurrency: int = 1,
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        pricing: Pricing | None = None,
        decline_if: DeclineFilter | None = None,
    ) -> Callable[[Handler], Handler]:
        """Decorator: ``@agent.capability("text.summarize", max_concurrency=4)``
        on ``async def handler(ctx: TaskContext, input) -> output``."""

        def register(handler: Handler) -> Handler:
            self.handle(
                name,
                handler,
                version=version,
                max_concurrency=max_concurrency,
                input_schema=input_schema,
                output_schema=output_schema,
                pricing=pricing,
                decline_if=decline_if,
            )
            return handler

        return register

    def handle(
        self,
        name: str,
        handler: Handler,
        *,
        version: str = "",
        max_concurrency: int = 1,
        input_schema: Mapping[str, Any] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        pricing: Pricing | None = None,
        decline_if: DeclineFilter | None = None,
    ) -> None:
        """Declares capability ``name`` (sent in ``hello``) and its handler.

        ``max_concurrency`` tasks of it run at once (more pushes are
        declined). The JSON Schemas are checked by the hub. ``decline_if(task)``
        may return a reason to decline a push instead of accepting it.
        """
        if not name.strip():
            raise AgentError("a capability name is empty")
        if max_concurrency < 1:
            raise AgentError(f"capability `{name}`: max_concurrency must be at least 1")
        if name in self._caps:
            raise AgentError(f"capability `{name}` is declared twice")
        if not callable(handler):
            raise AgentError(f"capability `{name}`: the handler is not callable")
        cap = Capability(
            name=name,
            version=version,
            input_schema=dict(input_schema or {}),
            output_schema=dict(output_schema or {}),
            pricing=pricing or Pricing(),
            max_concurrency=max_concurrency,
        )
        self._caps[name] = _Registered(cap, handler, decline_if)

    # ------------------------------------------------------------ control

    @property
    def connected(self) -> bool:
        """Whether the agent holds a session (a ``welcome`` was received)."""
        return self._outbox is not None

    @property
    def running_tasks(self) -> list[TaskRef]:
        """Attempts this agent runs or holds unacked results of."""
        return [t.ref for t in self._tasks.values()]

    def drain(self) -> None:
        """Takes no new work: sends ``drain``, lets running tasks finish, and
        makes :meth:`run` return once their results are acked. Call it from
        the event loop's thread."""
        if self._draining:
            return
        self._draining = True
        log.info("draining (%d running)", len(self._tasks))
        self._send(protocol.drain())
        self._poke()

    def stop(self) -> None:
        """Stops at once, like a crash: handlers are cancelled, results not
        sent; :meth:`run` returns."""
        self._stopped = True
        if self._run_task is not None:
            self._run_task.cancel()

    def set_health(self, status: str) -> None:
        """``"active"`` or ``"degraded"``, reported by the next heartbeats
        (one is sent at once while connected)."""
        if status not in protocol.HEALTH_STATES:
            raise ValueError(f"status must be one of {protocol.HEALTH_STATES}")
        self._health = status
        self._send(self._heartbeat())

    async def wait_connected(self) -> str:
        """Waits for a session and returns the agent id; raises
        :class:`AgentError` if the agent stopped first."""
        while True:
            if self._connected is not None and self._connected.is_set() and self.agent_id:
                return self.agent_id
            if self._finished is not None and self._finished.is_set():
                raise AgentError("the agent is stopped")
            await asyncio.sleep(0.05)

    async def run_until_signal(self) -> None:
        """Runs until SIGINT or SIGTERM, then drains (a second signal stops at
        once). Returns normally after the drain; raises :class:`AgentError`
        if the hub refuses the agent for good."""
        loop = asyncio.get_running_loop()
        received = 0

        def on_signal(sig: signal.Signals) -> None:
            nonlocal received
            received += 1
            if received == 1:
                log.info("%s received: draining (signal again to stop at once)", sig.name)
                self.drain()
            else:
                log.warning("%s received again: stopping now", sig.name)
                self.stop()

        sigs = (signal.SIGINT, signal.SIGTERM)
        for sig in sigs:
            loop.add_signal_handler(sig, on_signal, sig)
        try:
            await self.run()
        finally:
            for sig in sigs:
                loop.remove_signal_handler(sig)

    async def run(self) -> None:
        """Connects, works, and reconnects with backoff until drained or
        stopped. Raises :class:`AgentError` on a permanent refusal."""
        if not self._caps:
            raise AgentError("the agent declares no capabilities: add one with @agent.capability(...)")
        if self._run_task is not None:
            raise RuntimeError("this agent is already running")
        self._run_task = asyncio.current_task()
        self._wake = asyncio.Event()
        self._connected = asyncio.Event()
        self._finished = asyncio.Event()
        self._started = time.monotonic()
        try:
            await self._run_loop()
        except asyncio.CancelledError:
            if not self._stopped:
                raise
        finally:
            for local in list(self._tasks.values()):
                self._drop(local.task.task_id)
            self._finished.set()

    # ------------------------------------------------------------ the loop

    async def _run_loop(self) -> None:
        backoff = _Backoff(*self._backoff)
        while True:
            if self._draining and not self._tasks:
                log.info("drained")
                return
            try:
                ws, welcome = await self._handshake()
            except AgentError:
                raise
            except (_Retry, OSError, WebSocketException, asyncio.TimeoutError) as e:
                delay = backoff.next()
                log.warning("cannot connect to the hub (%s); retrying in %.2fs", _describe(e), delay)
            else:
                backoff.reset()
                end = await self._session(ws, welcome)
                if end.kind == "drained":
                    log.info("drained")
                    return
                if end.kind == "shutdown" and end.after is not None:
                    delay = end.after
                else:
                    delay = backoff.next()
                log.warning("disconnected from the hub (%s); reconnecting in %.2fs", end.reason, delay)
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

    async def _handshake(self) -> tuple[ClientConnection, Welcome]:
        try:
            ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._token}"},
                user_agent_header=f"switchyard-agent-python/{__version__}",
                open_timeout=self._connect_timeout,
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
            resume = [t.ref for t in self._tasks.values()]
            hello = protocol.hello(
                self.name,
                [r.capability for r in self._caps.values()],
                version=self.version,
                labels=self.labels,
                resume=resume,
            )
            await ws.send(protocol.encode(hello))
            deadline = time.monotonic() + self._connect_timeout
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
                    raise _Retry(f"closed before `welcome`: {_describe(e)}") from None
                try:
                    msg = protocol.decode(raw)
                except ProtocolError as e:
                    log.warning("ignoring a frame from the hub: %s", e)
                    continue
                if isinstance(msg, Welcome):
                    return ws, msg
                if isinstance(msg, Error):
                    log.warning("the hub refused hello: %s: %s", msg.code, msg.message)
                    if msg.code in PERMANENT_HELLO_ERRORS:
                        raise AgentError(
                            f"the hub refused the agent's hello: {msg.code}: {msg.message}", code=msg.code
                        )
                    refusal = msg
                elif isinstance(msg, Shutdown):
                    raise _Retry(f"the hub is shutting down: {msg.reason}")
                else:
                    log.warning("ignoring a %s before `welcome`", type(msg).__name__.lower())
        except BaseException:
            await _close(ws)
            raise

    async def _session(self, ws: ClientConnection, welcome: Welcome) -> _End:
        assert self._connected is not None
        log.info(
            "connected to the hub as %s: agent_id=%s session_id=%s resumed=%d",
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
            await _close(ws)
        return end

    async def _write_loop(self, ws: ClientConnection, outbox: asyncio.Queue[dict[str, Any]]) -> None:
        while True:
            msg = await outbox.get()
            try:
                await ws.send(protocol.encode(msg))
            except ConnectionClosed as e:
                self._end_session(_End("lost", _describe(e)))
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
            reason = _describe(e)
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

    # ------------------------------------------------------------ messages

    def _send(self, msg: dict[str, Any]) -> bool:
        """Queues a frame on the current session; ``False`` when offline."""
        if self._outbox is None:
            return False
        self._outbox.put_nowait(msg)
        return True

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

    def _heartbeat(self) -> dict[str, Any]:
        capacity = sum(r.capability.max_concurrency for r in self._caps.values())
        running = sum(1 for t in self._tasks.values() if t.running)
        return protocol.heartbeat(
            status=self._health,
            uptime_ms=int((time.monotonic() - self._started) * 1000),
            load=running / capacity if capacity else 0.0,
            metrics={"running_tasks": running},
        )

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

    def _on_message(self, msg: HubMessage) -> None:
        if isinstance(msg, Task):
            self._on_task(msg)
        elif isinstance(msg, Cancel):
            if self._owns(msg.ref):
                log.info("task %s attempt %d cancelled by the hub: %s", msg.task_id, msg.attempt, msg.reason)
                self._drop(msg.task_id)
        elif isinstance(msg, Ack):
            if msg.of in ("complete", "fail") and self._owns(msg.ref):
                if self._tasks[msg.task_id].result is not None:
                    log.debug("%s of task %s acknowledged", msg.of, msg.task_id)
                    del self._tasks[msg.task_id]
                    self._poke()
            elif msg.of == "decline":
                self._pending_declines.pop(msg.ref, None)
                self._check_drained()
        elif isinstance(msg, Error):
            self._on_error(msg)
        elif isinstance(msg, Shutdown):
            log.info("the hub asked us to go away: %s", msg.reason)
            after = msg.reconnect_after_ms / 1000.0 if msg.reconnect_after_ms is not None else None
            self._end_session(_End("shutdown", f"shutdown: {msg.reason}", after))
        elif isinstance(msg, Welcome):
            log.warning("ignoring a second `welcome`")

    def _decline(self, task: Task, reason: str) -> None:
        log.info("declining task %s attempt %d: %s", task.task_id, task.attempt, reason)
        if self._send(protocol.decline(task.ref, reason)):
            self._pending_declines[task.ref] = time.monotonic()

    def _on_task(self, task: Task) -> None:
        if self._draining:
            return self._decline(task, "draining")
        registered = self._caps.get(task.capability)
        if registered is None:
            return self._decline(task, f"no handler for capability `{task.capability}`")
        existing = self._tasks.get(task.task_id)
        if existing is not None:
            if existing.ref.attempt == task.attempt:
                # Pushed again (e.g. our accept was lost): accept again, run once.
                self._send(protocol.accept(task.ref))
                return
            if existing.ref.attempt > task.attempt:
                log.warning("ignoring a push of an older attempt of task %s", task.task_id)
                return
            self._drop(task.task_id)
        limit = registered.capability.max_concurrency
        running = sum(1 for t in self._tasks.values() if t.running and t.task.capability == task.capability)
        if running >= limit:
            return self._decline(task, f"at capacity: {running} of {limit} `{task.capability}` tasks running")
        if registered.decline_if is not None:
            try:
                reason = registered.decline_if(task)
            except Exception as e:  # a broken filter must not take the agent down
                log.exception("decline_if raised")
                reason = f"decline_if raised {type(e).__name__}: {e}"
            if reason:
                return self._decline(task, reason)
        if not self._send(protocol.accept(task.ref)):
            return
        log.info(
            "accepted task %s attempt %d (%s, job %s, correlation %s)",
            task.task_id, task.attempt, task.capability, task.job_id, task.correlation_id,
        )
        local = _LocalTask(task)
        ctx = TaskContext(self, local, task, self._lease_ms)
        self._tasks[task.task_id] = local
        local.handle = asyncio.create_task(
            self._run_handler(local, ctx, registered.handler), name=f"switchyard-task-{task.task_id}"
        )

    async def _run_handler(self, local: _LocalTask, ctx: TaskContext, handler: Handler) -> None:
        ref = local.ref
        try:
            output = await handler(ctx, local.task.input)
        except asyncio.CancelledError:
            if local.dropped or self._stopped:
                return
            msg = protocol.fail(ref, "the handler was cancelled", retryable=True)
        except Fail as e:
            msg = protocol.fail(ref, e.message, e.retryable)
        except Exception as e:
            log.exception("the handler of task %s raised", ref.task_id)
            msg = protocol.fail(ref, f"{type(e).__name__}: {e}", retryable=True)
        else:
            try:
                msg = ctx._complete_message(output)
            except (TypeError, ValueError) as e:
                msg = protocol.fail(ref, f"cannot serialize the task output: {e}", retryable=False)
        self._on_result(local, msg)

    def _is_current(self, local: _LocalTask) -> bool:
        return not local.dropped and self._tasks.get(local.task.task_id) is local

    def _on_result(self, local: _LocalTask, msg: dict[str, Any]) -> None:
        if not self._is_current(local) or local.result is not None:
            return
        local.result = msg
        log.info("task %s attempt %d: %s", local.ref.task_id, local.ref.attempt, msg["type"])
        if self._send(msg):
            local.result_sent_at = time.monotonic()

    def _on_item(self, local: _LocalTask, msg: dict[str, Any]) -> None:
        if not self._is_current(local) or not local.running:
            return
        local.items.append(msg)
        self._send(msg)

    def _on_progress(self, local: _LocalTask, msg: dict[str, Any]) -> None:
        if not self._is_current(local) or not local.running:
            return
        local.last_progress = time.monotonic()
        self._send(msg)

    def _on_error(self, e: Error) -> None:
        log.warning("the hub reported an error: %s: %s (task %s)", e.code, e.message, e.task_id)
        if e.task_id is None:
            return
        for ref in [r for r in self._pending_declines if r.task_id == e.task_id]:
            del self._pending_declines[ref]
        local = self._tasks.get(e.task_id)
        if local is None:
            self._check_drained()
            return
        transient = e.code in TRANSIENT_ERRORS
        if e.code in TASK_GONE_ERRORS or (local.result is not None and not transient):
            log.warning("dropping task %s locally", e.task_id)
            self._drop(e.task_id)
            return
        if not transient or local.result is None:
            return
        # A transient refusal of a result: the missing ack leads to a
        # reconnect and a re-send, MAX_RESULT_REFUSALS times at most.
        local.result_refusals += 1
        if local.result_refusals < MAX_RESULT_REFUSALS:
            return
        if local.result["type"] == "complete":
            log.warning("the hub keeps refusing the result of task %s: failing the attempt instead", e.task_id)
            local.result = protocol.fail(
                local.ref,
                f"the hub refused this attempt's result {MAX_RESULT_REFUSALS} times: {e.code}: {e.message}",
                retryable=True,
            )
            local.result_refusals = 0
        else:
            log.warning("the hub keeps refusing the failure of task %s: dropping it locally", e.task_id)
            self._drop(e.task_id)

    def _owns(self, ref: TaskRef) -> bool:
        local = self._tasks.get(ref.task_id)
        return local is not None and local.ref.attempt == ref.attempt

    def _drop(self, task_id: str) -> None:
        """Forgets a task: its handler is cancelled and its results never sent."""
        local = self._tasks.pop(task_id, None)
        if local is None:
            return
        local.dropped = True
        if local.handle is not None and not local.handle.done():
            local.handle.cancel()
        self._poke()


async def _close(ws: ClientConnection) -> None:
    try:
        await asyncio.wait_for(ws.close(), 1.0)
    except (asyncio.TimeoutError, OSError, WebSocketException):
        pass


def _describe(e: BaseException) -> str:
    if isinstance(e, ConnectionClosed):
        frame = e.rcvd or e.sent
        if frame is None:
            return "the connection broke"
        return f"closed ({frame.code}{': ' + frame.reason if frame.reason else ''})"
    return str(e) or type(e).__name__
