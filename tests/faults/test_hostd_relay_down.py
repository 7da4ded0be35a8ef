#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The LTTng relay is unreachable: hostd retries every second, says so once
(one log line for the whole outage, nothing from babeltrace2's own logging),
and `blkin status` shows the outage."""
import json
import tempfile
import time

from faultlib import Hostd
from stack import free_ports
from tap import Tap


def main():
    t = Tap()
    with tempfile.TemporaryDirectory(prefix="blkin-relaydown-") as wd:
        port = free_ports(1)[0]  # nobody listens there
        url = f"net://127.0.0.1:{port}/host/nohost/nosession"
        with Hostd(wd, live=url) as h:
            # Ten retry periods.
            time.sleep(10)
            st = json.loads(h.cli("status").stdout)
            log = h.log_text().splitlines()
            about = [l for l in log if url in l]
            t.ok(len(about) == 1 and "unavailable" in about[0],
                 "one log line about the unreachable relay in 10 s of retries", detail=log)
            t.ok(len(log) <= 3, "hostd's log stays a few lines (no babeltrace2 lines per retry)",
                 detail=log)
            t.ok(st.get("trace_inputs") and st["trace_inputs"][0].get("state") != "up",
                 "blkin status shows the input is not up", detail=st.get("trace_inputs"))
    t.done()


if __name__ == "__main__":
    main()
