# SPDX-License-Identifier: GPL-2.0-or-later
"""Local HTTP(S) receivers for the exporter tests: a certificate authority
made on the spot, and a server that checks authentication and keeps every
request (headers, body decompressed).

    ca = TestCA(workdir)                      # ca.pem, server.pem, server.key
    with Receiver(port, tls=ca, auth=("bearer", "t0k3n")) as r:
        ... r.requests: [Request(path, headers, body, raw_len)] ...

A request whose Authorization header is not the expected one is answered
401 and kept in r.refused; others 200 (or `status`, settable)."""
import gzip
import http.server
import os
import ssl
import subprocess
import threading
from base64 import b64encode
from dataclasses import dataclass


class TestCA:
    """A CA and a server certificate for 127.0.0.1, with openssl(1)."""

    def __init__(self, wd, name="ca"):
        self.dir = os.path.join(wd, name)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "server.pem")
        self.key = os.path.join(self.dir, "server.key")
        ca_key = os.path.join(self.dir, "ca.key")

        def ssl_(*args):
            subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

        ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", self.ca,
             "-days", "2", "-subj", f"/CN=blkin test CA {name}")
        csr = os.path.join(self.dir, "server.csr")
        ssl_("req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", csr,
             "-subj", "/CN=127.0.0.1")
        ext = os.path.join(self.dir, "ext.cnf")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        ssl_("x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", self.cert, "-days", "2", "-extfile", ext)


@dataclass
class Request:
    path: str
    headers: dict
    body: bytes      # decompressed
    raw_len: int     # as sent


class Receiver:
    def __init__(self, port, tls=None, auth=None, status=200):
        self.requests = []
        self.refused = []
        self.status = status
        self.lock = threading.Lock()
        expect = None
        if auth and auth[0] == "bearer":
            expect = "Bearer " + auth[1]
        elif auth and auth[0] == "basic":
            expect = "Basic " + b64encode(f"{auth[1]}:{auth[2]}".encode()).decode()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(n)
                body = gzip.decompress(raw) if self.headers.get("Content-Encoding") == "gzip" else raw
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, len(raw))
                if expect and self.headers.get("Authorization") != expect:
                    with outer.lock:
                        outer.refused.append(req)
                    code = 401
                else:
                    with outer.lock:
                        outer.requests.append(req)
                    code = outer.status
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls.cert, tls.key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def snapshot(self):
        with self.lock:
            return list(self.requests), list(self.refused)
