#!/usr/bin/env python3
"""moto's S3 server for vault's tests and benchmarks, on loopback.

moto answers S3's API from memory and honours `If-None-Match: *`. This
wrapper adds what fault tests need, without touching moto:

* Injected errors. A GET or PUT of
  /__vault_test__/faults?status=503&count=20&every=2 makes every 2nd of the
  next requests (20 of them) fail with 503 SlowDown (429 is answered as
  throttling, any other status as InternalError) before moto sees them.
  count=0 clears it. ...&rate=0.05&seed=7 fails each request with that
  probability instead (seeded: the same seed fails the same requests of
  the same sequence), for up to count requests. ...&lost_reply=1 lets a
  chosen PUT, POST or DELETE reach moto and land, then answers it with
  the error anyway, as a store whose reply was lost on the way back.
  ...&methods=PUT,DELETE limits the faults to those methods. GET
  /__vault_test__/faults?report=1 answers how many faults were injected
  since the faults were last set.
  ...&ignore_conditions=1 makes the server ignore
  `If-None-Match` from then on, as a store without conditional writes
  would (ignore_conditions=0 restores it).
* Outages. SIGUSR1 takes the server off the network the way a crash does:
  the listening socket closes and every open connection is cut. SIGUSR2
  brings it back on the same port with the same buckets and objects, as a
  restarted server with durable storage would (moto itself keeps no state
  across a real restart).

Usage: s3_server.py --port PORT [--bucket NAME ...]
"""

import argparse
import random
import signal
import socket
import sys
import threading
import urllib.parse

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server

CONTROL = "/__vault_test__/faults"


class Faults:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = 0
        self.remaining = 0
        self.every = 1
        self.seen = 0
        self.ignore_conditions = False
        self.rate = None
        self.rng = random.Random(0)
        self.lost_reply = False
        self.methods = None
        self.injected = 0

    def set(self, status, count, every, rate=None, seed=0, lost_reply=False, methods=None):
        with self.lock:
            self.status, self.remaining, self.every, self.seen = status, count, max(every, 1), 0
            self.rate, self.rng = rate, random.Random(seed)
            self.lost_reply, self.methods = lost_reply, methods
            self.injected = 0

    def take(self, method):
        """(status to fail this request with or 0, whether it lands first)."""
        with self.lock:
            if self.remaining <= 0:
                return 0, False
            if self.methods is not None and method not in self.methods:
                return 0, False
            self.seen += 1
            if self.rate is not None:
                if self.rng.random() >= self.rate:
                    return 0, False
            elif self.seen % self.every:
                return 0, False
            self.remaining -= 1
            self.injected += 1
            lands = self.lost_reply and method in ("PUT", "POST", "DELETE")
            return self.status, lands


def with_faults(app, faults):
    def wrapped(environ, start_response):
        if environ.get("PATH_INFO") == CONTROL:
            q = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            if "ignore_conditions" in q:
                faults.ignore_conditions = q["ignore_conditions"][0] == "1"
            if "count" in q:
                faults.set(
                    int(q.get("status", ["503"])[0]),
                    int(q["count"][0]),
                    int(q.get("every", ["1"])[0]),
                    rate=float(q["rate"][0]) if "rate" in q else None,
                    seed=int(q.get("seed", ["0"])[0]),
                    lost_reply=q.get("lost_reply", ["0"])[0] == "1",
                    methods=set(q["methods"][0].split(",")) if "methods" in q else None,
                )
            body = b"ok\n"
            if "report" in q:
                body = ("%d\n" % faults.injected).encode()
            start_response(
                "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
            )
            return [body]
        status, lands = faults.take(environ.get("REQUEST_METHOD", ""))
        if faults.ignore_conditions:
            environ.pop("HTTP_IF_NONE_MATCH", None)
        if not status:
            return app(environ, start_response)
        if lands:
            # The request reaches moto and lands; its answer is dropped.
            def swallow(*_args, **_kwargs):
                return lambda _data: None

            for _ in app(environ, swallow):
                pass
        else:
            # Read the body the client sent, so the connection stays usable.
            length = int(environ.get("CONTENT_LENGTH") or 0)
            while length > 0:
                got = environ["wsgi.input"].read(min(length, 1 << 20))
                if not got:
                    break
                length -= len(got)
        code, reason = {
            503: ("SlowDown", "Service Unavailable"),
            429: ("Throttling", "Too Many Requests"),
        }.get(status, ("InternalError", "Internal Server Error"))
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
            "<Message>injected by vault's test server</Message></Error>" % code
        ).encode()
        start_response(
            "%d %s" % (status, reason),
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return wrapped


class Connections:
    """The sockets of open client connections, so an outage can cut them."""

    def __init__(self):
        self.lock = threading.Lock()
        self.open = set()

    def handler(self):
        conns = self

        class Handler(WSGIRequestHandler):
            def setup(self):
                super().setup()
                with conns.lock:
                    conns.open.add(self.connection)

            def finish(self):
                with conns.lock:
                    conns.open.discard(self.connection)
                super().finish()

            def log_request(self, *args, **kwargs):
                pass

        return Handler

    def cut_all(self):
        with self.lock:
            for s in list(self.open):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()

    faults = Faults()
    conns = Connections()
    app = with_faults(DomainDispatcherApplication(create_backend_app), faults)
    state = {"server": None, "thread": None}
    lock = threading.Lock()

    def up():
        with lock:
            if state["server"] is not None:
                return
            server = make_server(
                args.host, args.port, app, threaded=True, request_handler=conns.handler()
            )
            t = threading.Thread(target=server.serve_forever, daemon=True)
            t.start()
            state["server"], state["thread"] = server, t
        print("s3 server: listening on %s:%d" % (args.host, args.port), flush=True)

    def down():
        with lock:
            server = state["server"]
            if server is None:
                return
            state["server"] = None
        server.shutdown()
        server.server_close()
        conns.cut_all()
        print("s3 server: off the network", flush=True)

    # Signal handlers run on the main thread, which only waits: the
    # servers run on their own threads, so stopping one never deadlocks.
    signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=down).start())
    signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=up).start())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    up()
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
