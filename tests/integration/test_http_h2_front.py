"""The HTTP/2 front's own behaviour beyond the protocol suite: a reload
that changes the listener's HTTP settings sends GOAWAY (one that does not
leaves connections alone), an authority the certificate does not cover gets
421, a connection that never sends a request is closed after
timeouts.request_header, the HTTP metrics count what happened, and a
connection idle past the release of nghttp2's frame buffer still works."""

import time

import pytest

from http_harness import H2Conn, HttpProxy, http_config, http_listener
from tlsterm_harness import admin_addr, free_port, reload_and_wait, samples, to_yaml, total


@pytest.fixture
def backend(http_backend_factory):
    return http_backend_factory()


def test_reload_with_changed_http_settings_sends_goaway(tlsterm_factory, backend, certs):
    listener = http_listener("web", backend, certs)
    config = http_config([listener])
    proxy = tlsterm_factory(config)
    port = proxy.port("web")
    with H2Conn(port, certs) as unchanged:
        stream = unchanged.request("GET", "/headers")
        unchanged.wait(lambda: stream.done, what="a response before the reload")
        # The same settings again: the open connection is left alone.
        reload_and_wait(proxy)
        again = unchanged.request("GET", "/headers")
        unchanged.wait(lambda: again.done, what="a response after a no-op reload")
        assert again.status == 200 and unchanged.goaways == []

        # A changed HTTP setting: the connection is asked to go, gracefully.
        listener["http"] = {"x_forwarded": False}
        proxy.config_path.write_text(to_yaml(config))
        reload_and_wait(proxy)
        unchanged.wait(lambda: len(unchanged.goaways) >= 2, 20, "the two-step GOAWAY")
        first, final = unchanged.goaways[0], unchanged.goaways[-1]
        assert first.last_stream_id == 2**31 - 1 and first.error_code == 0
        assert final.last_stream_id == again.id and final.error_code == 0
    # New connections get the new settings: no X-Forwarded-For any more.
    with H2Conn(port, certs) as fresh:
        stream = fresh.request("GET", "/headers")
        fresh.wait(lambda: stream.done, what="a response under the new settings")
        names = [n.lower() for n, _ in stream.json()["headers"]]
        assert "x-forwarded-for" not in names, names


def test_authority_not_covered_is_misdirected(tlsterm_factory, backend, certs):
    proxy = HttpProxy(tlsterm_factory, backend, certs)
    mark = proxy.mark()
    with H2Conn(proxy.port, certs) as conn:
        ok = conn.request("GET", "/headers", authority=f"localhost:{proxy.port}")
        other = conn.request("GET", "/headers", authority="elsewhere.example")
        conn.wait(lambda: ok.done and other.done, what="both responses")
    assert ok.status == 200
    assert other.status == 421 and bytes(other.data) == b"421 Misdirected Request\n"
    line = proxy.requests(1, since=mark, authority="elsewhere.example")[0]
    assert line["reason"] == "misdirected" and line["server"] is None


def test_connection_without_a_request_is_closed(tlsterm_factory, backend, certs):
    proxy = HttpProxy(tlsterm_factory, backend, certs, timeouts={"request_header": "1s"})
    mark = proxy.mark()
    with H2Conn(proxy.port, certs) as conn:
        conn.wait(lambda: conn.goaways, 10, "a GOAWAY for a connection with no request")
        assert conn.goaways[0].error_code == 0
    closed = proxy.tlsterm.wait_for("conn_closed", since=mark)
    assert closed["reason"] == "idle_timeout" and 900 <= closed["duration_ms"] < 5000, closed


def test_http_metrics(tlsterm_factory, backend, certs):
    listener = http_listener("web", backend, certs)
    port_admin = free_port()
    config = http_config([listener])
    config["admin"] = {"listen": f"127.0.0.1:{port_admin}"}
    proxy = tlsterm_factory(config)
    port = proxy.port("web")
    with H2Conn(port, certs) as conn:
        streams = [conn.request("GET", "/headers") for _ in range(3)]
        streams.append(conn.request("GET", "/drop"))
        conn.wait(lambda: all(s.done for s in streams), what="four responses")
    assert [s.status for s in streams] == [200, 200, 200, 502]
    proxy.wait_count("request", 4)
    values = samples(admin_addr(proxy))
    assert total(values, "tlsterm_http_requests_total", listener="web", protocol="h2",
                 code="2xx") == 3
    assert total(values, "tlsterm_http_requests_total", listener="web", code="5xx") == 1
    assert total(values, "tlsterm_http_errors_total", listener="web", reason="backend_reset") == 1
    assert total(values, "tlsterm_http_request_duration_seconds_count", listener="web") == 4
    assert total(values, "tlsterm_backend_connections_total", listener="web") == 4
    assert total(values, "tlsterm_backend_pool_idle", listener="web",
                 server=backend.addr) >= 1


def test_queued_requests_are_served_in_turn(tlsterm_factory, backend, certs):
    """backend.max_connections 1: ten concurrent streams share the one
    backend connection, each waiting its turn in the queue (a freed slot is
    handed to the next waiter, never taken by a newcomer)."""
    proxy = HttpProxy(tlsterm_factory, backend, certs, backend_opts={"max_connections": 1},
                      timeouts={"queue": "20s"})
    mark = proxy.mark()
    with H2Conn(proxy.port, certs) as conn:
        streams = [conn.request("GET", f"/slow/0.05?{i}") for i in range(10)]
        conn.wait(lambda: all(s.done for s in streams), 30, "ten queued responses")
    assert [s.status for s in streams] == [200] * 10
    lines = proxy.requests(10, since=mark)
    assert all(line["reason"] is None for line in lines), lines
    assert len(backend.find("open")) == 1, backend.find("open")


def test_connection_idle_past_the_frame_buffer_release_still_works(tlsterm_factory, backend,
                                                                   certs):
    # After 500 ms without activity the front gives nghttp2's frame buffer
    # back to the kernel (proxy/h2_mem.h); the next frames must still be whole.
    proxy = HttpProxy(tlsterm_factory, backend, certs)
    with H2Conn(proxy.port, certs) as conn:
        first = conn.request("GET", "/headers")
        conn.wait(lambda: first.done, what="a first response")
        time.sleep(0.8)
        second = conn.request("GET", "/headers")
        conn.wait(lambda: second.done, what="a response after the release")
        assert first.status == 200 and second.status == 200
        assert second.json()["target"] == "/headers"
