#!/usr/bin/env python3
"""The main job: trace a demo VM end to end and print its per-disk report.

Boots a small guest (Debian's kernel, busybox, the BlkKin guest agent and a
workload) with two virtio disks behind the blkin filter -- a raw one, and a
qcow2 one with a second blkin node below qcow2 so QEMU's format layer and
the backend are told apart -- starts lttng-sessiond/relayd and blkin-hostd,
runs a mixed read/write/flush/discard workload at queue depth 1 and 16, and
prints `blkin report` for the VM. Everything it started is stopped at the
end. Run through scripts/demo.sh, which sets the machine up first.
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
os.environ.setdefault("BLKIN_SOURCE_ROOT", os.path.join(HERE, ".."))
os.environ.setdefault("BLKIN_BUILD_ROOT", os.path.join(HERE, "..", "build"))

import vm  # noqa: E402
from stack import CLI, HostStack, StackedDisk  # noqa: E402

GUEST = """
blkin-guest-agent 2>/tmp/agent.log &
AGENT=$!
sleep 1
blkin-workload --seed {seed} -n {count} -q 1,16 -w 40 -f 2 -d 2 -Q -o "$BLKIN_RESULTS" \\
    "$(blkin_disk demo-data)" "$(blkin_disk demo-root)"
rc=$?
sleep 1
kill -TERM $AGENT
wait $AGENT
exit $rc
"""


# Pass the guest's discards down (QEMU's default, discard=ignore, completes
# them before they reach the filter; hostd then counts them unmatched).
UNMAP = {"discard": "unmap"}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=400, help="requests per disk and queue depth")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--keep", help="keep the work directory here")
    a = ap.parse_args()

    wd = a.keep or tempfile.mkdtemp(prefix="blkin-demo-")
    os.makedirs(wd, exist_ok=True)
    name = "demo"
    # vdb: blkin -> qcow2 -> blkin -> file, so "backend" is the file's time.
    disks = [vm.Disk(os.path.join(wd, "data.raw"), "demo-data", size="128M",
                     blkin={"id": "demo/vda"}, filter_json=UNMAP),
             StackedDisk(os.path.join(wd, "root.qcow2"), "demo-root", fmt="qcow2", size="128M",
                         blkin={"id": "demo/vdb", **UNMAP})]
    specs = ["vda=demo-data=demo/vda", "vdb=demo-root=demo/vdb"]

    print(f"demo: booting a guest with two traced disks (work dir {wd}) ...", file=sys.stderr)
    with HostStack(wd, hold_ms=1500) as st, \
            vm.GuestVM(wd, disks, GUEST.format(seed=a.seed, count=a.count), timeout=300, cpus=2,
                       extra_files={"/bin/blkin-guest-agent": vm.agent_binary()}) as g:
        g.start()  # the agent socket's path is known from here on
        st.register(name, g.agent_socket, specs)
        res = g.wait()
        if not res.ok:
            print(res.console[-3000:], file=sys.stderr)
            print("demo: the guest's workload failed", file=sys.stderr)
            return 1
        print("demo: workload done; waiting for the last requests to be joined ...", file=sys.stderr)

        def settled():
            r = st.report(name, window="1h")
            return all(d["counters"]["pending"] == 0 for d in r["disks"]) and r

        st.wait_until(settled, timeout=20)
        args = [CLI, "--socket", st.socket, "report", name, "--window", "1h"]
        if a.json:
            args.append("--json")
        subprocess.run(args, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
