#!/usr/bin/env python3
"""gen_small_records.py N: N lines "key<TAB>value" of small records, the
kind access logs, events and metrics are made of: values of 200-800 bytes
(most near 450), keys from a skewed set (a few hot keys, a long tail).
kcat -P -K '\t' produces them; two headers are added with kcat's -H."""
import random
import sys

n = int(sys.argv[1])
rng = random.Random(7)
out = sys.stdout
paths = ["/api/orders", "/api/users", "/login", "/static/app.js", "/api/cart", "/health"]
agents = ["Mozilla/5.0 (X11; Linux x86_64)", "curl/8.5.0", "okhttp/4.12.0", "Go-http-client/2.0"]
buf = []
for i in range(n):
    # Skewed keys: a power law over 100 000 users.
    key = "user-%d" % int(100000 * rng.random() ** 3)
    target = max(200, min(800, int(rng.gauss(450, 120))))
    v = ('{"ts":%d,"method":"%s","path":"%s","status":%d,"bytes":%d,"ms":%.1f,"ip":"10.%d.%d.%d","agent":"%s","trace":"%016x"'
         % (1700000000000 + i * 3, rng.choice(["GET", "POST", "PUT"]), rng.choice(paths),
            rng.choice([200, 200, 200, 201, 304, 404, 500]), rng.randrange(100, 90000),
            rng.random() * 250, rng.randrange(256), rng.randrange(256), rng.randrange(256),
            rng.choice(agents), rng.getrandbits(64)))
    pad = target - len(v) - 2
    if pad > 10:
        v += ',"q":"' + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789&=") for _ in range(pad - 7)) + '"'
    v += "}"
    buf.append("%s\t%s\n" % (key, v))
    if len(buf) >= 10000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
