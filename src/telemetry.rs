//! Logs, traces and metrics.
//!
//! - Logs: `tracing` with an env filter (`RUST_LOG` wins over `[telemetry] log_filter`), text
//!   or JSON lines on stderr (stdout is for what the CLI prints: passwords, tokens).
//! - Traces: every `tracing` span (one per HTTP request, one per JMAP method call) is exported
//!   over OTLP/HTTP when `[telemetry] otlp_endpoint` is set; nothing is exported otherwise.
//! - Metrics (OTLP too, same condition), names after OpenTelemetry's semantic conventions:
//!   `http.server.request.duration` (s, by route, method, status),
//!   `jmap.method.calls` (by method and outcome) and `jmap.method.duration` (s, by method).
//!   Recording is a no-op until [`init`] installed an exporter.

use std::io::IsTerminal as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{FilterFn, filter_fn};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryConfig};

#[derive(Debug, thiserror::Error)]
#[error("telemetry: {0}")]
pub struct TelemetryError(String);

struct Instruments {
    http_duration: Histogram<f64>,
    method_calls: Counter<u64>,
    method_duration: Histogram<f64>,
}

static INSTRUMENTS: OnceLock<Instruments> = OnceLock::new();

/// Keeps the exporters alive; [`TelemetryGuard::shutdown`] flushes them.
#[must_use = "dropping the guard without shutdown loses buffered telemetry"]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
}

impl TelemetryGuard {
    /// Flushes and stops the exporters (off the async workers: the SDK blocks while flushing).
    pub async fn shutdown(self) {
        let TelemetryGuard {
            tracer_provider,
            meter_provider,
        } = self;
        if tracer_provider.is_none() && meter_provider.is_none() {
            return;
        }
        let flushed = tokio::task::spawn_blocking(move || {
            if let Some(provider) = tracer_provider
                && let Err(error) = provider.shutdown()
            {
                eprintln!("telemetry: flushing traces failed: {error}");
            }
            if let Some(provider) = meter_provider
                && let Err(error) = provider.shutdown()
            {
                eprintln!("telemetry: flushing metrics failed: {error}");
            }
        });
        if tokio::time::timeout(Duration::from_secs(5), flushed)
            .await
            .is_err()
        {
            eprintln!("telemetry: flushing timed out");
        }
    }
}

fn signal_url(base: &str, signal: &str) -> String {
    format!("{}/v1/{signal}", base.trim_end_matches('/'))
}

/// Installs the global subscriber (and the OTLP exporters when configured). Call once, from
/// within the Tokio runtime.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard, TelemetryError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(value) if !value.trim().is_empty() => EnvFilter::try_new(&value)
            .map_err(|error| TelemetryError(format!("RUST_LOG {value:?}: {error}")))?,
        _ => EnvFilter::try_new(&config.log_filter).map_err(|error| {
            TelemetryError(format!(
                "telemetry.log_filter {:?}: {error}",
                config.log_filter
            ))
        })?,
    };
    // The filter applies to log output only: exported traces keep every info span even
    // when the logs are quieter.
    let (text_layer, json_layer) = match config.log_format {
        LogFormat::Text => {
            let layer = tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(filter);
            (Some(layer), None)
        }
        LogFormat::Json => {
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(std::io::stderr)
                .with_filter(filter);
            (None, Some(layer))
        }
    };

    let mut guard = TelemetryGuard {
        tracer_provider: None,
        meter_provider: None,
    };
    let mut otel_layer = None;
    if let Some(endpoint) = config.otlp_endpoint.as_deref() {
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .build();
        let span_exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(signal_url(endpoint, "traces"))
            .build()
            .map_err(|error| TelemetryError(format!("OTLP trace exporter: {error}")))?;
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                span_exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
        let tracer_provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource.clone())
            .build();
        otel_layer = Some(
            tracing_opentelemetry::layer()
                .with_tracer(tracer_provider.tracer("tern"))
                .with_filter(exported_spans()),
        );

        let metric_exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_endpoint(signal_url(endpoint, "metrics"))
            .build()
            .map_err(|error| TelemetryError(format!("OTLP metric exporter: {error}")))?;
        let reader =
            opentelemetry_sdk::metrics::periodic_reader_with_async_runtime::PeriodicReader::builder(
                metric_exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .with_interval(Duration::from_secs(config.metrics_interval_seconds))
            .build();
        let meter_provider = SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(resource)
            .build();
        let meter = meter_provider.meter("tern");
        let instruments = Instruments {
            http_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP requests")
                .build(),
            method_calls: meter
                .u64_counter("jmap.method.calls")
                .with_description("JMAP method calls")
                .build(),
            method_duration: meter
                .f64_histogram("jmap.method.duration")
                .with_unit("s")
                .with_description("Duration of JMAP method calls")
                .build(),
        };
        // A second init (tests) keeps the first instruments: harmless.
        let _ = INSTRUMENTS.set(instruments);
        guard.tracer_provider = Some(tracer_provider);
        guard.meter_provider = Some(meter_provider);
    }

    tracing_subscriber::registry()
        .with(text_layer)
        .with(json_layer)
        .with(otel_layer)
        .try_init()
        .map_err(|error| TelemetryError(format!("cannot install the subscriber: {error}")))?;
    if let Some(endpoint) = config.otlp_endpoint.as_deref() {
        tracing::info!(endpoint, "exporting traces and metrics over OTLP/HTTP");
    }
    Ok(guard)
}

/// What goes to OTLP: Tern's spans down to DEBUG (the per-request and per-method spans are
/// debug-level so that plain logs do not pay for them), other spans and all events at INFO.
fn exported_spans() -> FilterFn<impl Fn(&tracing::Metadata<'_>) -> bool> {
    filter_fn(|metadata| {
        let limit = if metadata.is_span() && metadata.target().starts_with("tern") {
            tracing::Level::DEBUG
        } else {
            tracing::Level::INFO
        };
        *metadata.level() <= limit
    })
}

/// Records one JMAP method call: the engine calls this through [`method_observer`].
pub fn record_method(name: &str, duration: Duration, failed: bool) {
    let Some(instruments) = INSTRUMENTS.get() else {
        return;
    };
    let method = KeyValue::new("jmap.method", name.to_owned());
    let outcome = KeyValue::new("outcome", if failed { "error" } else { "ok" });
    instruments.method_calls.add(1, &[method.clone(), outcome]);
    instruments
        .method_duration
        .record(duration.as_secs_f64(), &[method]);
}

/// The engine's per-method hook, recording into [`record_method`].
pub fn method_observer() -> crate::jmap::MethodObserver {
    Arc::new(record_method)
}

/// Records one HTTP request of the JMAP listener.
pub fn record_http_request(route: &'static str, method: &str, status: u16, duration: Duration) {
    let Some(instruments) = INSTRUMENTS.get() else {
        return;
    };
    instruments.http_duration.record(
        duration.as_secs_f64(),
        &[
            KeyValue::new("http.route", route),
            KeyValue::new("http.request.method", method.to_owned()),
            KeyValue::new("http.response.status_code", i64::from(status)),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_urls() {
        assert_eq!(
            signal_url("http://collector:4318/", "traces"),
            "http://collector:4318/v1/traces"
        );
    }

    #[test]
    fn recording_without_exporter_is_a_no_op() {
        record_method("Core/echo", Duration::from_millis(1), false);
        record_http_request("api", "POST", 200, Duration::from_millis(1));
    }
}
