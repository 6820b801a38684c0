#!/usr/bin/env python3
"""Splits a server CPU profile into the parts of a report's path.

    perf record -e cpu-clock -F 250 --call-graph dwarf,32768 -p SERVER_PID -o p.data -- sleep 5
    perf script -i p.data > p.txt
    bench/perf/categories.py < p.txt

Each sample goes to the first category (top to bottom) with a frame on its stack matching the
category's pattern, so a sample is counted once; the shares add up to 100 %. `SERVER_PID` is
the `daybook-bench serve` child of `daybook-bench burst` or `sustain` (bench/perf/record.sh).
"""
import collections
import re
import sys

CATEGORIES = [
    ("presign", r"aws_smithy|aws_sigv4|aws_sdk_s3|infra::s3::"),
    ("log writer thread (encode, pwrite, fsync, replies)", r"embedded_log::Writer::run"),
    ("kafka append, caller side (enqueue, delivery futures)", r"infra::kafka::producer|rdkafka::producer"),
    ("kafka poll, projector side (StreamConsumer, decode)", r"infra::kafka::consumer|rdkafka::consumer"),
    ("librdkafka threads (produce and fetch requests, delivery reports)", r"rd_kafka_|rd_kafka\b|^rd_|librdkafka"),
    ("projector: store apply (SQLite)", r"apply_batch|embedded_store"),
    ("projector: poll, decode, commit", r"^projector::"),
    ("log read", r"embedded_log::read|embedded_log::segment::Reader"),
    ("auth (token verify / cache)", r"seams::auth"),
    ("rate limit", r"check_rate|governor"),
    ("body read", r"read_body"),
    ("json parse", r"parse_json|serde_json::de"),
    ("validate / build report", r"Report::validate|Ingest>::validate|event_started|segment_reported|digest_reported|event_ended|EventId::parse"),
    ("log append, caller side (envelope, queue, timeout)", r"Ingest>::append"),
    ("viewer reads (api)", r"^api::"),
    ("hyper: read + parse request", r"Buffered<T,B>::parse|poll_read_from_io|poll_read_head"),
    ("hyper: write response (writev)", r"poll_flush"),
    ("hyper / axum / tower glue, handlers", r"hyper::|axum::|tower::|daybook::http|ingest::routes"),
    ("runtime, scheduler, kernel (rest)", r"."),
]


def main() -> None:
    cats = [(name, re.compile(p)) for name, p in CATEGORIES]
    counts: collections.Counter = collections.Counter()
    total = 0
    stack: list[str] = []

    def flush() -> None:
        nonlocal total
        if not stack:
            return
        total += 1
        for name, pattern in cats:
            if any(pattern.search(f) for f in stack):
                counts[name] += 1
                return

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            stack.clear()
        elif line.startswith((" ", "\t")):
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                stack.append(re.sub(r"\+0x[0-9a-f]+$", "", parts[1].rsplit(" (", 1)[0]))
    flush()
    for name, _ in cats:
        print(f"{100 * counts[name] / max(total, 1):6.2f} %  {name}")
    print(f"{total} samples")


if __name__ == "__main__":
    main()
