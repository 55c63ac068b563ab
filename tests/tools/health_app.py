#!/usr/bin/env python3
"""health_app.py - a stand-in for an application's health endpoint (DR tests).

Usage: health_app.py --db NAME --min-rows N [--table documents] [--psql PATH]
                     [--require-file PATH]... (--port N | --port 0 --port-file F)

Listens on 127.0.0.1.  GET /health answers 200 "ok: N rows" only when
`SELECT count(*) FROM TABLE` in database NAME (over psql, with the PG*
environment) returns at least N rows and every --require-file exists;
otherwise 503 with the reason.  Any other path is 404.  Like the real
thing after a disaster, it keeps answering 503 until the data is back.
With --port 0 the OS picks the port, written to --port-file atomically once
the server listens (the convention of http_sink.py).  Stdlib only.
"""

import argparse
import http.server
import os
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--min-rows", type=int, required=True)
    ap.add_argument("--table", default="documents")
    ap.add_argument("--psql", default="psql")
    ap.add_argument("--require-file", action="append", default=[])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    a = ap.parse_args()

    def check():
        for f in a.require_file:
            if not os.path.exists(f):
                return False, f"missing {f}"
        try:
            p = subprocess.run(
                [a.psql, "-XAtq", "-d", a.db, "-c", f'SELECT count(*) FROM "{a.table}"'],
                capture_output=True, text=True, timeout=10)
        except Exception as e:  # noqa: BLE001 - any failure is "unhealthy"
            return False, f"psql: {e}"
        if p.returncode != 0:
            return False, "database: " + (p.stderr.strip().splitlines() or ["error"])[-1]
        n = int(p.stdout.strip() or "0")
        if n < a.min_rows:
            return False, f"only {n} rows in {a.table}, expected at least {a.min_rows}"
        return True, f"ok: {n} rows"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path != "/health":
                code, text = 404, "not found"
            else:
                ok, text = check()
                code = 200 if ok else 503
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            sys.stderr.write("health_app: " + (fmt % args) + "\n")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    if a.port_file:
        tmp = a.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(srv.server_address[1]))
        os.rename(tmp, a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
