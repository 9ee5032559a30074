"""Following the hub's cluster: fallback URLs and the nodes the hub names in
``welcome.hubs`` and ``shutdown.hubs`` (stdlib unittest, no hub binary).

Fake hubs run in-process (``websockets`` servers on 127.0.0.1, port 0) and
speak just enough of the protocol: read ``hello``, answer ``welcome``
(resuming whatever the agent lists, naming the nodes the test chose), and
then do what the test says (push a task, send ``shutdown``, drop the
connection). Every wait is for a state (a queue or an event) with a
deadline, never a fixed sleep.

Run: ``python -m unittest discover -s sdk/python/tests -k test_cluster``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import unittest
from typing import Any, Awaitable, TypeVar

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from switchyard_agent import Agent, AgentError, TaskContext
from switchyard_agent.connection import _HubList

R = TypeVar("R")
DEADLINE = 10.0  # seconds any awaited state may take
T = "0193a0f2-6f1e-7c3a-9a41-3f7f0c1d2e3b"
REF = {"task_id": T, "attempt": 1}


async def within(aw: Awaitable[R]) -> R:
    return await asyncio.wait_for(aw, DEADLINE)


class Session:
    """One agent connection, as a fake hub sees it."""

    def __init__(self, ws: ServerConnection, hello: dict[str, Any]) -> None:
        self.ws = ws
        self.hello = hello
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(self, msg: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(msg))

    async def expect(self, kind: str) -> dict[str, Any]:
        """The next frame of this type from the agent (others skipped)."""

        async def next_of_kind() -> dict[str, Any]:
            while True:
                msg = await self.frames.get()
                if msg["type"] == kind:
                    return msg

        return await within(next_of_kind())

    def drop(self) -> None:
        """Breaks the connection without a closing handshake, like a dead node."""
        self.ws.transport.abort()


class FakeHub:
    """A hub node that welcomes every agent and records its sessions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.hubs: list[str] = []  # what `welcome.hubs` names
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()
        self.server: Server | None = None
        self.base_url = self.url = ""

    async def start(self) -> FakeHub:
        self.server = await serve(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.url = f"ws://127.0.0.1:{port}/v1/agents/connect"
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def next_session(self) -> Session:
        return await within(self.sessions.get())

    async def _serve(self, ws: ServerConnection) -> None:
        try:
            hello = json.loads(await ws.recv())
            if hello.get("type") != "hello":
                return
            session = Session(ws, hello)
            await session.send({
                "type": "welcome", "protocol": 1, "agent_id": "0193a0f1-1111-7aaa-8bbb-000000000001",
                "session_id": f"{self.name}-{self.sessions.qsize()}", "heartbeat_interval_ms": 60_000,
                "lease_ms": 60_000, "accept_timeout_ms": 10_000, "resumed": hello["resume"], "hubs": self.hubs,
            })
            self.sessions.put_nowait(session)
            async for raw in ws:
                session.frames.put_nowait(json.loads(raw))
        except ConnectionClosed:
            pass


def task_frame() -> dict[str, Any]:
    return {
        "type": "task", **REF, "job_id": "J", "capability": "text.summarize", "stage": 0,
        "input": {"prompt": "p"}, "accept_by": "2030-01-01T00:00:00.000Z", "correlation_id": "C",
    }


def shutdown_frame(*hubs: str) -> dict[str, Any]:
    return {"type": "shutdown", "reason": "node stopping", "reconnect_after_ms": 0, "hubs": list(hubs)}


class FollowsTheCluster(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self) -> None:
        self.started = asyncio.Event()  # the handler runs
        self.release = asyncio.Event()  # lets it return

    async def start_hubs(self, n: int) -> list[FakeHub]:
        hubs = []
        for name in "ABC"[:n]:
            hub = await FakeHub(name).start()
            self.addAsyncCleanup(hub.stop)
            hubs.append(hub)
        return hubs

    def start_agent(self, url: str, fallback_urls: tuple[str, ...] = ()) -> Agent:
        agent = Agent(
            url, "tok", "py-1", fallback_urls=fallback_urls, reconnect_backoff=(0.01, 0.05), connect_timeout=DEADLINE
        )

        @agent.capability("text.summarize")
        async def work(ctx: TaskContext, _input: Any) -> dict[str, Any]:
            self.started.set()
            await self.release.wait()
            return {"ok": True}

        self.run_task = asyncio.create_task(agent.run())

        async def stop() -> None:  # registered after the hubs: runs before their cleanup
            agent.stop()
            await asyncio.gather(self.run_task, return_exceptions=True)

        self.addAsyncCleanup(stop)
        return agent

    async def finish(self, agent: Agent, session: Session) -> None:
        """Lets the task complete on `session`, acks it and drains the agent."""
        self.release.set()
        done = await session.expect("complete")
        self.assertEqual((done["task_id"], done["output"]), (T, {"ok": True}))
        await session.send({"type": "ack", **REF, "of": "complete"})
        agent.drain()
        await within(self.run_task)
        self.assertEqual(agent.running_tasks, [])

    async def test_moves_to_the_welcomes_node_then_where_shutdown_says(self) -> None:
        a, b, c = await self.start_hubs(3)
        a.hubs = [b.base_url]
        agent = self.start_agent(a.url)
        s1 = await a.next_session()
        self.assertEqual(s1.hello["resume"], [])
        await s1.send(task_frame())
        await s1.expect("accept")
        await within(self.started.wait())
        self.assertEqual(agent.hub_urls, [a.url, b.url])

        # (a) A dies: the agent goes to B, the node A's welcome named,
        # listing its running task.
        s1.drop()
        s2 = await b.next_session()
        self.assertEqual(s2.hello["resume"], [REF])
        self.assertEqual(agent.hub_url, b.url)
        self.assertTrue(a.sessions.empty())

        # (b) B shuts down naming C: the agent goes to C, not back to A
        # (nor to B again), still listing its task.
        await s2.send(shutdown_frame(c.base_url))
        s3 = await c.next_session()
        self.assertEqual(s3.hello["resume"], [REF])
        self.assertEqual(agent.hub_url, c.url)
        self.assertEqual(agent.hub_urls, [a.url, b.url, c.url])
        self.assertTrue(a.sessions.empty())
        self.assertTrue(b.sessions.empty())

        await self.finish(agent, s3)

    async def test_shutdown_goes_to_the_first_named_node_that_is_not_this_one(self) -> None:
        a, b, c = await self.start_hubs(3)
        # B first, A as a fallback: round robin after B would try A.
        agent = self.start_agent(b.url, fallback_urls=(a.base_url,))
        s1 = await b.next_session()
        await s1.send(task_frame())
        await s1.expect("accept")

        # A shutdown naming no node: come back to this one.
        await s1.send(shutdown_frame())
        s2 = await b.next_session()
        self.assertEqual(s2.hello["resume"], [REF])

        # Naming this node first and C next: go to C.
        await s2.send(shutdown_frame(b.base_url, c.base_url))
        s3 = await c.next_session()
        self.assertEqual(s3.hello["resume"], [REF])
        self.assertTrue(a.sessions.empty())
        self.assertTrue(b.sessions.empty())
        self.assertEqual(agent.hub_urls, [b.url, a.url, c.url])

        await self.finish(agent, s3)

    async def test_a_fallback_url_is_used_when_the_first_refuses_connections(self) -> None:
        (a,) = await self.start_hubs(1)
        # A bound socket that does not listen: connecting to it is refused,
        # and no other process can take the port meanwhile.
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        self.addCleanup(closed.close)
        dead = f"ws://127.0.0.1:{closed.getsockname()[1]}/v1/agents/connect"

        agent = self.start_agent(dead, fallback_urls=(a.base_url,))
        s1 = await a.next_session()
        self.assertEqual(agent.hub_url, a.url)
        await s1.send(task_frame())
        await s1.expect("accept")

        # A drops the connection: round robin tries the dead URL again (refused)
        # and comes back to A, resuming the task.
        s1.drop()
        s2 = await a.next_session()
        self.assertEqual(s2.hello["resume"], [REF])
        self.assertEqual(agent.hub_urls, [dead, a.url])

        await self.finish(agent, s2)


class HubList(unittest.TestCase):
    def test_normalises_deduplicates_and_skips_invalid_urls(self) -> None:
        with self.assertLogs("switchyard_agent", "WARNING"):
            hubs = _HubList(["http://a:1", "ws://a:1/v1/agents/connect", "ftp://x", "http://b:2/"])
        self.assertEqual(hubs.urls, ["ws://a:1/v1/agents/connect", "ws://b:2/v1/agents/connect"])
        self.assertEqual(hubs.learn(["http://c:3", "http://a:1"]), [2, 0])
        self.assertEqual(len(hubs.urls), 3)

    def test_rotates_round_robin(self) -> None:
        hubs = _HubList(["http://a:1", "http://b:2"])
        seen = []
        for _ in range(3):
            seen.append(hubs.current)
            hubs.rotate()
        self.assertEqual(seen, ["ws://a:1/v1/agents/connect", "ws://b:2/v1/agents/connect", "ws://a:1/v1/agents/connect"])

    def test_move_to_the_first_named_node_that_is_not_the_current_one(self) -> None:
        hubs = _HubList(["http://a:1", "http://b:2"])
        hubs.move_to([])
        self.assertEqual(hubs.index, 0)
        hubs.move_to(["http://a:1"])  # only this node: stay
        self.assertEqual(hubs.index, 0)
        hubs.move_to(["http://a:1", "http://c:3", "http://b:2"])
        self.assertEqual(hubs.current, "ws://c:3/v1/agents/connect")


class Configuration(unittest.TestCase):
    def test_fallback_urls(self) -> None:
        agent = Agent("http://a:1", "tok", "n", fallback_urls=["http://b:2", "ws://a:1/v1/agents/connect"])
        self.assertEqual(agent.fallback_urls, ("ws://b:2/v1/agents/connect", "ws://a:1/v1/agents/connect"))
        self.assertEqual(agent.hub_urls, ["ws://a:1/v1/agents/connect", "ws://b:2/v1/agents/connect"])
        self.assertEqual(agent.hub_url, "ws://a:1/v1/agents/connect")
        # One string is one URL, not a list of characters.
        self.assertEqual(Agent("ws://a:1", "tok", "n", fallback_urls="http://b:2").fallback_urls,
                         ("ws://b:2/v1/agents/connect",))
        for bad in ["ftp://b", "", "ws://"]:
            with self.subTest(bad=bad), self.assertRaises(AgentError):
                Agent("ws://a:1", "tok", "n", fallback_urls=[bad])


if __name__ == "__main__":
    unittest.main()
