"""TLS to the gateway: a private CA, a client certificate (mTLS), the name, and rotation.

The relay is a real TLS server (tests/tls_relay.py) that requires a client certificate
from its own CA; certificates come from trustme. Each refusal must be CONNECTION_ERROR
with its reason in the detail, never reach the relay's HTTP layer, and never be a
traceback.
"""

import asyncio
from pathlib import Path
from typing import Any

import pytest
import trustme
from multidict import CIMultiDict

from proxy.config import ConfigError, Pool, UpstreamTLS
from proxy.upstream import ExchangeFailure, Limits, Request, UpstreamPool, endpoint_of, exchange
from tests.conftest import make_config
from tests.test_server import SUBMIT_REQ
from tests.tls_relay import RELAY_NAME, Relay, SecretMount, serial_of, write_pem

XML = {"Content-Type": "text/xml"}


class Pki:
    """The relay's CA, the CA of the proxy's client certificates, and files of both."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.relay_ca = trustme.CA()
        self.client_ca = trustme.CA()
        self.ca_file = write_pem(self.relay_ca.cert_pem, root / "relay-ca.crt")
        client = self.client_ca.issue_cert("gateway-proxy")
        self.client_serial = serial_of(client)
        self.cert_file = write_pem(client.cert_chain_pems[0], root / "client.crt")
        self.key_file = write_pem(client.private_key_pem, root / "client.key")

    def tls(self, **overrides: Any) -> dict[str, Any]:
        tls = {"ca_file": str(self.ca_file), "cert_file": str(self.cert_file),
               "key_file": str(self.key_file), "server_name": RELAY_NAME}  # fmt: skip
        return {k: v for k, v in {**tls, **overrides}.items() if v is not None}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


async def proxy_to(proxy_client: Any, relay: Relay, tls: dict[str, Any]) -> Any:
    config = make_config({"name": "mms", "path_prefix": "/mm7", "upstream": relay.url, "tls": tls})
    return await proxy_client(config)


@pytest.mark.parametrize("tls13", [True, False], ids=["tls1.3", "tls1.2"])
async def test_mtls_to_a_relay_that_requires_a_client_certificate(
    proxy_client: Any, pki: Pki, tls13: bool
) -> None:
    with Relay(pki.relay_ca, clients=pki.client_ca, tls13=tls13) as relay:
        client = await proxy_to(proxy_client, relay, pki.tls())
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["code"] == "OK"
    assert relay.serials == [pki.client_serial]
    assert relay.requests == ["/mm7"]


@pytest.mark.parametrize("tls13", [True, False], ids=["tls1.3", "tls1.2"])
async def test_without_the_client_certificate_a_clear_connection_error(
    proxy_client: Any, pki: Pki, tls13: bool, log_lines: Any
) -> None:
    with Relay(pki.relay_ca, clients=pki.client_ca, tls13=tls13) as relay:
        client = await proxy_to(proxy_client, relay, pki.tls(cert_file=None, key_file=None))
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        envelope = await resp.json()
    assert resp.status == 502
    assert (envelope["code"], envelope["retryable"]) == ("CONNECTION_ERROR", True)
    expected = "certificate required" if tls13 else "handshake failure"
    assert expected in envelope["detail"]
    assert "client certificate" in envelope["detail"]
    assert relay.requests == []  # the relay's HTTP layer never saw it
    assert relay.refused  # its TLS layer did refuse it
    (line,) = [e for e in log_lines() if e["event"] == "request"]
    assert line["code"] == "CONNECTION_ERROR"
    assert not [
        e for e in log_lines() if e.get("level") in ("error", "critical") and "exception" in e
    ]


async def test_a_client_certificate_from_a_ca_the_relay_does_not_trust(
    proxy_client: Any, pki: Pki, tmp_path: Path
) -> None:
    stranger = trustme.CA().issue_cert("gateway-proxy")
    cert = write_pem(stranger.cert_chain_pems[0], tmp_path / "stranger.crt")
    key = write_pem(stranger.private_key_pem, tmp_path / "stranger.key")
    with Relay(pki.relay_ca, clients=pki.client_ca) as relay:
        client = await proxy_to(
            proxy_client, relay, pki.tls(cert_file=str(cert), key_file=str(key))
        )
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        envelope = await resp.json()
    assert envelope["code"] == "CONNECTION_ERROR"
    assert "refused the proxy's client certificate (unknown CA)" in envelope["detail"]
    assert relay.requests == []


@pytest.mark.parametrize(
    ("tls", "reason"),
    [
        ({"ca_file": None}, "not signed by a trusted CA (unknown CA)"),  # the system store
        ({"server_name": "other.test"}, "does not match the name (name mismatch)"),
        ({"server_name": None}, "does not match the address (name mismatch)"),  # 127.0.0.1
    ],
    ids=["system-store", "wrong-name", "address"],
)
async def test_the_relays_certificate_is_always_verified(
    proxy_client: Any, pki: Pki, tls: dict[str, Any], reason: str
) -> None:
    with Relay(pki.relay_ca, clients=pki.client_ca) as relay:
        client = await proxy_to(proxy_client, relay, pki.tls(**tls))
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        envelope = await resp.json()
    assert (resp.status, envelope["code"]) == (502, "CONNECTION_ERROR")
    assert reason in envelope["detail"]
    assert relay.requests == []
    assert relay.serials == []


async def test_a_ca_mismatch(proxy_client: Any, pki: Pki, tmp_path: Path) -> None:
    """The route's ca_file is another CA than the one that signed the relay's certificate."""
    other = write_pem(trustme.CA().cert_pem, tmp_path / "other-ca.crt")
    with Relay(pki.relay_ca, clients=pki.client_ca) as relay:
        client = await proxy_to(proxy_client, relay, pki.tls(ca_file=str(other)))
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        envelope = await resp.json()
    assert envelope["code"] == "CONNECTION_ERROR"
    assert envelope["detail"] == (
        "TLS handshake with the gateway failed: its certificate is not signed by a trusted CA "
        "(unknown CA)"
    )
    assert relay.requests == []


@pytest.mark.parametrize("tls13", [True, False], ids=["tls1.3", "tls1.2"])
async def test_a_refused_client_certificate_never_reached_the_relay(pki: Pki, tls13: bool) -> None:
    """reached=False: the request may go elsewhere without a duplicate. In TLS 1.3 the
    refusal arrives after the request was written, on the first read."""
    with Relay(pki.relay_ca, clients=pki.client_ca, tls13=tls13) as relay:
        tls = UpstreamTLS(ca_file=pki.ca_file, server_name=RELAY_NAME)
        pool = UpstreamPool(Pool())
        request = Request("POST", "/mm7", CIMultiDict(XML), SUBMIT_REQ)
        with pytest.raises(ExchangeFailure) as info:
            await exchange(pool, endpoint_of(relay.url, tls=tls), request, Limits(5, 10, 65536))
        await pool.close()
    assert (info.value.kind, info.value.reached) == ("connect", False)
    assert relay.requests == []


async def test_routes_with_different_certificates_never_share_a_connection(
    proxy_client: Any, pki: Pki, tmp_path: Path
) -> None:
    """Two routes to one relay, each with its own client certificate: each connection
    presents its route's (the pool keeps connections by the TLS settings too)."""
    second = pki.client_ca.issue_cert("gateway-proxy-2")
    cert = write_pem(second.cert_chain_pems[0], tmp_path / "second.crt")
    key = write_pem(second.private_key_pem, tmp_path / "second.key")
    with Relay(pki.relay_ca, clients=pki.client_ca) as relay:
        config = make_config(
            {"name": "a", "path_prefix": "/a", "upstream": relay.url, "tls": pki.tls()},
            {"name": "b", "path_prefix": "/b", "upstream": relay.url,
             "tls": pki.tls(cert_file=str(cert), key_file=str(key))},
        )  # fmt: skip
        client = await proxy_client(config)
        for prefix in ("/a", "/b", "/a", "/b"):
            resp = await client.post(prefix, data=SUBMIT_REQ, headers=XML)
            assert (await resp.json())["code"] == "OK"
    assert set(relay.serials) == {pki.client_serial, serial_of(second)}


