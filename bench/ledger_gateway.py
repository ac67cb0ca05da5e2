"""A counting MM7 relay for the ledger's benchmarks, in a process of its own.

It answers every SubmitReq under ``/mm7/ok`` with StatusCode 1000 and a new MessageID
(``bench-<n>``: each send its own message, as a relay gives), and under any other path with
2002 (an address error: no message id, so the proxy has nothing to remember). It counts
every request it gets: the resend storm's verdict is that count. ``delay`` seconds pass
before each answer (without blocking other connections), so concurrent resends of one key
really overlap the first send.

Raw HTTP/1.1 on asyncio streams (as ``bench.flow``'s gateway), each answer in one write
with TCP_NODELAY: the relay costs the proxy's figures nothing but its answer.

    with gateway_process(directory, delay=0.2) as (base_url, seen):
        ...                       # send through a proxy whose upstream is base_url + /mm7
    seen.sends                    # filled once the block ends
"""

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from bench.common import recorder_process
from proxy.tools.sim.codes import Mm7Layout, load_sim_codes
from proxy.tools.sim.mm7 import render_reply


@dataclass(slots=True)
class Seen:
    """What the relay got: the number of requests, by path."""

    sends: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.sends.values())


def _frame(n: int, ok: bool, layouts: dict[str, Mm7Layout]) -> bytes:
    code = "1000" if ok else "2002"
    reply = render_reply(
        response_kind="SubmitRsp", transaction_id="bench", code=code,
        text="Success" if ok else "Address Error", message_id=f"bench-{n}" if ok else None,
        layout=layouts[code],
    )  # fmt: skip
    head = f"HTTP/1.1 {reply.status} X\r\nContent-Length: {len(reply.body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in reply.all_headers().items())
    return head.encode() + b"\r\n" + reply.body


class _Relay:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        table = load_sim_codes()  # once: render_reply would read the file per answer
        self.layouts = {code: table.layout(code) for code in ("1000", "2002")}
        self.sends: dict[str, int] = {}
        self.count = 0

    def record(self) -> dict[str, int]:
        return self.sends

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                path = head[0].split(" ")[1]
                length = 0
                for line in head[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                self.count += 1
                self.sends[path] = self.sends.get(path, 0) + 1
                answer = _frame(self.count, path.endswith("/ok"), self.layouts)
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(answer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


@contextmanager
def gateway_process(directory: Path, delay: float = 0.0) -> Iterator[tuple[str, Seen]]:
    """The counting relay in its own process: its base URL, and a ``Seen`` filled with what
    it got once the block ends."""
    seen = Seen({})

    def record(sends: dict[str, int]) -> None:
        seen.sends = sends

    with recorder_process(directory, partial(_Relay, delay), record, "bench-relay") as url:
        yield url, seen


__all__ = ["Seen", "gateway_process"]
