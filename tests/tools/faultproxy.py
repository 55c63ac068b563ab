#!/usr/bin/env python3
"""faultproxy.py - a fault-injecting HTTP proxy for the S3 test server (tests only).

    faultproxy.py LISTEN_PORT UPSTREAM_PORT RULE... [--seed N] [--log FILE]

Listens on 127.0.0.1:LISTEN_PORT (0: any free port) and forwards every
request unchanged (same Host header, so SigV4 signatures stay valid) to
127.0.0.1:UPSTREAM_PORT, except where a RULE fires.  Rules are tried in
order for each request; the first that fires decides.  RULE is KIND@WHEN:

  KIND   500       answer "500 InternalError" (the request never reaches S3)
         503       answer "503 SlowDown"
         400token  answer "400 ExpiredToken" (an expired session token, as
                   some services answer it)
         delay:S   forward it, but hold the answer back S seconds
         reset     close the connection with a TCP RST before forwarding
                   (the request never happens)
         reset-after  forward it, let S3 carry it out, then RST instead of
                   answering (the client cannot know it happened)
  WHEN   P         a fraction, e.g. 0.2: each request with probability P
         #N        only the N-th request (1-based)
         #N-M      requests N..M
         METHOD:P  only requests of that method (PUT, GET, HEAD, DELETE, POST);
                   RANGE:P only GETs of a byte range (blob reads, not whole
                   objects such as the config, keys and index)
         METHOD:#N, METHOD:#N-M  the N-th (N..M-th) request of that method
                   that reaches this rule (an earlier rule that fired takes
                   the request first)

Examples: 503@0.3  reset@#5  delay:2@0.1  reset-after@PUT:0.2  500@#1-20

Prints "ready PORT" once listening; one line per injected fault to --log;
runs until killed.  Only ever binds and connects to 127.0.0.1.  Stdlib only.
"""
import argparse
import http.client
import random
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("listen", type=int)
ap.add_argument("upstream", type=int)
ap.add_argument("rules", nargs="+")
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--log")
a = ap.parse_args()

ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "400token": (400, "ExpiredToken", "The provided token has expired."),
}


def parse_rule(r):
    kind, _, when = r.partition("@")
    method = None
    if ":" in when and when.split(":", 1)[0].isalpha():
        method, when = when.split(":", 1)
    if when.startswith("#"):
        lo, _, hi = when[1:].partition("-")
        lo = int(lo)
        hi = int(hi) if hi else lo
        test = lambda n, rng: lo <= n <= hi
    else:
        p = float(when)
        test = lambda n, rng: rng.random() < p
    return kind, method, test, [0]  # [0]: requests this rule's method matched


rules = [parse_rule(r) for r in a.rules]
rng = random.Random(a.seed)
lock = threading.Lock()
count = [0]
stats = {}


def log(line):
    if a.log:
        with lock, open(a.log, "a") as f:
            f.write(line + "\n")


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _decide(self):
        with lock:
            count[0] += 1
            n = count[0]
            for kind, method, test, seen in rules:
                if method == "RANGE":
                    if self.command != "GET" or not self.headers.get("Range"):
                        continue
                elif method and method != self.command:
                    continue
                seen[0] += 1
                if test(seen[0] if method else n, rng):
                    stats[kind] = stats.get(kind, 0) + 1
                    return n, kind
        return n, None

    def _rst(self):
        # SO_LINGER 0: close() sends RST, as a crashed middlebox would
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _handle(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        num, kind = self._decide()
        if kind:
            log("%d %s %s %s" % (num, kind, self.command, self.path.split("?")[0]))
        if kind in ERRORS:
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
        if kind == "reset":
            return self._rst()
        conn = http.client.HTTPConnection("127.0.0.1", a.upstream, timeout=120)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        if kind == "reset-after":
            return self._rst()
        if kind and kind.startswith("delay:"):
            time.sleep(float(kind.split(":", 1)[1]))
        self.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        length = r.getheader("Content-Length")
        self.send_header("Content-Length",
                         length if self.command == "HEAD" and length else str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle


server = ThreadingHTTPServer(("127.0.0.1", a.listen), Proxy)
server.daemon_threads = True
print("ready %d" % server.server_address[1], flush=True)
server.serve_forever()
