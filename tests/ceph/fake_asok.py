#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""A UNIX socket where an OSD's admin socket would be, that misbehaves:

    fake_asok.py PATH MODE      (runs until killed; prints "ready" first)

MODE:
  silent   accepts, reads the command, never answers
  bytes    answers anything with 4 bytes that are no length ("HTTP") and
           then some text: what a wrong kind of socket says
  badjson  answers config and perf commands like an OSD, and the op-tracker
           dumps with a truncated, then garbled, op tracker answer
For the collector's fault tests (tests/ceph/test_rbd_faults.py); not Ceph.
"""
import json
import os
import socket
import struct
import sys
import threading


def read_command(c):
    buf = b""
    while not buf.endswith(b"\0"):
        chunk = c.recv(4096)
        if not chunk:
            return None
        buf += chunk
        if len(buf) > 65536:
            return None
    return buf[:-1].decode(errors="replace")


def answer(c, data):
    c.sendall(struct.pack(">I", len(data)) + data)


def serve(c, mode):
    try:
        cmd = read_command(c)
        if cmd is None:
            return
        if mode == "silent":
            threading.Event().wait(3600)
            return
        if mode == "bytes":
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\nnot an admin socket\n")
            return
        req = json.loads(cmd)
        prefix = req.get("prefix", "")
        if prefix == "config get":
            var = req["var"]
            answer(c, json.dumps({var: "600" if "duration" in var else "20"}).encode())
        elif prefix == "config set":
            answer(c, b'{"success":""}')
        elif prefix == "perf dump":
            answer(c, b'{"osd":{"op":1}}')
        else:
            answer(c, b'{"size":20,"duration":600,"ops":[{"description":"osd_op(client.1'
                      b'.0:1 1.0 1:x:::obj:head [read 0~4096] e1)","initiated_at":[}]}')
    except OSError:
        pass
    finally:
        c.close()


def main():
    path, mode = sys.argv[1], sys.argv[2]
    if os.path.exists(path):
        os.unlink(path)
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.listen(16)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c, mode), daemon=True).start()


if __name__ == "__main__":
    main()
