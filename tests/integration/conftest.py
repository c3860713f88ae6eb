"""Fixtures for the integration tests: certificates once per session, backends
and tlsterm processes per test (or per module), torn down with their exit
code checked. On a failure the report carries each tlsterm's config and log.
"""

import os
import resource
from pathlib import Path

import pytest

from tlsterm_harness import TLSTERM_BIN, Backend, Tlsterm, make_certs

# 500 concurrent connections need ~1,000 descriptors in tlsterm and 500 in
# each test process; children inherit the raised limit.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
# An unlimited hard limit still stops at fs.nr_open; 65536 is plenty.
_want = 65536 if _hard == resource.RLIM_INFINITY else _hard
if _soft != resource.RLIM_INFINITY and _soft < _want:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "no_tlsterm: the test runs against another server, not the tlsterm binary"
    )


def pytest_collection_modifyitems(config, items):
    # HTTP_TEST_STANDIN runs the HTTP-mode tests against a stand-in proxy
    # (http_harness.py); they need no tlsterm binary then.
    if os.access(TLSTERM_BIN, os.X_OK) or os.environ.get("HTTP_TEST_STANDIN"):
        return
    # ctest always names the binary it built: missing, it is an error. Run by
    # hand before any build, the tests skip (except those that need no
    # binary: test_h2_conformance.py against a stand-in server).
    if os.environ.get("TLSTERM_BIN"):
        raise pytest.UsageError(f"TLSTERM_BIN={TLSTERM_BIN} is not an executable")
    skip = pytest.mark.skip(reason=f"no tlsterm binary at {TLSTERM_BIN} (set TLSTERM_BIN)")
    for item in items:
        if item.get_closest_marker("no_tlsterm") is None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The development PKI, made by certs/gen-dev-certs.sh."""
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def other_certs(tmp_path_factory):
    """A second, unrelated PKI: its CA does not know tlsterm's certificate."""
    return make_certs(tmp_path_factory.mktemp("other-certs"))


class BackendFactory:
    """BackendFactory starts backends and stops them all at teardown."""

    def __init__(self):
        self.backends = []

    def __call__(self, mode, *args):
        backend = Backend(mode, *args)
        self.backends.append(backend)
        return backend.start()

    def close(self):
        for backend in self.backends:
            backend.stop()


class TlstermFactory:
    """TlstermFactory(config, **options) starts and returns a Tlsterm (the
    options are Tlsterm's). At teardown each one still running gets SIGTERM,
    and every exit code must be 0."""

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.instances = []
        self.standins = []  # http_harness.Nghttpx, with HTTP_TEST_STANDIN

    def __call__(self, config, **options):
        instance = Tlsterm(self.workdir, config, name=f"tlsterm{len(self.instances)}", **options)
        self.instances.append(instance)
        return instance.start()

    def close(self):
        failures = []
        for standin in self.standins:
            standin.finish()
        for instance in self.instances:
            try:
                instance.finish()
            except AssertionError as e:
                failures.append(str(e))
        assert not failures, "\n\n".join(failures)


@pytest.fixture
def backend_factory():
    factory = BackendFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_backend_factory():
    factory = BackendFactory()
    yield factory
    factory.close()


@pytest.fixture
def tlsterm_factory(tmp_path):
    factory = TlstermFactory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_tlsterm_factory(tmp_path_factory):
    factory = TlstermFactory(tmp_path_factory.mktemp("tlsterm"))
    yield factory
    factory.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure (test or teardown), attach the config and log of every
    tlsterm the test used."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    seen = set()
    for value in getattr(item, "funcargs", {}).values():
        if isinstance(value, TlstermFactory):
            instances = value.instances
        elif isinstance(value, Tlsterm):
            instances = [value]
        else:
            continue
        for instance in instances:
            if id(instance) in seen or instance.log is None:
                continue
            seen.add(id(instance))
            report.sections.append((f"{instance.name} config and log", instance.dump()))


class HttpBackendFactory(BackendFactory):
    """HttpBackendFactory starts http_backend.py with |args|."""

    def __call__(self, *args):
        from http_harness import HttpBackend

        backend = HttpBackend(*args)
        self.backends.append(backend)
        return backend.start()


@pytest.fixture
def http_backend_factory():
    factory = HttpBackendFactory()
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_http_backend_factory():
    factory = HttpBackendFactory()
    yield factory
    factory.close()
