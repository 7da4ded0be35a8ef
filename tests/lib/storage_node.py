# SPDX-License-Identifier: GPL-2.0-or-later
"""A storage node serving a disk over NBD, for tests and the demo.

Node B of a two-node setup (tests/lib/node.py): its own lttng-sessiond whose
session streams to node A's relay daemon (HostStack), and qemu-nbd exporting
an image through two blkin nodes -- the service's (`SERVER_ID`) and, above the
file, its storage I/O's -- so hostd on node A can split the time below QEMU
into network, remote service and backend (docs/hostd.md).

    a, b = node.Node("a"), node.Node("b")
    node.link(a, b, "10.77.0.1/24", "10.77.0.2/24")
    node.isolate(netns=a)                  # this process is node A now
    st = HostStack(wd, relayd_addr="10.77.0.1"); st.start_lttng()
    with NbdServer(b, st, wd, addr_a="10.77.0.1", addr_b="10.77.0.2") as srv:
        st.hostd_args += ["--remote-live", srv.live_url]
        st.start_hostd()
        srv.start_nbd()
        disk = srv.client_disk("vm1", "serial-c")   # a vm.Disk for node A's VM
        spec = srv.register_spec("vdc", "serial-c", "vm1")
"""
import json
import os
import socket
import subprocess
import time

import vm

SRC = os.environ.get("BLKIN_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), "..", ".."))


class NbdServer:
    def __init__(self, node_b, stack, workdir, addr_a, addr_b, port=10809, export="export0",
                 server_id="nodeb/export0", size="64M"):
        self.b = node_b
        self.st = stack
        self.wd = workdir
        self.addr_a, self.addr_b = addr_a, addr_b
        self.port = port
        self.export = export
        self.server_id = server_id
        self.size = size
        self.session = f"blkin-nodeb-{os.getpid()}"
        self.nbd = None

    @property
    def live_url(self):
        """Node B's session on node A's relay (same hostname: one kernel)."""
        return (f"net://127.0.0.1:{self.st.live_port}/host/{socket.gethostname()}/"
                f"{self.session}")

    def _lttng(self, *args):
        r = self.b.run(["lttng", *args], capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"node B: lttng {' '.join(args)}: {r.stderr}")

    def start_session(self):
        """Node B's own sessiond, streaming its session to node A's relay."""
        self.b.start_sessiond()
        self._lttng("create", self.session, "--live=100000",
                    f"--set-url=net://{self.addr_a}:{self.st.ctrl_port}:{self.st.data_port}")
        r = self.b.run([os.path.join(SRC, "scripts", "blkin-lttng-channel"), self.session],
                       capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("node B: channel: " + r.stderr)
        self._lttng("enable-event", "--session=" + self.session, "-u", "-c", "blkin",
                    "blkin_qemu:*")
        self._lttng("start", self.session)

    def start_nbd(self):
        img = os.path.join(self.wd, self.export + ".raw")
        # Allocated: qemu-nbd answers reads of holes from block status alone,
        # without a read (so without a span).
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", "-o", "preallocation=full",
                        img, self.size], check=True)
        # json: rather than --image-opts, whose parser takes id= for itself;
        # map-interval=1: a viewer that attached late learns the disk map soon.
        spec = {"driver": "blkin", "id": self.server_id, "map-interval": 1,
                "file": {"driver": "raw",
                         "file": {"driver": "blkin", "id": self.server_id + "/file",
                                  "file": {"driver": "file", "filename": img}}}}
        log = os.path.join(self.wd, "qemu-nbd.log")
        self.nbd = self.b.popen(
            ["env", "LD_PRELOAD=" + vm.preload_library(), "timeout", "3600", "qemu-nbd",
             "json:" + json.dumps(spec, separators=(",", ":")), "-x", self.export,
             "-b", self.addr_b, "-p", str(self.port), "-t", "--shared=4",
             "--discard=unmap"],
            stdout=subprocess.DEVNULL, stderr=open(log, "w"))
        for _ in range(200):
            try:
                socket.create_connection((self.addr_b, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.nbd.poll() is not None:
                    raise RuntimeError("qemu-nbd exited: " + open(log).read()[-2000:])
                time.sleep(0.05)
        raise RuntimeError("qemu-nbd does not listen")

    def client_disk(self, vm_name, serial, target="vda", blkin_opts=None):
        """Node A's disk: virtio-blk -> blkin (the VM disk) -> blkin (the NBD
        client's own span) -> raw -> nbd client. Put it first in the VM's
        disk list (its lower filter names the format node fmt0)."""
        # A discard=unmap of the VM's disk goes to every node on the way.
        unmap = {"discard": "unmap"} if (blkin_opts or {}).get("discard") == "unmap" else {}
        return vm.Disk(os.path.join(self.wd, "nbd-unused"), serial, fmt="raw",
                       proto_opts=dict({"driver": "nbd", "server.type": "inet",
                                        "server.host": self.addr_b, "server.port": str(self.port),
                                        "export": self.export}, **unmap),
                       fmt_opts=unmap,
                       blkin={"id": f"{vm_name}/{target}", **(blkin_opts or {})},
                       filter_json={"file": dict({"driver": "blkin",
                                                  "id": f"{vm_name}/{target}/nbd", "file": "fmt0"},
                                                 **unmap)})

    def register_spec(self, target, serial, vm_name):
        return f"{target}={serial}={vm_name}/{target}={self.server_id}"

    def close(self):
        if self.nbd and self.nbd.poll() is None:
            self.nbd.terminate()
            try:
                self.nbd.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.nbd.kill()
                self.nbd.wait()
        self.nbd = None

    def __enter__(self):
        try:
            self.start_session()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
