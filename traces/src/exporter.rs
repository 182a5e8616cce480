//! A blocking OTLP/gRPC trace exporter: the client side of [`crate::receiver`].
//!
//! [`OtlpExporter::export`] sends one batch of spans and waits for the answer.
//! `UNAVAILABLE` and `RESOURCE_EXHAUSTED` (a receiver that is behind, or one that
//! is starting) are retried with exponential back-off until
//! [`ExporterConfig::retry_for`] has passed; any other refusal is an error at once.
//! The exporter owns a one-thread Tokio runtime, so synchronous callers (the
//! simulator) can use it without being async themselves.

use crate::import::spans_to_otlp;
use crate::span::Span;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// Errors of the exporter; each names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The address is not a valid endpoint.
    #[error("bad OTLP endpoint {endpoint:?}: {message}")]
    Endpoint {
        /// What was given.
        endpoint: String,
        /// Why it is not valid.
        message: String,
    },
    /// Nothing answered at the endpoint.
    #[error("cannot reach the OTLP receiver at {endpoint}: {message}")]
    Connect {
        /// The endpoint URL.
        endpoint: String,
        /// The transport error, with its causes.
        message: String,
    },
    /// The receiver refused an export for good.
    #[error("the OTLP receiver at {endpoint} refused an export: {code:?}: {message}")]
    Refused {
        /// The endpoint URL.
        endpoint: String,
        /// The gRPC status code.
        code: Code,
        /// The status message.
        message: String,
    },
    /// The receiver kept answering "try later" past the retry budget.
    #[error("the OTLP receiver at {endpoint} was still busy after {waited:?} of retries")]
    Busy {
        /// The endpoint URL.
        endpoint: String,
        /// How long the export was retried.
        waited: Duration,
    },
    /// The runtime could not be started.
    #[error("cannot start the exporter's runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Exporter settings.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// How long to wait for the connection.
    pub connect_timeout: Duration,
    /// How long one export call may take.
    pub request_timeout: Duration,
    /// How long a batch is retried while the receiver answers "try later".
    pub retry_for: Duration,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            retry_for: Duration::from_secs(60),
        }
    }
}

/// What the exporter has sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Export calls that succeeded.
    pub exports: u64,
    /// Spans in them.
    pub spans: u64,
    /// Spans the receiver reported as rejected (partial success).
    pub rejected_spans: u64,
    /// Calls answered "try later" and retried.
    pub retries: u64,
}

/// A connected exporter.
#[derive(Debug)]
pub struct OtlpExporter {
    rt: tokio::runtime::Runtime,
    client: TraceServiceClient<Channel>,
    endpoint: String,
    cfg: ExporterConfig,
    stats: ExportStats,
}

/// `host:port` or a full `http://` URL as an endpoint URL.
pub fn endpoint_url(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl OtlpExporter {
    /// Connects to `addr` (`host:port` or `http://host:port`); fails at once when
    /// nothing listens there.
    pub fn connect(addr: &str, cfg: ExporterConfig) -> Result<Self, ExportError> {
        let endpoint = endpoint_url(addr);
        let ep = Endpoint::from_shared(endpoint.clone())
            .map_err(|e| ExportError::Endpoint {
                endpoint: addr.to_string(),
                message: chain(&e),
            })?
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let channel = rt
            .block_on(ep.connect())
            .map_err(|e| ExportError::Connect {
                endpoint: endpoint.clone(),
                message: chain(&e),
            })?;
        Ok(Self {
            rt,
            client: TraceServiceClient::new(channel).max_encoding_message_size(64 << 20),
            endpoint,
            cfg,
            stats: ExportStats::default(),
        })
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// What has been sent so far.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// Sends `spans` as one export request, retrying while the receiver is busy.
    pub fn export(&mut self, spans: &[Span]) -> Result<(), ExportError> {
        if spans.is_empty() {
            return Ok(());
        }
        let req = spans_to_otlp(spans);
        let first = Instant::now();
        let mut backoff = Duration::from_millis(5);
        loop {
            let res = self.rt.block_on(self.client.export(req.clone()));
            match res {
                Ok(resp) => {
                    self.stats.exports += 1;
                    self.stats.spans += spans.len() as u64;
                    if let Some(p) = resp.into_inner().partial_success {
                        self.stats.rejected_spans += p.rejected_spans.max(0) as u64;
                    }
                    return Ok(());
                }
                Err(status) if retryable(&status) => {
                    if first.elapsed() >= self.cfg.retry_for {
                        return Err(ExportError::Busy {
                            endpoint: self.endpoint.clone(),
                            waited: first.elapsed(),
                        });
                    }
                    self.stats.retries += 1;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(status) => {
                    return Err(ExportError::Refused {
                        endpoint: self.endpoint.clone(),
                        code: status.code(),
                        message: status.message().to_string(),
                    });
                }
            }
        }
    }
}

/// The codes OTLP senders retry (the OTLP specification's "retryable" list,
/// minus the ones that only follow a server-sent delay).
fn retryable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::DeadlineExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(endpoint_url("127.0.0.1:4317"), "http://127.0.0.1:4317");
        assert_eq!(endpoint_url("http://h:1"), "http://h:1");
    }

    #[test]
    fn nothing_listening_is_a_connect_error_naming_the_endpoint() {
        // Bind then drop, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = ExporterConfig {
            connect_timeout: Duration::from_millis(500),
            ..Default::default()
        };
        let e = OtlpExporter::connect(&format!("127.0.0.1:{port}"), cfg).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ExportError::Connect { .. }), "{msg}");
        assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn a_bad_endpoint_is_refused_before_connecting() {
        let e = OtlpExporter::connect("http://[::1", ExporterConfig::default()).unwrap_err();
        assert!(matches!(e, ExportError::Endpoint { .. }), "{e}");
    }
}
