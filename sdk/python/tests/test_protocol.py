"""Unit tests of message encoding/decoding (no network, stdlib unittest).

Run: ``python -m unittest discover -s sdk/python/tests`` (with the package
installed or ``sdk/python`` on ``PYTHONPATH``).
"""

from __future__ import annotations

import asyncio
import json
import unittest
import uuid

from switchyard_agent import Agent, AgentError, Fail, PermanentError, Pricing, protocol
from switchyard_agent.connection import _Backoff
from switchyard_agent.protocol import Ack, Cancel, Capability, Error, ProtocolError, Shutdown, Task, TaskRef, Usage, Welcome

T = "0193a0f2-6f1e-7c3a-9a41-3f7f0c1d2e3b"
REF = TaskRef(T, 2)


def roundtrip(msg: dict) -> dict:
    return json.loads(protocol.encode(msg))


class AgentMessages(unittest.TestCase):
    def test_hello_has_every_field_with_defaults(self) -> None:
        cap = Capability("text.summarize", max_concurrency=4, input_schema={"type": "object"},
                         pricing=Pricing("USD", per_request=0.01))
        msg = roundtrip(protocol.hello("py-1", [cap], version="0.1.0", labels={"zone": "eu"}, resume=[REF]))
        self.assertEqual(msg["type"], "hello")
        self.assertEqual(msg["protocol"], 1)
        self.assertEqual(msg["name"], "py-1")
        self.assertEqual(msg["labels"], {"zone": "eu"})
        self.assertEqual(msg["resume"], [{"task_id": T, "attempt": 2}])
        self.assertEqual(
            msg["capabilities"],
            [{
                "name": "text.summarize", "version": "", "input_schema": {"type": "object"}, "output_schema": {},
                "pricing": {"currency": "USD", "per_1k_input_tokens": 0.0, "per_1k_output_tokens": 0.0,
                            "per_request": 0.01},
                "max_concurrency": 4,
            }],
        )

    def test_task_messages_carry_the_attempt(self) -> None:
        self.assertEqual(roundtrip(protocol.accept(REF)), {"type": "accept", "task_id": T, "attempt": 2})
        self.assertEqual(
            roundtrip(protocol.decline(REF, "at capacity")),
            {"type": "decline", "task_id": T, "attempt": 2, "reason": "at capacity"},
        )
        self.assertEqual(roundtrip(protocol.fail(REF, "boom", retryable=False))["retryable"], False)
        self.assertEqual(roundtrip(protocol.fail(REF, "boom"))["retryable"], True)
        item = roundtrip(protocol.item(REF, "i-1", {"text": "ü"}))
        self.assertEqual(item, {"type": "item", "task_id": T, "attempt": 2, "item_id": "i-1", "data": {"text": "ü"}})
        self.assertEqual(roundtrip(protocol.drain()), {"type": "drain"})

    def test_progress_is_clamped_and_nullable(self) -> None:
        self.assertEqual(roundtrip(protocol.progress(REF, 150, "x"))["percent"], 100.0)
        p = roundtrip(protocol.progress(REF))
        self.assertIsNone(p["percent"])
        self.assertIsNone(p["message"])

    def test_complete_defaults_and_verdict(self) -> None:
        c = roundtrip(protocol.complete(REF, {"summary": "s"}))
        self.assertEqual(c["verdict"], "accepted")
        self.assertIsNone(c["reason"])
        self.assertEqual(c["usage"], {"tokens_in": 0, "tokens_out": 0, "requests": 0, "model": None})
        r = roundtrip(protocol.complete(REF, None, verdict="rejected", reason="vague", usage=Usage(1, 2, 3, "m")))
        self.assertEqual((r["verdict"], r["reason"], r["usage"]["model"], r["output"]), ("rejected", "vague", "m", None))
        with self.assertRaises(ValueError):
            protocol.complete(REF, verdict="maybe")

    def test_heartbeat(self) -> None:
        hb = roundtrip(protocol.heartbeat(uptime_ms=12, load=1.5, metrics={"running_tasks": 1}))
        self.assertEqual((hb["status"], hb["uptime_ms"], hb["load"]), ("active", 12, 1.0))
        self.assertTrue(hb["timestamp"].endswith("Z"), hb["timestamp"])
        with self.assertRaises(ValueError):
            protocol.heartbeat(status="sleepy")

    def test_encode_refuses_nan(self) -> None:
        with self.assertRaises(ValueError):
            protocol.encode(protocol.complete(REF, float("nan")))


