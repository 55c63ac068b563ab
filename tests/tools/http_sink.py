#!/usr/bin/env python3
"""http_sink.py: an HTTP server on 127.0.0.1 that records every request.

    tests/tools/http_sink.py --out FILE [--port N | --port 0 --port-file F] [--status N]

Each request (any method) is appended to FILE as one JSON line:
{"method", "path", "headers": {name: value}, "body"} (body decoded as
UTF-8, undecodable bytes replaced; "body_bytes" holds its length).  Every
request is answered with --status (default 200) and a short text body
("ok", or "sink error" for statuses >= 400), like Slack's webhooks.

--port 0 lets the OS pick a free port; the port is then written to
--port-file (atomically: the file appears complete, once the server is
listening).  Python 3 standard library only.
"""
import argparse
import http.server
import json
import os
import sys
import threading

MAX_BODY = 16 << 20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON lines file, appended to")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the listening port here")
    ap.add_argument("--status", type=int, default=200, help="HTTP status of every answer")
    ap.add_argument("--host", default="127.0.0.1")
    args = ap.parse_args()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_any(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0 or length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else b""
            rec = {
                "method": self.command,
                "path": self.path,
                "headers": {k: v for k, v in self.headers.items()},
                "body": body.decode("utf-8", errors="replace"),
                "body_bytes": len(body),
            }
            with lock, open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            answer = b"ok" if args.status < 400 else b"sink error"
            self.send_response(args.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any

        def log_message(self, fmt, *a):  # quiet: the JSON lines are the log
            pass

    srv = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.rename(tmp, args.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
