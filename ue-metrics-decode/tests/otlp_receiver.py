#!/usr/bin/env python3
"""A minimal OTLP/HTTP metrics receiver for the forwarding tests, written on the official
`opentelemetry-proto` Python classes (not on anything in this repository).

Listens on 127.0.0.1 (port 0: the kernel picks one), prints `PORT <n>` on stdout, then one JSON
line per POST /v1/metrics: every data point of the request as the official classes decoded it,
one line of text each (see `points`), with the connection number and the Content-Encoding the
request arrived with.
Answers 200 with an empty ExportMetricsServiceResponse, keeping the connection open
(HTTP/1.1 keep-alive). Bodies that do not parse are answered 400 with a text message.
"""

import gzip
import http.server
import itertools
import json
import sys

import struct

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

CONNECTIONS = itertools.count(1)


def bits(x):
    """A double as its IEEE 754 bits: exact, and the same text in every language."""
    return "%d" % struct.unpack("<Q", struct.pack("<d", x))[0]


def any_value(v):
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return "s:" + v.string_value
    if kind == "int_value":
        return "i:%d" % v.int_value
    if kind == "double_value":
        return "d:" + bits(v.double_value)
    if kind == "bool_value":
        return "b:%s" % ("true" if v.bool_value else "false")
    return kind or "none"


def attributes(kvs):
    return ",".join("%s=%s" % (kv.key, any_value(kv.value)) for kv in kvs)


def optional(p, field):
    return bits(getattr(p, field)) if p.HasField(field) else "-"


def buckets(b):
    return "%d:%s" % (b.offset, ",".join("%d" % c for c in b.bucket_counts))


def point_value(kind, p):
    if kind in ("sum", "gauge"):
        if p.WhichOneof("value") == "as_int":
            return "int:%d" % p.as_int
        return "double:" + bits(p.as_double)
    if kind == "histogram":
        return "count:%d|sum:%s|buckets:%s|bounds:%s|min:%s|max:%s" % (
            p.count,
            optional(p, "sum"),
            ",".join("%d" % c for c in p.bucket_counts),
            ",".join(bits(b) for b in p.explicit_bounds),
            optional(p, "min"),
            optional(p, "max"),
        )
    if kind == "exponential_histogram":
        return "count:%d|sum:%s|scale:%d|zero:%d|pos:%s|neg:%s|min:%s|max:%s" % (
            p.count,
            optional(p, "sum"),
            p.scale,
            p.zero_count,
            buckets(p.positive),
            buckets(p.negative),
            optional(p, "min"),
            optional(p, "max"),
        )
    if kind == "summary":
        return "count:%d|sum:%s|q:%s" % (
            p.count,
            bits(p.sum),
            ",".join("%s=%s" % (bits(q.quantile), bits(q.value)) for q in p.quantile_values),
        )
    return kind


def points(request):
    """resource|scope|metric|unit|kind|temporality|monotonic|attributes|start|time|value"""
    out = []
    for rm in request.resource_metrics:
        resource = attributes(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(m, kind)
                temporality = getattr(data, "aggregation_temporality", 0)
                monotonic = getattr(data, "is_monotonic", False)
                for p in data.data_points:
                    out.append(
                        "%s|%s|%s|%s|%s|%d|%s|%s|%d|%d|%s"
                        % (
                            resource,
                            sm.scope.name,
                            m.name,
                            m.unit,
                            kind,
                            temporality,
                            "true" if monotonic else "false",
                            attributes(p.attributes),
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            point_value(kind, p),
                        )
                    )
    return out


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.connection_number = next(CONNECTIONS)

    def log_message(self, *args):
        pass

    def reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        encoding = self.headers.get("Content-Encoding", "")
        try:
            if self.path != "/v1/metrics":
                raise ValueError("unknown path " + self.path)
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding:
                raise ValueError("unsupported Content-Encoding " + encoding)
            request = ExportMetricsServiceRequest()
            request.ParseFromString(body)
        except Exception as e:  # the reason goes back to the client
            self.reply(400, "text/plain", ("cannot decode: %s" % e).encode())
            return
        line = {
            "connection": self.connection_number,
            "content_encoding": encoding,
            "content_type": self.headers.get("Content-Type", ""),
            "points": points(request),
        }
        print(json.dumps(line), flush=True)
        self.reply(
            200,
            "application/x-protobuf",
            ExportMetricsServiceResponse().SerializeToString(),
        )


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("PORT %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
