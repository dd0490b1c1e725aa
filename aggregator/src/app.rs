//! Wiring: the aggregation service, the JSON-RPC server, the metrics server, the expiry sweeper
//! and the task generator, started together and stopped together.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::chain::{Chain, ChainConfig};
use crate::decision_log::DecisionLog;
use crate::generator::{self, GeneratorConfig};
use crate::http::{self, HttpResponse, response};
use crate::metrics::{self, Metrics};
use crate::operators::OperatorSet;
use crate::rpc;
use crate::service::AggregationService;

/// How often expired tasks are looked for (responses to them are refused at once anyway).
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(50);

/// Everything the aggregator needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The validated static operator set; `None` in chain mode.
    pub operators: Option<Arc<OperatorSet>>,
    /// Chain mode: tasks created on chain, operator sets read from it, aggregates sent to it.
    /// Exactly one of `operators` and `chain` is given.
    pub chain: Option<ChainConfig>,
    /// The JSON-RPC server's address.
    pub listen: SocketAddr,
    /// The metrics server's address.
    pub metrics: SocketAddr,
    /// Time a task waits for its threshold.
    pub task_expiry: Duration,
    /// The task generator, or none (tasks are then registered through [`Aggregator::service`]).
    pub generator: Option<GeneratorConfig>,
    /// Where decisions are written.
    pub decision_log: DecisionLog,
}

/// A running aggregator.
#[derive(Debug)]
pub struct Aggregator {
    /// The aggregation service.
    pub service: Arc<AggregationService>,
    /// The JSON-RPC server's bound address.
    pub rpc_addr: SocketAddr,
    /// The metrics server's bound address.
    pub metrics_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    background: JoinSet<()>,
    generator: Option<JoinHandle<u32>>,
    chain: Option<Arc<Chain>>,
}

/// `GET /metrics` (or `HEAD`).
async fn metrics_handler(metrics: Arc<Metrics>, request: Request<Incoming>) -> HttpResponse {
    if request.uri().path() != "/metrics" {
        return response(StatusCode::NOT_FOUND, "text/plain", "not found: metrics are served at /metrics\n");
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return response(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "use GET\n");
    }
    response(StatusCode::OK, metrics::CONTENT_TYPE, metrics.render())
}

impl Aggregator {
    /// Binds both servers and starts everything; fails on a bad configuration or a busy port.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        if config.task_expiry.is_zero() {
            anyhow::bail!("the task expiry must be more than 0");
        }
        let chain = match (&config.operators, &config.chain) {
            (Some(operators), None) => {
                if let Some(generator) = &config.generator {
                    generator.validate(operators).map_err(|e| anyhow::anyhow!("task generator: {e}"))?;
                }
                None
            }
            (None, Some(chain)) => {
                if let Some(generator) = &config.generator {
                    generator.validate_shape().map_err(|e| anyhow::anyhow!("task generator: {e}"))?;
                }
                Some(Chain::connect(chain).await?)
            }
            (Some(_), Some(_)) => anyhow::bail!("give either an operator set file or the chain, not both"),
            (None, None) => anyhow::bail!("give an operator set file or the chain"),
        };
        let rpc_listener = http::bind(config.listen, "JSON-RPC server").await?;
        let metrics_listener = http::bind(config.metrics, "metrics server").await?;
        let rpc_addr = rpc_listener.local_addr()?;
        let metrics_addr = metrics_listener.local_addr()?;
        let metrics = Arc::new(Metrics::new());
        let service = Arc::new(match &config.operators {
            Some(operators) => AggregationService::new(
                Arc::clone(operators),
                config.task_expiry,
                Arc::clone(&metrics),
                config.decision_log.clone(),
            ),
            None => {
                metrics.enable_chain();
                AggregationService::for_chain(
                    config.task_expiry,
                    Arc::clone(&metrics),
                    config.decision_log.clone(),
                )
            }
        });
        let (shutdown, stop) = watch::channel(false);
        let mut background = JoinSet::new();

        let rpc_service = Arc::clone(&service);
        let handler = move |req| rpc::handle_http(Arc::clone(&rpc_service), req);
        background.spawn(http::serve(rpc_listener, stop.clone(), handler));
        let handler = move |req| metrics_handler(Arc::clone(&metrics), req);
        background.spawn(http::serve(metrics_listener, stop.clone(), handler));

        let sweeper = Arc::clone(&service);
        let mut sweep_stop = stop.clone();
        background.spawn(async move {
            let mut ticker = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                tokio::select! {
                    _ = ticker.tick() => { sweeper.expire_due(Instant::now()); }
                    () = crate::http::stopped(&mut sweep_stop) => break,
                }
            }
        });

        let generator = match &chain {
            None => config
                .generator
                .map(|generator| tokio::spawn(generator::run(Arc::clone(&service), generator, stop.clone()))),
            Some(chain) => {
                let completions = service.completions();
                let responder = crate::chain::run_responder(
                    Arc::clone(chain),
                    Arc::clone(&service),
                    completions,
                    stop.clone(),
                );
                background.spawn(responder);
                config.generator.map(|generator| {
                    let run = crate::chain::run_generator(
                        Arc::clone(chain),
                        Arc::clone(&service),
                        generator,
                        stop.clone(),
                    );
                    tokio::spawn(run)
                })
            }
        };
        Ok(Aggregator { service, rpc_addr, metrics_addr, shutdown, background, generator, chain })
    }

    /// The connected chain, in chain mode.
    pub fn chain(&self) -> Option<&Arc<Chain>> {
        self.chain.as_ref()
    }

    /// Waits for the generator to finish its `--tasks`; returns how many tasks it registered
    /// (`None` without a generator, or if it failed).
    pub async fn wait_generator(&mut self) -> Option<u32> {
        self.generator.take()?.await.ok()
    }

    /// Waits until no task is waiting for responses and, in chain mode, every completed task's
    /// `respondToTask` has been mined or has failed, for at most `limit`.
    pub async fn drain(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let busy = || {
            self.service.active_tasks() > 0
                || self.chain.as_ref().is_some_and(|c| c.handled() < self.service.metrics().tasks_completed())
        };
        while busy() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    /// Stops the generator, the sweeper and both servers, and waits for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(generator) = self.generator.take() {
            let _ = generator.await;
        }
        while self.background.join_next().await.is_some() {}
    }
}

/// Parses a duration in the spec's grammar (`hac::units::parse_duration_ms`): a whole number and
/// a unit, `ms`, `s`, `m` or `h` (`500ms`, `10s`, `2m`), so a duration an operator writes means
/// the same in a spacecore.toml and on the aggregator's command line.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    hac::units::parse_duration_ms(text).map(Duration::from_millis).map_err(|e| e.to_string())
}