class HubMessages(unittest.TestCase):
    def test_welcome(self) -> None:
        w = protocol.decode(json.dumps({
            "type": "welcome", "protocol": 1, "agent_id": "A", "session_id": "S", "heartbeat_interval_ms": 5000,
            "lease_ms": 60000, "accept_timeout_ms": 10000, "resumed": [{"task_id": T, "attempt": 2}],
            "some_future_field": True,
        }))
        self.assertEqual(w, Welcome(1, "A", "S", 5000, 60000, 10000, (REF,)))
        # `resumed` defaults to [].
        w2 = protocol.decode('{"type":"welcome","protocol":1,"agent_id":"A","session_id":"S",'
                             '"heartbeat_interval_ms":1,"lease_ms":2,"accept_timeout_ms":3}')
        self.assertEqual(w2.resumed, ())
        self.assertEqual(w2.hubs, ())

    def test_hubs_in_welcome_and_shutdown(self) -> None:
        w = protocol.decode('{"type":"welcome","protocol":1,"agent_id":"A","session_id":"S","heartbeat_interval_ms":1,'
                            '"lease_ms":2,"accept_timeout_ms":3,"hubs":["http://10.0.0.2:8000","http://10.0.0.3:8000"]}')
        self.assertEqual(w.hubs, ("http://10.0.0.2:8000", "http://10.0.0.3:8000"))
        s = protocol.decode('{"type":"shutdown","reason":"r","reconnect_after_ms":0,"hubs":["http://10.0.0.2:8000"]}')
        self.assertEqual(s, Shutdown("r", 0, ("http://10.0.0.2:8000",)))
        self.assertEqual(protocol.decode('{"type":"shutdown","reason":"r","hubs":null}').hubs, ())
        for bad in ['"http://h"', '[1]']:
            with self.subTest(bad=bad), self.assertRaises(ProtocolError) as cm:
                protocol.decode(f'{{"type":"shutdown","reason":"r","hubs":{bad}}}')
            self.assertIn("hubs", str(cm.exception))

    def test_task(self) -> None:
        frame = {
            "type": "task", "task_id": T, "attempt": 1, "job_id": "J", "capability": "text.summarize", "stage": 0,
            "input": {"prompt": "p", "context": {}, "document": None}, "accept_by": "2026-11-22T13:40:10.000Z",
            "correlation_id": "C",
        }
        t = protocol.decode(json.dumps(frame))
        self.assertIsInstance(t, Task)
        self.assertEqual((t.ref, t.capability, t.input["prompt"]), (TaskRef(T, 1), "text.summarize", "p"))
        # `input` may be JSON null, but must be present.
        self.assertIsNone(protocol.decode(json.dumps({**frame, "input": None})).input)
        del frame["input"]
        with self.assertRaises(ProtocolError):
            protocol.decode(json.dumps(frame))

    def test_cancel_ack_error_shutdown(self) -> None:
        self.assertEqual(
            protocol.decode(f'{{"type":"cancel","task_id":"{T}","attempt":2,"reason":"job cancelled"}}'),
            Cancel(T, 2, "job cancelled"),
        )
        self.assertEqual(
            protocol.decode(f'{{"type":"ack","task_id":"{T}","attempt":2,"of":"complete"}}'), Ack(T, 2, "complete")
        )
        self.assertEqual(
            protocol.decode('{"type":"error","code":"stale_attempt","message":"m","task_id":"X"}'),
            Error("stale_attempt", "m", "X"),
        )
        self.assertEqual(protocol.decode('{"type":"error","code":"c","message":"m"}').task_id, None)
        self.assertEqual(protocol.decode('{"type":"shutdown","reason":"r","reconnect_after_ms":2000}'),
                         Shutdown("r", 2000))
        self.assertEqual(protocol.decode('{"type":"shutdown","reason":"r","reconnect_after_ms":null}'),
                         Shutdown("r", None))

    def test_bad_frames_are_refused_with_a_reason(self) -> None:
        for bad, words in [
            ("{", "not valid JSON"),
            ("[]", "not a JSON object"),
            ("{}", "no `type`"),
            ('{"type":"dance"}', "unknown message type `dance`"),
            ('{"type":"cancel","task_id":"x","reason":"r"}', "attempt"),
            ('{"type":"cancel","task_id":"x","attempt":"1","reason":"r"}', "attempt"),
            ('{"type":"cancel","task_id":"x","attempt":true,"reason":"r"}', "attempt"),
            ('{"type":"welcome","protocol":1,"agent_id":"A","session_id":"S","heartbeat_interval_ms":1,'
             '"lease_ms":2,"accept_timeout_ms":3,"resumed":[["x",1]]}', "task reference"),
        ]:
            with self.subTest(bad=bad):
                with self.assertRaises(ProtocolError) as cm:
                    protocol.decode(bad)
                self.assertIn(words, str(cm.exception))


