//! The live OTLP/gRPC receiver: `TraceService` and `MetricsService` on :4317.
//!
//! Each export is decoded into spans (or queue-depth gauge points) and handed to
//! the consumer through a bounded channel. When the consumer falls behind, an
//! export waits up to [`ReceiverConfig::send_timeout`] for room and is then refused
//! with `UNAVAILABLE`, which OTLP exporters retry with back-off: back-pressure
//! reaches the senders instead of memory growing. Messages above
//! [`ReceiverConfig::max_message_bytes`] are refused by tonic before decoding.

use crate::import::{ImportStats, spans_from_otlp};
use crate::span::Span;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as NumValue;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

/// Names of the OpenTelemetry semantic-convention queue-depth metrics.
pub const DEFAULT_QUEUE_METRICS: [&str; 2] =
    ["http.server.active_requests", "rpc.server.active_requests"];

/// What the receiver hands to its consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum Batch {
    /// Valid spans of one export.
    Spans(Vec<Span>),
    /// Queue-depth points of one export: (service, time ns, value).
    Gauges(Vec<(String, u64, f64)>),
}

/// Receiver limits.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// Largest accepted gRPC message, bytes.
    pub max_message_bytes: usize,
    /// How long an export waits for room in the channel before `UNAVAILABLE`.
    pub send_timeout: Duration,
    /// Metric names read as queue depth.
    pub queue_metrics: Vec<String>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 << 20,
            send_timeout: Duration::from_millis(500),
            queue_metrics: DEFAULT_QUEUE_METRICS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Counters shared between the gRPC handlers and whoever reports.
#[derive(Debug, Default)]
pub struct ReceiverStats {
    /// Span import statistics (rejections with their reasons).
    pub import: ImportStats,
    /// Exports refused because the consumer was behind.
    pub refused_exports: u64,
    /// Gauge points accepted.
    pub gauge_points: u64,
}

/// The OTLP services. Clone it into both servers.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    tx: mpsc::Sender<Batch>,
    cfg: Arc<ReceiverConfig>,
    stats: Arc<Mutex<ReceiverStats>>,
    source: Arc<Path>,
}

impl OtlpReceiver {
    /// A receiver sending to `tx`.
    pub fn new(tx: mpsc::Sender<Batch>, cfg: ReceiverConfig) -> Self {
        Self {
            tx,
            cfg: Arc::new(cfg),
            stats: Arc::default(),
            source: Arc::from(Path::new("otlp-grpc")),
        }
    }

    /// The shared counters.
    pub fn stats(&self) -> Arc<Mutex<ReceiverStats>> {
        Arc::clone(&self.stats)
    }

    /// The two tonic services, with the message-size limit applied.
    pub fn services(
        &self,
    ) -> (
        TraceServiceServer<OtlpReceiver>,
        MetricsServiceServer<OtlpReceiver>,
    ) {
        let m = self.cfg.max_message_bytes;
        (
            TraceServiceServer::new(self.clone()).max_decoding_message_size(m),
            MetricsServiceServer::new(self.clone()).max_decoding_message_size(m),
        )
    }

    async fn send(&self, batch: Batch) -> Result<(), Status> {
        match tokio::time::timeout(self.cfg.send_timeout, self.tx.send(batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Status::unavailable("seer receiver is shutting down")),
            Err(_) => {
                self.lock().refused_exports += 1;
                Err(Status::unavailable("seer receiver is behind; retry later"))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReceiverStats> {
        // A panic while holding the lock only leaves counters behind; keep using them.
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Extracts queue-depth points from a metrics export.
    pub fn gauges_from_metrics(
        &self,
        req: &ExportMetricsServiceRequest,
    ) -> Vec<(String, u64, f64)> {
        let mut out = Vec::new();
        for rm in &req.resource_metrics {
            let service = rm
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                .and_then(|a| a.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(AnyValue::StringValue(s)) => Some(s.clone()),
                    _ => None,
                });
            let Some(service) = service.filter(|s| !s.is_empty()) else {
                continue;
            };
            for sm in &rm.scope_metrics {
                for m in sm
                    .metrics
                    .iter()
                    .filter(|m| self.cfg.queue_metrics.contains(&m.name))
                {
                    let points = match &m.data {
                        Some(Data::Sum(s)) => &s.data_points,
                        Some(Data::Gauge(g)) => &g.data_points,
                        _ => continue,
                    };
                    for p in points {
                        let v = match p.value {
                            Some(NumValue::AsDouble(d)) => d,
                            Some(NumValue::AsInt(i)) => i as f64,
                            None => continue,
                        };
                        if p.time_unix_nano > 0 && v.is_finite() {
                            out.push((service.clone(), p.time_unix_nano, v));
                        }
                    }
                }
            }
        }
        out
    }
}

#[tonic::async_trait]
impl TraceService for OtlpReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let req = request.into_inner();
        let mut spans = Vec::new();
        let mut local = ImportStats::default();
        spans_from_otlp(&req, &self.source, &mut |s| spans.push(s), &mut local);
        let rejected = local.rejected_total();
        let first = local
            .rejections
            .first()
            .map(|r| r.to_string())
            .unwrap_or_default();
        self.lock().import.merge(&local);
        if !spans.is_empty() {
            self.send(Batch::Spans(spans)).await?;
        }
        let partial_success = (rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: rejected as i64,
            error_message: first,
        });
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success,
        }))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let points = self.gauges_from_metrics(request.get_ref());
        self.lock().gauge_points += points.len() as u64;
        if !points.is_empty() {
            self.send(Batch::Gauges(points)).await?;
        }
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: None::<ExportMetricsPartialSuccess>,
        }))
    }
}

/// Serves both OTLP services on `listener` until `shutdown` resolves.
pub async fn serve(
    receiver: OtlpReceiver,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (traces, metrics) = receiver.services();
    tonic::transport::Server::builder()
        .add_service(traces)
        .add_service(metrics)
        .serve_with_incoming_shutdown(
            // Without TCP_NODELAY a unary reply waits for the peer's delayed ACK
            // (about 40 ms on Linux).
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
