"""The agent: declare capabilities, then :meth:`Agent.run` speaks the protocol.

This module is the public face only: :class:`Agent`'s settings, declaring
capabilities, and control (run, drain, stop, health). The work is done by
the two layers it extends, mirroring the Rust SDK's ``runner``:

* ``tasks._TaskRunner``: the local task table (accept/decline pushes, run
  handlers, keep each result until it is acked), socket-free;
* ``session._SessionLoop``: one session at a time and reconnecting with
  backoff (the handshake itself is in ``connection``).

They are layers of one object rather than separate objects so that a frame
from the hub reaches the task it concerns with no hand-off in between: all of
it runs on the event loop's thread, synchronously, which is what keeps the
ordering guarantees (items before results, results kept until acked) simple.

**Drain** (:meth:`Agent.drain`, or SIGTERM/SIGINT in
:meth:`Agent.run_until_signal`) sends ``drain``, declines further pushes, lets
running handlers finish and returns once every result (and decline) is acked.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from typing import Any, Callable, Mapping, Sequence

from . import protocol
from .errors import AgentError
from .protocol import Capability, Pricing, TaskRef, Welcome
from .connection import _HubList
from .session import _End, _SessionLoop
from .tasks import DeclineFilter, Handler, _Registered

log = logging.getLogger("switchyard_agent")
log.addHandler(logging.NullHandler())  # the application configures logging

__version__ = "0.1.0"

__all__ = ["Agent", "AgentError", "DeclineFilter", "Handler", "__version__"]


class Agent(_SessionLoop):
    """A Switchyard agent.

    ``url`` is the hub (``ws://host:port/v1/agents/connect``; ``http://host:port``
    works too), ``token`` a JWT of role ``agent`` whose ``sub`` is ``name``.
    Declare capabilities with :meth:`capability` (a decorator) or
    :meth:`handle`, then ``await agent.run_until_signal()``.

    ``fallback_urls`` are other nodes of the hub's cluster (same forms as
    ``url``): when the current URL cannot be reached or the connection breaks,
    the agent tries the next URL of its list. The hub also names its cluster's
    live nodes in ``welcome`` and ``shutdown``; the agent adds those by itself,
    so one URL is enough once it has connected.
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
        fallback_urls: Sequence[str] = (),
    ) -> None:
        super().__init__()  # the task table (tasks._TaskRunner)
        if isinstance(fallback_urls, str):  # one URL, not its characters
            fallback_urls = [fallback_urls]
        try:
            self.url = protocol.normalize_url(url)
            self.fallback_urls = tuple(protocol.normalize_url(u) for u in fallback_urls)
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
        self._hubs = _HubList([self.url, *self.fallback_urls])
        self._user_agent = f"switchyard-agent-python/{__version__}"
        self._backoff = (low, high)
        self._ack_timeout = ack_timeout
        self._connect_timeout = connect_timeout
        self._heartbeat_override = heartbeat_interval
        self._auto_extend = auto_extend_leases
        self._on_welcome = on_welcome
        self._health = "active"
        # Run state (the session layer's; the task table's is in _TaskRunner).
        self._outbox: asyncio.Queue[dict[str, Any]] | None = None
        self._end: asyncio.Future[_End] | None = None
        self._run_task: asyncio.Task[Any] | None = None
        self._wake: asyncio.Event | None = None
        self._connected: asyncio.Event | None = None
        self._finished: asyncio.Event | None = None
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
    def hub_url(self) -> str:
        """The hub URL of the current session, or the one tried next."""
        return self._hubs.current

    @property
    def hub_urls(self) -> list[str]:
        """Every hub URL the agent knows: the configured one, the fallbacks,
        then the nodes the hub named in ``welcome``/``shutdown``."""
        return list(self._hubs.urls)

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
