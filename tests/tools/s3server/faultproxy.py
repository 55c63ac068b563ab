#!/usr/bin/env python3
"""A fault-injecting HTTP proxy in front of the S3 test server (tests only).

    faultproxy.py LISTEN_PORT UPSTREAM_PORT MODE

Listens on 127.0.0.1:LISTEN_PORT and forwards every request unchanged
(same Host header, so SigV4 signatures stay valid) to 127.0.0.1:UPSTREAM_PORT,
except that, depending on MODE:

    slowdown:N    the first N requests get "503 SlowDown" (S3's throttling answer)
    slowdown      every request gets "503 SlowDown"
    error500:N    the first N requests get "500 InternalError"

Prints "ready PORT" once listening; runs until killed.  Only 127.0.0.1.
"""
import http.client
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

listen, upstream, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
kind, _, count = mode.partition(":")
budget = [int(count) if count else -1]  # -1: forever
lock = threading.Lock()

ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "error500": (500, "InternalError", "We encountered an internal error. Please try again."),
}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _inject(self):
        with lock:
            if budget[0] == 0:
                return False
            if budget[0] > 0:
                budget[0] -= 1
            return True

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self._inject():
            status, code, msg = ERRORS[kind]
            xml = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                   "<Message>%s</Message></Error>" % (code, msg)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(xml)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(xml)
            return
        conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items()}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        length = r.getheader("Content-Length")
        self.send_header("Content-Length", length if self.command == "HEAD" and length else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


server = ThreadingHTTPServer(("127.0.0.1", listen), Proxy)
print("ready %d" % listen, flush=True)
server.serve_forever()
