"""HTTP mode with big bodies: 256 MiB down and up, byte-exact, over h2 and
HTTP/1.1, with Content-Length and chunked framing (and an h2 upload with no
length, which tlsterm sends on chunked). Nothing of 256 MiB sits in the
test's memory: curl's output is hashed as it streams, uploads come from a
file or are generated on curl's stdin, the backend hashes what it reads.

These are the slow tests of HTTP mode; the file is its own ctest entry so
that it runs beside the others with ctest -j2."""

import json

import pytest

from backend import pattern, pattern_sha256
from http_harness import HttpProxy, curl_sha

SIZE = 256 << 20


@pytest.fixture(scope="module")
def proxy(module_tlsterm_factory, module_http_backend_factory, certs):
    return HttpProxy(module_tlsterm_factory, module_http_backend_factory(), certs)


@pytest.fixture(scope="module")
def expected_sha():
    return pattern_sha256(SIZE)


@pytest.fixture(scope="module")
def upload_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("upload") / "pattern"
    with open(path, "wb") as f:
        for chunk in pattern(SIZE):
            f.write(chunk)
    return path


@pytest.mark.parametrize("flag", ["--http2", "--http1.1"])
@pytest.mark.parametrize("query", ["", "?chunked=1"], ids=["content-length", "chunked"])
def test_download_256mib(proxy, certs, expected_sha, flag, query):
    url = f"https://localhost:{proxy.port}/bytes/{SIZE}{query}"
    code, sha, length, stderr, _ = curl_sha(url, proxy.port, certs, flag)
    assert code == 0, stderr
    assert (length, sha) == (SIZE, expected_sha)


@pytest.mark.parametrize("flag", ["--http2", "--http1.1"])
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_upload_256mib(proxy, certs, expected_sha, upload_file, flag, framing):
    """curl -T FILE sends a Content-Length; -T - does not know the length:
    over HTTP/1.1 it sends chunked, over h2 a body without length."""
    url = f"https://localhost:{proxy.port}/sha"
    if framing == "content-length":
        result = curl_sha(url, proxy.port, certs, flag, "-T", upload_file)
    else:
        result = curl_sha(url, proxy.port, certs, flag, "-T", "-", upload=SIZE)
    code, _, _, stderr, head = result
    assert code == 0, stderr
    assert json.loads(head) == {"sha256": expected_sha, "length": SIZE}
