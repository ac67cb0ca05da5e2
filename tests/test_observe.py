"""One structured, redacted log line per request, at a level set by the category."""

from typing import Any

from aiohttp import web

from tests import pii

KEYS = {
    "timestamp", "level", "event", "request_id", "route", "vendor", "method", "path",
    "status", "code", "category", "retryable", "vendor_code", "vendor_http_status",
    "duration_s", "upstream_duration_s", "bytes_in", "bytes_out",
}  # fmt: skip


def requests_logged(log_lines: Any) -> list[dict[str, Any]]:
    return [line for line in log_lines() if line.get("event") == "request"]


async def test_one_line_per_request_with_every_key(one_route_proxy: Any, log_lines: Any) -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text='{"response": {"code": "1", "status": "success"}}')

    client = await one_route_proxy(ok, vendor="moms")
    tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    await client.post("/gw/system.ping", data=b"12345", headers={"traceparent": tp})
    (line,) = requests_logged(log_lines)
    assert line.keys() >= KEYS
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert (line["level"], line["code"], line["vendor_code"]) == ("info", "OK", "1")
    assert (line["bytes_in"], line["method"], line["path"]) == (5, "POST", "/gw/system.ping")
    assert line["timestamp"].endswith(("Z", "+00:00"))


async def test_levels_follow_the_category(one_route_proxy: Any, log_lines: Any) -> None:
    codes = iter(["606", "403", "500"])

    async def reply(request: web.Request) -> web.Response:
        return web.Response(text=f'{{"response": {{"code": "{next(codes)}"}}}}')

    client = await one_route_proxy(reply, vendor="moms")
    for _ in range(3):
        await client.get("/gw/x")
    levels = [(line["category"], line["level"]) for line in requests_logged(log_lines)]
    assert levels == [("recipient", "warning"), ("auth", "warning"), ("upstream", "error")]


async def test_no_msisdn_or_token_reaches_the_log(one_route_proxy: Any, log_lines: Any) -> None:
    message = f"User {pii.MSISDNS[0]} opted out; token={pii.SECRETS[1]}"

    async def reply(request: web.Request) -> web.Response:
        return web.Response(
            text=f'{{"response": {{"code": "606", "status": "error", "message": "{message}"}}}}'
        )

    client = await one_route_proxy(reply, vendor="moms")
    query = f"client_id=7&token={pii.SECRETS[0]}&to={pii.MSISDNS[3]}&password={pii.SECRETS[3]}"
    resp = await client.get(f"/gw/transaction.send?{query}")
    assert (await resp.json())["vendor"]["message"] == message  # the app still gets it all
    (line,) = requests_logged(log_lines)
    text = str(line)
    assert not pii.leaks(text)
    assert "********436" in line["path"]
    assert "token=[REDACTED]" in line["path"]
    assert "********309" in line["vendor_message"]


async def test_a_conflict_is_in_the_log_line(one_route_proxy: Any, log_lines: Any) -> None:
    """Rule 1: the signals that disagreed are logged, and the status header counts."""

    async def disagreeing(request: web.Request) -> web.Response:
        body = '{"response": {"code": "1", "status": "success"}}'
        return web.Response(text=body, headers={"Status": "BAD_REQUEST"})

    client = await one_route_proxy(disagreeing, vendor="moms")
    response = await client.post("/gw/transaction.send", data=b"x")
    envelope = await response.json(content_type=None)
    assert (envelope["ok"], envelope["retryable"]) == (False, False)
    (line,) = requests_logged(log_lines)
    assert line["code"] == "INVALID_UPSTREAM_RESPONSE"
    assert "failure: Status header 'BAD_REQUEST'" in line["conflict"]
    assert "disagree" in line["detail"]
