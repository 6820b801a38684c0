"""An analytics consumer in another language: reads the daybook topic with confluent-kafka
(librdkafka) and prints one JSON line per record: key, headers, partition, offset and the
value as hex (the bincode envelope, which the Rust test decodes).

usage: consume.py BROKERS TOPIC COUNT [TIMEOUT_S]
"""
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError

brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0

consumer = Consumer({
    "bootstrap.servers": brokers,
    "group.id": f"analytics-{topic}-{time.time_ns()}",
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
})
consumer.subscribe([topic])
seen = 0
deadline = time.monotonic() + timeout
try:
    while seen < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise SystemExit(f"consume error: {msg.error()}")
        headers = {k: v.decode() for k, v in (msg.headers() or [])}
        print(json.dumps({
            "key": msg.key().decode(),
            "headers": headers,
            "partition": msg.partition(),
            "offset": msg.offset(),
            "value_hex": msg.value().hex(),
        }), flush=True)
        seen += 1
finally:
    consumer.close()
if seen < count:
    raise SystemExit(f"read {seen} of {count} records before the timeout")
