//! Importers: OTLP protobuf, Jaeger JSON, Zipkin v2 JSON and span CSV (with the
//! Nezha preset), each streaming and reading `.gz` transparently.
