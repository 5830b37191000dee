#!/usr/bin/env python3
"""gen_records.py N: N lines "key<TAB>value" with 1 KiB JSON-like values,
about as compressible as real event data (zstd ~2-3x), for kcat -P -K '\t'."""
import random
import sys

n = int(sys.argv[1])
rng = random.Random(42)
out = sys.stdout
kinds = ["click", "view", "purchase", "refund"]
buf = []
for i in range(n):
    head = '{"event_id":%d,"user":"user-%06d","type":"%s","amount":%d.%02d,"currency":"EUR","items":[' % (
        i, rng.randrange(100000), kinds[rng.randrange(4)], rng.randrange(10000), rng.randrange(100))
    items = []
    size = len(head)
    while size < 1000:
        it = '{"sku":"SKU-%08x","qty":%d},' % (rng.getrandbits(32), rng.randrange(1, 10))
        items.append(it)
        size += len(it)
    v = (head + "".join(items))[:1022] + "]}"
    buf.append("key-%d\t%s\n" % (rng.randrange(50000), v))
    if len(buf) >= 10000:
        out.write("".join(buf))
        buf.clear()
out.write("".join(buf))
