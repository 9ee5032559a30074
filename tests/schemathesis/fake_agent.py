#!/usr/bin/env python3
"""A tiny Switchyard agent for tests/schemathesis/run, Python standard library only.

It gives the API real agents, items, usage and reports to describe while
Schemathesis probes it: it connects to `/v1/agents/connect` (docs/protocol.md),
says `hello` with the reference pipeline's two capabilities, heartbeats, and
answers every task at once and deterministically:

* `requirements.extract`: three items, then `complete` with usage;
* `requirements.validate`: `complete` accepted, `complete` rejected (with a
  reason) or a non-retryable `fail`, in turn, so jobs end with integrated,
  rejected and failed items.

It also uses shapes the protocol allows but that are easy to forget in the
API description, so the responses that show them get checked too: one item
of each extraction carries a JSON string as its `data` (an item's data is
any JSON), and `requirements.validate` declares the boolean JSON Schema
`true` as its input and output schemas.

Tasks of other capabilities are never pushed to it. It runs until killed
(SIGTERM) or the hub closes the socket.

Usage: fake_agent.py HTTP_BASE_URL AGENT_TOKEN AGENT_NAME
"""

import base64
import datetime
import itertools
import json
import os
import signal
import socket
import struct
import sys
import time
import urllib.parse
import uuid


def log(msg):
    print(f"fake_agent: {msg}", file=sys.stderr, flush=True)


class WebSocket:
    """The client side of RFC 6455, as much of it as this agent needs."""

    def __init__(self, url, headers):
        u = urllib.parse.urlsplit(url)
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {u.path} HTTP/1.1",
            f"Host: {u.hostname}:{u.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ] + [f"{k}: {v}" for k, v in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            head += chunk
        head, _, self.buf = head.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"handshake refused: {status.decode(errors='replace')}")

    def _send(self, opcode, payload):
        header = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_json(self, msg):
        self._send(0x1, json.dumps(msg).encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("socket closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_json(self):
        """The next text message as JSON; answers pings; None when the hub closes."""
        message = b""
        while True:
            b0, b1 = self._read(2)
            opcode, n = b0 & 0x0F, b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == 0x8:
                return None
            if opcode == 0x9:
                self._send(0xA, payload)
                continue
            if opcode in (0x1, 0x0):
                message += payload
                if b0 & 0x80:
                    return json.loads(message)


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def main():
    base, token, name = sys.argv[1:4]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ws_url = base.replace("http://", "ws://", 1) + "/v1/agents/connect"
    ws = WebSocket(ws_url, {"Authorization": f"Bearer {token}"})
    pricing = {"currency": "USD", "per_1k_input_tokens": 0.5, "per_1k_output_tokens": 1.5, "per_request": 0.01}
    ws.send_json({
        "type": "hello", "protocol": 1, "name": name, "version": "0.0.1",
        "capabilities": [
            {"name": "requirements.extract", "version": "1", "pricing": pricing, "max_concurrency": 4},
            {"name": "requirements.validate", "version": "1", "pricing": pricing, "max_concurrency": 4,
             "input_schema": True, "output_schema": True},
        ],
        "labels": {"purpose": "schemathesis"},
    })
    welcome = ws.recv_json()
    if not welcome or welcome.get("type") != "welcome":
        log(f"no welcome: {welcome}")
        return 1
    interval = welcome["heartbeat_interval_ms"] / 1000
    started = time.monotonic()
    ws.sock.settimeout(min(1.0, interval / 2))
    verdicts = itertools.cycle(["accepted", "rejected", "fail"])
    next_beat = 0.0
    while True:
        if time.monotonic() >= next_beat:
            ws.send_json({"type": "heartbeat", "timestamp": now(), "status": "active",
                          "uptime_ms": int((time.monotonic() - started) * 1000), "load": 0.0})
            next_beat = time.monotonic() + interval
        try:
            msg = ws.recv_json()
        except socket.timeout:
            continue
        if msg is None:
            return 0
        kind = msg.get("type")
        if kind == "shutdown":
            return 0
        if kind == "error":
            log(f"hub error: {msg}")
            continue
        if kind != "task":
            continue
        fence = {"task_id": msg["task_id"], "attempt": msg["attempt"]}
        ws.send_json({"type": "accept", **fence})
        usage = {"tokens_in": 1200, "tokens_out": 300, "requests": 1, "model": "fake-model"}
        if msg["capability"] == "requirements.extract":
            data = [{"text": f"The system shall do thing {i}.", "priority": "high", "tags": ["t"]} for i in range(2)]
            for d in data + ["The system shall accept plain text items."]:
                ws.send_json({"type": "item", **fence, "item_id": str(uuid.uuid4()), "data": d})
            ws.send_json({"type": "complete", **fence, "output": {"requirements": 3}, "usage": usage})
            continue
        verdict = next(verdicts)
        if verdict == "fail":
            ws.send_json({"type": "fail", **fence, "error": "fake validator gave up", "retryable": False})
        else:
            reason = "too vague" if verdict == "rejected" else None
            ws.send_json({"type": "complete", **fence, "output": {"verdict": verdict}, "verdict": verdict,
                          "reason": reason, "usage": usage})


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ConnectionError, OSError) as exc:
        log(f"connection ended: {exc}")
        sys.exit(0)
