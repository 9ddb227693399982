"""A busy server leaves the garbage collector idle: requests in flight do not trigger it.

Counted with the server's own `python_gc_collections_total` (prometheus-client's view of
`gc.get_stats()`), from a real process under 64 concurrent keep-alive connections. Before the
collector was settled at startup (monoceros/collector.py), the youngest generation ran about
once every 70 requests at this concurrency, and every tenth of those runs reached the older
generations.
"""

from __future__ import annotations

import signal

from tests.integration.helpers import TIMEOUT, concurrent_load
from tests.integration.observe_helpers import admin_url, scrape, start

CONNECTIONS = 64
REQUESTS_PER_CONNECTION = 60
REQUEST = b"GET / HTTP/1.1\r\nHost: gc.test\r\n\r\n"


def test_requests_in_flight_do_not_run_the_collector() -> None:
    with start("--log-format", "json", "--no-access-log", app="examples.app:app") as process:
        port = int(process.wait_listening(TIMEOUT).rsplit(":", 1)[1])
        admin = admin_url(process)
        # The first scrape imports prometheus-client: that import's collections come before.
        before = scrape(admin)
        answered = concurrent_load(port, REQUEST, CONNECTIONS, REQUESTS_PER_CONNECTION)
        after = scrape(admin)
        process.signal(signal.SIGTERM)
        assert process.wait(TIMEOUT) == 0, process.output

    assert answered == CONNECTIONS * REQUESTS_PER_CONNECTION
    collections = {
        generation: after.value("python_gc_collections_total", generation=generation)
        - before.value("python_gc_collections_total", generation=generation)
        for generation in ("0", "1", "2")
    }
    # 3,840 requests: about 55 young and 5 older collections before; cycles only now.
    assert collections["0"] <= 5, collections
    assert collections["1"] + collections["2"] <= 1, collections
