#!/usr/bin/env python3
"""smtp_sink.py: a minimal SMTP server on 127.0.0.1 that records every message.

    tests/tools/smtp_sink.py --out FILE [--port N | --port 0 --port-file F]
                             [--require-auth USER:PASS] [--auth-mechanisms "PLAIN LOGIN"]

Speaks EHLO/HELO, AUTH PLAIN and AUTH LOGIN (with or without an initial
response), MAIL FROM, RCPT TO, DATA, RSET, NOOP and QUIT; no TLS (it does
not offer STARTTLS, so a client using STARTTLS-if-offered goes on in
clear).  Each accepted message is appended to FILE as one JSON line:
{"helo", "mail_from", "rcpt_to": [...], "auth_mechanism", "auth_user",
"auth_password", "data"}; "data" is the message as sent after the
terminating "." line was removed and dot-stuffing undone (CRLFs kept).

--require-auth USER:PASS answers 535 to other credentials and 530 to
MAIL FROM before a successful AUTH.  Without it any credentials are
accepted (and recorded), and AUTH is optional.

--port 0 lets the OS pick a free port, written to --port-file atomically
once the server listens.  Python 3 standard library only (socketserver and
threading; not the removed smtpd/asyncore modules).
"""
import argparse
import base64
import binascii
import json
import os
import socketserver
import sys
import threading

MAX_LINE = 4096          # commands; RFC 5321 allows 512, be lenient
MAX_DATA_LINE = 1 << 16  # message lines (the limit is 998; we record what comes)
MAX_MESSAGE = 16 << 20


def b64(s):
    return base64.b64encode(s.encode()).decode()


