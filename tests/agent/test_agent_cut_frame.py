#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A host end that goes away in the middle of a frame costs the agent no
records: the frame's records are sent again, whole, to the next host end.

On this machine's own kernel (no VM; the port is the agent's --socket): a
first host end connects and reads nothing, so the agent's writes stop
part-way through a frame (the socket buffer is full) while the workload
goes on; that host end closes. What it had in its socket is gone (whole
frames: the next host end sees them as one gap, from sequence 0); the cut
frame's records must reach the second host end, which then gets every
record from the gap's end on, and the agent reports no record dropped.
Before the fix the cut frame's records were counted as dropped."""
import os
import socket

import agenttest as at
from native_agent import loop_disk, start_agent, stop, text, workload
from tap import Tap

REQUESTS = 12000


def main():
    t = Tap()
    agent = dump = None
    with loop_disk("blkin-agent-cut-") as (work, loop):
        try:
            # Big enough a queue that nothing is dropped for want of room.
            agent, sock, alog = start_agent(work, loop, "--buffer-records", "16384",
                                            "--flush-ms", "20")
            if not sock:
                t.ok(False, "the agent starts", detail=text(alog))
                return t.done()
            first = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            first.connect(sock)
            t.ok(at.wait_for(lambda: "host connected" in text(alog), 30),
                 "a first host end connects", detail=text(alog)[-500:])
            rc, done, err = workload(work, loop, REQUESTS, "-s", "3", "-q", "8", "-b", "4K",
                                     "-S", "200M", "-w", "50")
            t.ok(rc == 0 and done == REQUESTS, "blkin-workload ran", detail=err[-500:])
            # The socket is full: the agent's last write stopped part-way
            # through a frame, and its queue holds the rest. The first host
            # end goes.
            first.close()
            t.ok(at.wait_for(lambda: "host disconnected" in text(alog), 30),
                 "the agent sees the first host end go", detail=text(alog)[-500:])

            dump = at.Dump(sock, os.path.join(work, "dump.jsonl"), probe_ms=0, once=True)
            t.ok(at.wait_for(lambda: text(alog).count("host connected") >= 2, 30),
                 "a second host end connects")
            stop(agent)
            stats = at.agent_stats(text(alog)) or {}
            # The host end exits once it has read the agent's last bytes.
            at.wait_for(lambda: dump.proc.poll() is not None, 30)
            events = dump.stop()
            seqs = sorted(e["seq"] for e in at.of_type(events, "request"))
            drops = at.of_type(events, "drops")
            t.diag(f"agent stats {stats}; second host end: {len(seqs)} records from seq "
                   f"{seqs[0] if seqs else None}")
            total = stats.get("records", 0)
            t.ok(total >= done, "the agent recorded every request", detail=stats)
            t.ok(drops and drops[-1]["dropped_records"] == 0 and stats.get("dropped") == 0,
                 "no record dropped: the cut frame's records were kept, not counted as lost",
                 detail=drops[-1:])
            t.ok(seqs and 0 < seqs[0] and seqs == list(range(seqs[0], total)),
                 "the second host end gets every record from the first one the first host end "
                 "did not get whole: one gap, from sequence 0, of whole frames",
                 detail=f"first {seqs[:1]}, last {seqs[-1:]}, {len(seqs)} of {total}")
        finally:
            if agent:
                stop(agent)
            if dump:
                dump.stop()
    return t.done()


if __name__ == "__main__":
    raise SystemExit(main())