async def test_a_rotation_mid_traffic_fails_no_request(
    proxy_client: Any, pki: Pki, tmp_path: Path, log_lines: Any
) -> None:
    """cert-manager renews the client certificate; the kubelet swaps ``..data``. Requests
    keep flowing through the swap, every one succeeds, and new connections present the
    new certificate without a restart."""
    mount = SecretMount(tmp_path / "secret")
    old = pki.client_ca.issue_cert("gateway-proxy")
    new = pki.client_ca.issue_cert("gateway-proxy")
    ca = pki.relay_ca.cert_pem.bytes()

    def files(leaf: trustme.LeafCert) -> dict[str, bytes]:
        return {"tls.crt": leaf.cert_chain_pems[0].bytes(),
                "tls.key": leaf.private_key_pem.bytes(), "ca.crt": ca}  # fmt: skip

    mount.swap(files(old))
    tls = {"ca_file": str(mount.path("ca.crt")), "cert_file": str(mount.path("tls.crt")),
           "key_file": str(mount.path("tls.key")), "server_name": RELAY_NAME}  # fmt: skip
    statuses: list[str] = []
    flowing, swapped = asyncio.Event(), asyncio.Event()
    with Relay(pki.relay_ca, clients=pki.client_ca, close_each=True) as relay:
        client = await proxy_to(proxy_client, relay, tls)

        async def send(count: int) -> None:
            for _ in range(count):
                resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
                statuses.append((await resp.json())["code"])
                if len(statuses) >= 20:  # traffic flows with the old certificate
                    flowing.set()
                if swapped.is_set() and serial_of(new) in relay.serials:
                    return

        async def rotate() -> None:
            await flowing.wait()
            mount.swap(files(new))
            swapped.set()

        await asyncio.gather(send(2000), send(2000), send(2000), rotate())
    assert statuses
    assert set(statuses) == {"OK"}, "no request failed"
    assert relay.refused == []
    assert relay.serials[0] == serial_of(old)
    assert serial_of(new) in relay.serials, "the new certificate was picked up"
    first_new = relay.serials.index(serial_of(new))
    assert serial_of(old) not in relay.serials[first_new + 3 :]  # old ones only in flight
    assert "tls_reloaded" in [e["event"] for e in log_lines()]