class Helpers(unittest.TestCase):
    def test_urls(self) -> None:
        n = protocol.normalize_url
        self.assertEqual(n("http://127.0.0.1:8000"), "ws://127.0.0.1:8000/v1/agents/connect")
        self.assertEqual(n("ws://h:1/"), "ws://h:1/v1/agents/connect")
        self.assertEqual(n("ws://h:1/custom?x=1"), "ws://h:1/custom?x=1")
        self.assertEqual(n("https://h"), "wss://h/v1/agents/connect")
        for bad in ["", "ftp://h/", "/v1/agents/connect", "ws://"]:
            with self.subTest(bad=bad), self.assertRaises(ValueError):
                n(bad)

    def test_uuid7(self) -> None:
        a, b = protocol.uuid7(), protocol.uuid7()
        self.assertNotEqual(a, b)
        u = uuid.UUID(a)
        self.assertEqual(u.version, 7)
        self.assertEqual(u.variant, uuid.RFC_4122)

    def test_backoff_grows_with_jitter_and_is_capped(self) -> None:
        b = _Backoff(0.1, 1.0)
        first = b.next()
        self.assertTrue(0.1 <= first <= 0.2, first)
        self.assertTrue(all(b.next() <= 1.0 for _ in range(20)))
        b.reset()
        self.assertLessEqual(b.next(), 0.2)

    def test_fail_exceptions(self) -> None:
        self.assertTrue(Fail("x").retryable)
        self.assertFalse(Fail("x", retryable=False).retryable)
        self.assertFalse(PermanentError("bad input").retryable)
        self.assertIsInstance(PermanentError("x"), Fail)


class AgentOffline(unittest.TestCase):
    """The agent's task handling, driven by decoded frames, without a socket."""

    def make(self, limit: int = 1) -> tuple[Agent, list[dict]]:
        agent = Agent("ws://127.0.0.1:1", "tok", "py-1")
        sent: list[dict] = []

        @agent.capability("text.summarize", max_concurrency=limit)
        async def handler(ctx, task_input):  # type: ignore[no-untyped-def]
            await ctx.item({"n": task_input["n"]})
            if task_input["n"] < 0:
                raise PermanentError("negative")
            return {"n": task_input["n"]}

        agent._send = lambda msg: sent.append(msg) or True  # type: ignore[method-assign]
        return agent, sent

    @staticmethod
    def task(task_id: str, n: int, capability: str = "text.summarize") -> Task:
        return Task(task_id, 1, "J", capability, 0, {"n": n}, "2026-01-01T00:00:00Z", "C")

    def test_accepts_runs_and_forgets_on_ack(self) -> None:
        async def go() -> None:
            agent, sent = self.make()
            agent._on_message(self.task("t1", 3))
            agent._on_message(self.task("t2", 4))  # over capacity
            agent._on_message(self.task("t3", 1, "other.cap"))  # no handler
            await asyncio.sleep(0.01)
            kinds = [(m["type"], m["task_id"]) for m in sent]
            self.assertEqual(
                kinds,
                [("accept", "t1"), ("decline", "t2"), ("decline", "t3"), ("item", "t1"), ("complete", "t1")],
            )
            self.assertEqual(sent[-1]["output"], {"n": 3})
            self.assertEqual(agent.running_tasks, [TaskRef("t1", 1)])  # kept until acked
            agent._on_message(Ack("t1", 1, "complete"))
            self.assertEqual(agent.running_tasks, [])

        asyncio.run(go())

    def test_permanent_error_and_cancel(self) -> None:
        async def go() -> None:
            agent, sent = self.make(limit=2)
            agent._on_message(self.task("t1", -1))
            await asyncio.sleep(0.01)
            self.assertEqual((sent[-1]["type"], sent[-1]["retryable"]), ("fail", False))
            agent._on_message(Error("stale_attempt", "gone", "t1"))
            self.assertEqual(agent.running_tasks, [])

            started = asyncio.Event()

            async def slow(ctx, _input):  # type: ignore[no-untyped-def]
                started.set()
                await asyncio.sleep(60)

            agent._caps["text.summarize"].handler = slow
            agent._on_message(self.task("t2", 1))
            await started.wait()
            agent._on_message(Cancel("t2", 1, "job cancelled"))
            await asyncio.sleep(0.01)
            self.assertEqual(agent.running_tasks, [])
            self.assertNotIn("complete", [m["type"] for m in sent if m["task_id"] == "t2"])

        asyncio.run(go())

    def test_configuration_errors(self) -> None:
        with self.assertRaises(AgentError):
            Agent("ftp://x", "tok", "a")
        agent = Agent("ws://h:1", "tok", "a")
        agent.handle("x", lambda c, i: None)  # type: ignore[arg-type,return-value]
        with self.assertRaises(AgentError):
            agent.handle("x", lambda c, i: None)  # type: ignore[arg-type,return-value]
        with self.assertRaises(AgentError):
            agent.handle("y", lambda c, i: None, max_concurrency=0)  # type: ignore[arg-type,return-value]


if __name__ == "__main__":
    unittest.main()
