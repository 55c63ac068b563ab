#!/usr/bin/env python3
"""cutproxy.py — a forwarding HTTP proxy on 127.0.0.1 in front of the tests'
S3 server that cuts some answers short, as a connection dying mid-body
would: the body stops early and is sent close-delimited (no
Content-Length), so nothing at the HTTP level says it is incomplete.

  cutproxy.py LISTEN_PORT UPSTREAM_PORT MODE PATTERN

Every request passes through unchanged (same Host header, so SigV4 still
verifies), except:
  MODE list  a ListObjectsV2 whose query contains PATTERN: the body is cut
             right after its first </Contents>;
  MODE get   a GET of an object whose path contains PATTERN: half its body;
  MODE get1  the same, only the first such GET (a transient cut: the next
             attempt gets the whole body); a ranged GET keeps its
             Content-Range, as a 206 whose connection died would;
  MODE chunked  not a cut: every GET's body is sent whole, chunked
             (Transfer-Encoding: chunked, no Content-Length), as
             streaming gateways and proxies send them;
  MODE complete-error1  the first CompleteMultipartUpload (POST ?uploadId=)
             is not passed on; it is answered 200 with an InternalError
             document, as S3 documents it may answer (to be retried);
  MODE delete-selfclosed  not a cut: a DeleteObjects answer that lists no
             error is sent as an empty root that closes itself
             (<DeleteResult xmlns="…"/>), as some servers write it;
  MODE delete1  the first DeleteObjects (POST ?delete) whose path contains
             PATTERN is not passed on; it is answered 200 with the start of
             a <DeleteResult> and the connection closed, as if the answer
             were cut (nothing was deleted);
  MODE kms   not a cut: every PUT answered 200 gets another 32-hex ETag
             and "x-amz-server-side-encryption: aws:kms", as S3 answers for
             a bucket encrypted with SSE-KMS (the ETag is then not the MD5).
LISTEN_PORT 0 takes any free port.  Prints "ready PORT" on stdout once it
listens.  Test helper only.
"""
import http.client
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

listen, upstream, mode, pattern = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
fired = threading.Event()  # get1, delete1: the one cut has been made


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        if (mode == "complete-error1" and self.command == "POST" and "uploadId=" in self.path
                and not fired.is_set()):
            fired.set()
            sys.stderr.write("cutproxy: answered %s %s with 200 InternalError\n" % (self.command, self.path))
            print("fired", flush=True)  # for a caller that reads stdout (storage_s3_test)
            doc = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
                   b'<Message>We encountered an internal error. Please try again.</Message></Error>')
            self.send_response_only(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)
            self.wfile.flush()
            return
        if (mode == "delete1" and self.command == "POST" and "delete" in self.path
                and pattern in self.path and not fired.is_set()):
            fired.set()
            sys.stderr.write("cutproxy: cut %s %s (not passed on)\n" % (self.command, self.path))
            self.send_response_only(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            self.wfile.write(b'<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http')
            self.wfile.flush()
            return
        conn = http.client.HTTPConnection("127.0.0.1", upstream)
        conn.request(self.command, self.path, body=body, headers=dict(self.headers.items()))
        resp = conn.getresponse()
        data = resp.read()
        is_list = "list-type=2" in self.path
        cut = False
        if self.command == "GET" and resp.status in (200, 206) and pattern in self.path:
            if mode == "list" and is_list:
                i = data.find(b"</Contents>")
                if i >= 0:
                    data, cut = data[: i + len(b"</Contents>")], True
            elif mode in ("get", "get1") and not is_list and len(data) > 1:
                if mode == "get" or not fired.is_set():
                    fired.set()
                    data, cut = data[: len(data) // 2], True
        if cut:
            sys.stderr.write("cutproxy: cut %s %s to %d bytes\n" % (self.command, self.path, len(data)))
        if (mode == "delete-selfclosed" and self.command == "POST" and "delete" in self.path
                and resp.status == 200 and b"<Error>" not in data):
            data = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
                    b'<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>')
            sys.stderr.write("cutproxy: self-closed %s %s\n" % (self.command, self.path))
        kms = mode == "kms" and self.command == "PUT" and resp.status == 200
        self.send_response_only(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in ("transfer-encoding", "connection", "content-length"):
                continue
            if kms and k.lower() == "etag":
                v = '"%s"' % os.urandom(16).hex()
            self.send_header(k, v)
        if kms:
            self.send_header("x-amz-server-side-encryption", "aws:kms")
        chunked = mode == "chunked" and self.command == "GET"
        if cut:
            self.send_header("Connection", "close")
            self.close_connection = True
        elif chunked:
            self.send_header("Transfer-Encoding", "chunked")
        elif self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if chunked:
            for i in range(0, len(data), 100000):
                piece = data[i:i + 100000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = forward


server = ThreadingHTTPServer(("127.0.0.1", listen), Handler)
print("ready %d" % server.server_address[1], flush=True)
server.serve_forever()