def unb64(s):
    return base64.b64decode(s.strip(), validate=True).decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON lines file, appended to")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--require-auth", metavar="USER:PASS")
    ap.add_argument("--auth-mechanisms", default="PLAIN LOGIN",
                    help="what EHLO advertises (subset of PLAIN LOGIN)")
    args = ap.parse_args()
    want = tuple(args.require_auth.split(":", 1)) if args.require_auth else None
    mechs = [m.upper() for m in args.auth_mechanisms.split()]
    lock = threading.Lock()

    class Session(socketserver.StreamRequestHandler):
        def reply(self, text):
            self.wfile.write(text.encode() + b"\r\n")
            self.wfile.flush()

        def readline(self, limit=MAX_LINE):
            line = self.rfile.readline(limit + 2)
            if not line:
                raise EOFError
            if not line.endswith(b"\n"):
                # Too long: drain it and refuse.
                while line and not line.endswith(b"\n"):
                    line = self.rfile.readline(limit)
                return None
            return line.rstrip(b"\r\n").decode("utf-8", errors="replace")

        def reset(self):
            self.mail_from = None
            self.rcpt = []

        def auth(self, arg):
            parts = arg.split(None, 1)
            mech = parts[0].upper() if parts else ""
            initial = parts[1] if len(parts) > 1 else None
            if mech not in mechs:
                return self.reply("504 5.5.4 mechanism not supported")
            try:
                if mech == "PLAIN":
                    if initial is None:
                        self.reply("334 ")
                        initial = self.readline()
                    if initial == "*":
                        return self.reply("501 5.0.0 AUTH aborted")
                    fields = unb64(initial or "").split("\0")
                    if len(fields) != 3:
                        return self.reply("501 5.5.2 malformed AUTH PLAIN")
                    user, password = fields[1], fields[2]
                else:  # LOGIN
                    if initial is None:
                        self.reply("334 " + b64("Username:"))
                        initial = self.readline()
                    if initial == "*":
                        return self.reply("501 5.0.0 AUTH aborted")
                    user = unb64(initial or "")
                    self.reply("334 " + b64("Password:"))
                    line = self.readline()
                    if line == "*":
                        return self.reply("501 5.0.0 AUTH aborted")
                    password = unb64(line or "")
            except (binascii.Error, ValueError):
                return self.reply("501 5.5.2 cannot decode base64")
            self.auth_seen = {"auth_mechanism": mech, "auth_user": user, "auth_password": password}
            if want and (user, password) != want:
                return self.reply("535 5.7.8 authentication credentials invalid")
            self.authed = True
            self.reply("235 2.7.0 authentication successful")

        def data(self):
            if not self.rcpt:
                return self.reply("503 5.5.1 RCPT first")
            self.reply("354 end data with <CR><LF>.<CR><LF>")
            lines, size, too_big = [], 0, False
            while True:
                raw = self.rfile.readline(MAX_DATA_LINE)
                if not raw:
                    raise EOFError
                if raw in (b".\r\n", b".\n"):
                    break
                if raw.startswith(b"."):
                    raw = raw[1:]  # undo dot-stuffing
                size += len(raw)
                if size > MAX_MESSAGE:
                    too_big = True
                    continue
                lines.append(raw)
            if too_big:
                self.reset()
                return self.reply("552 5.3.4 message too big")
            rec = {"helo": self.helo, "mail_from": self.mail_from, "rcpt_to": self.rcpt,
                   "auth_mechanism": None, "auth_user": None, "auth_password": None,
                   "data": b"".join(lines).decode("utf-8", errors="replace")}
            rec.update(self.auth_seen if self.authed else {})
            with lock, open(args.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
            self.reset()
            self.reply("250 2.0.0 OK queued")

        def handle(self):
            self.helo, self.authed, self.auth_seen = None, False, {}
            self.reset()
            self.reply("220 127.0.0.1 ESMTP smtp_sink")
            try:
                while True:
                    line = self.readline()
                    if line is None:
                        self.reply("500 5.5.2 line too long")
                        continue
                    verb, _, arg = line.partition(" ")
                    verb = verb.upper()
                    if verb == "EHLO":
                        self.helo = arg
                        self.reset()
                        ext = ["127.0.0.1 hello " + arg, "8BITMIME", "SIZE %d" % MAX_MESSAGE]
                        if mechs:
                            ext.append("AUTH " + " ".join(mechs))
                        for e in ext[:-1]:
                            self.wfile.write(("250-" + e + "\r\n").encode())
                        self.reply("250 " + ext[-1])
                    elif verb == "HELO":
                        self.helo = arg
                        self.reset()
                        self.reply("250 127.0.0.1")
                    elif verb == "AUTH":
                        if self.authed:
                            self.reply("503 5.5.1 already authenticated")
                        else:
                            self.auth(arg)
                    elif verb == "MAIL":
                        if want and not self.authed:
                            self.reply("530 5.7.0 authentication required")
                        elif not arg.upper().startswith("FROM:"):
                            self.reply("501 5.5.4 syntax: MAIL FROM:<address>")
                        else:
                            self.reset()
                            self.mail_from = arg[5:].strip().split(" ")[0].strip("<>")
                            self.reply("250 2.1.0 OK")
                    elif verb == "RCPT":
                        if self.mail_from is None:
                            self.reply("503 5.5.1 MAIL first")
                        elif not arg.upper().startswith("TO:"):
                            self.reply("501 5.5.4 syntax: RCPT TO:<address>")
                        else:
                            self.rcpt.append(arg[3:].strip().split(" ")[0].strip("<>"))
                            self.reply("250 2.1.5 OK")
                    elif verb == "DATA":
                        self.data()
                    elif verb == "RSET":
                        self.reset()
                        self.reply("250 2.0.0 OK")
                    elif verb == "NOOP":
                        self.reply("250 2.0.0 OK")
                    elif verb == "QUIT":
                        self.reply("221 2.0.0 bye")
                        return
                    else:
                        self.reply("502 5.5.2 command not implemented")
            except (EOFError, ConnectionError):
                return

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server((args.host, args.port), Session)
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
