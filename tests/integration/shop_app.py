"""An app with Prometheus metrics of its own, registered in prometheus-client's default
registry as apps write them (no registry=, nothing about workers), served as
`tests.integration.shop_app:app`:

/order?items=N   one order of N items: a counter, a histogram, the default-mode gauge of the
                 last order's size; answers with the pid
/slow?seconds=S  an order in progress for S seconds (a livesum gauge), at most 10
"""

from __future__ import annotations

import asyncio
import os
from urllib.parse import parse_qs

from prometheus_client import Counter, Gauge, Histogram

from monoceros.types import Receive, Scope, Send
from tests.apps import run_lifespan, send_text

ORDERS = Counter("shop_orders", "Orders taken.", ["kind"])
ITEMS = Histogram("shop_order_items", "Items per order.", buckets=(1, 5, 10))
IN_PROGRESS = Gauge("shop_orders_in_progress", "Orders being taken.", multiprocess_mode="livesum")
LAST_ORDER = Gauge("shop_last_order_items", "Items in the last order (the default mode).")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await run_lifespan(receive, send)
        return
    query = parse_qs(scope["query_string"].decode())
    if scope["path"] == "/slow":
        with IN_PROGRESS.track_inprogress():
            await asyncio.sleep(min(float(query.get("seconds", ["1"])[0]), 10.0))
    elif scope["path"] == "/order":
        items = int(query.get("items", ["1"])[0])
        ORDERS.labels(kind="web").inc()
        ITEMS.observe(items)
        LAST_ORDER.set(items)
    await send_text(send, str(os.getpid()).encode())
