"""aiohttp's client-side protocol for the upstream pool (the fence: ``proxy.aio``).

The pool (proxy/upstream/) speaks HTTP/1.1 over aiohttp's own connection protocol,
``aiohttp.client_proto.ResponseHandler`` (the llhttp response parser, its payload streams,
its EOF and error handling), without ``ClientSession``'s request machinery. What it needs
of aiohttp beyond the public API is here, and only here:

* ``AnswerBound``, the protocol, a ``ResponseHandler`` subclass: it feeds the parser no
  byte past the end of the answer it waits for (``data_received``);
* ``configure(protocol, head_only=...)``: the parser for the next answer
  (``set_response_params``), with aiohttp's client limits;
* ``serialize_head``: the request line and headers, by aiohttp's C serializer
  (``http_writer._serialize_headers``, which refuses CR/LF in a header);
* ``drain``: wait while the peer reads slowly (``BaseProtocol._drain_helper``);
* the types ``RawResponseMessage`` and ``HttpProcessingError`` (aiohttp's parser's).
"""

import asyncio
import re

from aiohttp.client_proto import ResponseHandler
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawResponseMessage
from aiohttp.http_writer import _serialize_headers
from multidict import CIMultiDict

# Parser limits, as aiohttp's client has them.
_MAX_LINE, _MAX_FIELD, _MAX_HEADERS = 8190, 8190, 128
_READ_BUFSIZE = 2**16
# The end of a response head, as llhttp accepts it (bare LF line ends included).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length[ \t]*:[ \t]*([0-9]+)[ \t]*\r?(?=\n|$)", re.I)
_TRANSFER_ENCODING = re.compile(rb"\ntransfer-encoding[ \t]*:", re.I)
_MAX_HEAD = _MAX_FIELD * 8  # past this the parser refuses the head anyway


class AnswerBound(ResponseHandler):
    """aiohttp's response protocol, fed no byte past the end of the answer it waits for.

    It reads the answer's head as it arrives (interim 1xx heads skipped) and, when the
    final head frames its body by ``Content-Length`` (or has none: HEAD, 204, 304), knows
    where the answer ends. What comes after that end is not given to the parser: it would
    read it as the start of another response and fail the one it has. It is dropped, and
    the connection is closed when the exchange is over (``stray`` says so). Answers
    framed otherwise (chunked, or read until the connection closes) are passed on whole.
    """

    __slots__ = ("_end", "_head", "_scanning", "_seen", "_skip_body", "stray")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.begin(skip_body=False)

    def begin(self, *, skip_body: bool) -> None:
        """A new exchange: its answer starts with the next byte (a HEAD's has no body)."""
        self._skip_body = skip_body
        self._seen = 0  # bytes of this exchange's answer received so far
        self._end: int | None = None  # where the answer ends, once its head says
        self._head = bytearray()  # the head being read, from its first byte
        self._scanning = True
        self.stray = False

    def data_received(self, data: bytes) -> None:
        if self._scanning:
            self._read_head(data)
        end = self._end
        if end is not None and self._seen + len(data) > end:
            data = data[: max(end - self._seen, 0)]
            self._strayed()
            if not data:
                return
        self._seen += len(data)
        super().data_received(data)

    def _strayed(self) -> None:
        self.stray = True
        self.force_close()  # never reused: what it holds answers nothing

    def _read_head(self, data: bytes) -> None:
        """Find the end of the answer in the bytes that have come so far, if it can be."""
        held = len(self._head)
        head = bytes(self._head) + data if held else data  # most heads come in one piece
        offset = self._seen - held  # where ``head`` starts in the answer
        while True:
            found = _HEAD_END.search(head)
            if found is None:
                if len(head) > _MAX_HEAD:
                    self._stop_scanning()
                else:
                    self._head = bytearray(head)
                return
            length = self._answer_length(head[: found.start()])
            if length != -1:
                if length is not None:
                    self._end = offset + found.end() + length
                self._stop_scanning()
                return
            head = head[found.end() :]  # an interim 1xx head: the answer follows it
            offset += found.end()

    def _stop_scanning(self) -> None:
        self._scanning = False
        self._head = bytearray()

    def _answer_length(self, head: bytes) -> int | None:
        """-1 for an interim head; the body's length when the head frames it; else None."""
        status = _STATUS_LINE.match(head)
        if status is None:
            return None  # the parser will say what is wrong with it
        code = int(status.group(1))
        if 100 <= code < 200:
            return None if code == 101 else -1
        if self._skip_body or code in (204, 304):
            return 0
        if _TRANSFER_ENCODING.search(head) is not None:
            return None
        lengths = set(_CONTENT_LENGTH.findall(head))
        if len(lengths) != 1:
            return None  # none (read until close), or several: left to the parser
        length = lengths.pop()
        return int(length) if len(length) < 19 else None


def configure(protocol: AnswerBound, *, head_only: bool) -> None:
    """Ready ``protocol`` for the next answer (a HEAD request's has no body)."""
    protocol.begin(skip_body=head_only)
    protocol.set_response_params(
        skip_payload=head_only,
        read_until_eof=True,
        auto_decompress=False,
        max_line_size=_MAX_LINE,
        max_field_size=_MAX_FIELD,
        max_headers=_MAX_HEADERS,
        read_bufsize=_READ_BUFSIZE,
    )


def serialize_head(first_line: str, headers: CIMultiDict[str]) -> bytes:
    """``first_line`` and ``headers`` as HTTP/1.1 bytes. Raises ``ValueError`` on a CR, LF
    or other control character in a header (aiohttp's own check: no header injection)."""
    return _serialize_headers(first_line, headers)


async def drain(protocol: ResponseHandler) -> None:
    """Wait until the transport's buffer drained (the peer reads slowly)."""
    if protocol.writing_paused:
        await protocol._drain_helper()


def new_protocol(loop: asyncio.AbstractEventLoop) -> AnswerBound:
    return AnswerBound(loop)


__all__ = [
    "AnswerBound",
    "HttpProcessingError",
    "RawResponseMessage",
    "configure",
    "drain",
    "new_protocol",
    "serialize_head",
]
