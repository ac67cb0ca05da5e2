"""``Reply``: one complete simulated answer (status, content type, body), sans-io."""

from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished answer. Vendor modules build these; ``faults`` may distort them."""

    status: int
    content_type: str
    body: bytes

    def response(self) -> web.Response:
        """The aiohttp response carrying this reply unchanged."""
        # Set the raw header: aiohttp's content_type= would drop or re-add parameters.
        return web.Response(
            status=self.status, body=self.body, headers={"Content-Type": self.content_type}
        )


__all__ = ["Reply"]