async def test_a_half_written_rotation_keeps_the_context_in_use(
    proxy_client: Any, pki: Pki, tmp_path: Path, log_lines: Any
) -> None:
    """A key that does not match its new certificate (files caught mid-write, outside
    Kubernetes' atomic swap) is not taken: requests go on with what worked."""
    cert, key = pki.cert_file, pki.key_file
    with Relay(pki.relay_ca, clients=pki.client_ca, close_each=True) as relay:
        client = await proxy_to(proxy_client, relay, pki.tls())
        assert (await (await client.post("/mm7", data=SUBMIT_REQ, headers=XML)).json())[
            "code"
        ] == "OK"
        other = pki.client_ca.issue_cert("gateway-proxy")
        write_pem(other.cert_chain_pems[0], cert)  # the key stays the old one's
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        assert (await resp.json())["code"] == "OK"
        write_pem(other.private_key_pem, key)  # now the pair matches
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        assert (await resp.json())["code"] == "OK"
    assert relay.serials == [pki.client_serial, pki.client_serial, serial_of(other)]
    failed = [e for e in log_lines() if e["event"] == "tls_reload_failed"]
    assert failed
    assert failed[0]["reason"] == "the private key does not match the certificate"


# --- the config -------------------------------------------------------------------------------
def test_tls_config_errors_name_the_key(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    mismatched = pki.tls(key_file=str(write_pem(trustme.CA().issue_cert("x").private_key_pem,
                                                  tmp_path / "x.key")))  # fmt: skip
    cases = [
        (pki.tls(ca_file=str(tmp_path / "missing.crt")),
         f"routes[0].tls.ca_file: cannot read {tmp_path / 'missing.crt'}: no such file or directory"),
        (pki.tls(ca_file=str(garbage)), "routes[0].tls.ca_file: "),
        (mismatched, "routes[0].tls.cert_file: the private key does not match the certificate"),
        (pki.tls(cert_file=None), "routes[0].tls.key_file: needs cert_file"),
        (pki.tls(server_name="bad name"), "routes[0].tls.server_name: must be a DNS name"),
        ({**pki.tls(), "verify": False}, "routes[0].tls.verify: unknown key"),
    ]  # fmt: skip
    for tls, expected in cases:
        with pytest.raises(ConfigError) as info:
            make_config({"name": "mms", "path_prefix": "/mm7",
                         "upstream": "https://relay.test/mm7", "tls": tls})  # fmt: skip
        assert any(expected in e for e in info.value.errors), (expected, info.value.errors)
    with pytest.raises(ConfigError) as info:
        make_config({"name": "mms", "path_prefix": "/mm7", "upstream": "http://relay.test/",
                     "tls": pki.tls()})  # fmt: skip
    assert "<test>: routes[0].tls: needs an https:// upstream" in info.value.errors


async def test_every_endpoint_of_a_route_speaks_its_tls(proxy_client: Any, pki: Pki) -> None:
    """A route with several upstreams: the endpoint it fails over to presents the route's
    client certificate and verifies against the route's CA, like the first one would."""
    import socket

    with socket.socket() as closed:  # a port nobody listens on: the first endpoint is down
        closed.bind(("127.0.0.1", 0))
        down = f"https://127.0.0.1:{closed.getsockname()[1]}/mm7"
    with Relay(pki.relay_ca, clients=pki.client_ca) as relay:
        route = {"name": "mms", "path_prefix": "/mm7", "upstreams": [down, relay.url]}
        config = make_config({**route, "tls": pki.tls()})
        client = await proxy_client(config)
        resp = await client.post("/mm7", data=SUBMIT_REQ, headers=XML)
        body = await resp.json()
        assert (resp.status, body["code"]) == (200, "OK"), body
    assert relay.serials == [pki.client_serial]
    assert relay.requests == ["/mm7"]
