//! Health checks: while a guest runs, a thread calls its `GET /eigen/node/health` every
//! `health_interval`, each call given `health_interval` to answer, through the published HTTP
//! port, as every client does: the host listener, the relay with its limits
//! ([`crate::network::forward`]), the guest's server. So a guest that clients cannot reach (a
//! flood that keeps them out, a relay that cannot connect) fails its checks too, not only a
//! guest that hangs. A check fails when no answer comes in time, the connection is refused or
//! closed unanswered, or the answer is 503; any other answer (200 healthy, 206 partially
//! healthy) means it is alive. A guest with no alive answer for `health_timeout` (counted from
//! the start of its boot, so a guest that never becomes ready counts too) is ended with
//! [`Outcome::Unhealthy`], which the supervisor restarts like any other failure. A hung guest
//! (spinning without hypercalls) answers nothing and is caught this way.

use crate::metrics::{HEALTH_PATH, Stats};
use crate::network::forward::ForwardCounters;
use crate::network::guest_http;
use crate::output::{Level, Log};
use crate::vmm::{Outcome, RunHandle};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Where and how often to check.
#[derive(Debug, Clone)]
pub struct HealthCheck {
    /// The published HTTP port, as a process on the host reaches it
    /// ([`crate::network::forward::Published::local_address`]).
    pub target: SocketAddr,
    /// `spec.failover.health_interval`.
    pub interval: Duration,
    /// `spec.failover.health_timeout`.
    pub timeout: Duration,
    /// The published port's relay: while it holds connections (a rolling update,
    /// `crate::update`), no check is made and none is missed (the update checks the new guest
    /// itself, inside the namespace).
    pub relay: Option<Arc<ForwardCounters>>,
}

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// The guest answered with this status (not 503).
    Alive(u16),
    /// No alive answer: why.
    Failed(String),
}

/// Checks the guest's health once, at `target`.
pub fn check(target: SocketAddr, timeout: Duration) -> Check {
    match guest_http::get(target, HEALTH_PATH, timeout, 64 * 1024) {
        Ok(answer) if answer.status == 503 => Check::Failed("answered 503".into()),
        Ok(answer) => Check::Alive(answer.status),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut || e.kind() == std::io::ErrorKind::WouldBlock => {
            Check::Failed(format!("no answer within {} ms", timeout.as_millis()))
        }
        Err(e) => Check::Failed(e.to_string()),
    }
}

/// Checks the health of the guest `run` until the run ends, on a thread of its own (in the
/// caller's network namespace, the launcher's, where the published port is reached).
pub fn watch(
    check: HealthCheck,
    run: RunHandle,
    stats: Arc<Stats>,
    log: Log,
) -> std::io::Result<JoinHandle<()>> {
    let builder = std::thread::Builder::new().name("health".into());
    crate::jail::spawn(crate::jail::Kind::Relay, builder, move || watch_here(&check, &run, &stats, &log))
}

fn watch_here(health: &HealthCheck, run: &RunHandle, stats: &Stats, log: &Log) {
    let started = Instant::now();
    let mut alive_at = started;
    let mut failing = false;
    let mut next = started + health.interval;
    loop {
        if run.wait_end(next) {
            return;
        }
        if health.relay.as_ref().is_some_and(|relay| relay.is_held()) {
            (alive_at, failing) = (Instant::now(), false);
            next = Instant::now() + health.interval;
            continue;
        }
        let result = check(health.target, health.interval);
        let now = Instant::now();
        if run.wait_end(now) {
            return; // the run ended during the check: the answer is about a guest that is gone
        }
        stats.health_check(matches!(result, Check::Alive(_)));
        match result {
            Check::Alive(status) => {
                if failing {
                    log.event(
                        Level::Info,
                        format_args!("health: the guest answers again ({status})"),
                        &[("event", "health_recovered".into()), ("status", status.into())],
                    );
                }
                (alive_at, failing) = (now, false);
            }
            Check::Failed(why) => {
                let for_ms = now.duration_since(alive_at).as_millis() as u64;
                // Failures before ready are expected (the guest is booting): not worth a line.
                if !failing && run.is_ready() {
                    failing = true;
                    log.event(
                        Level::Warn,
                        format_args!(
                            "health: check failed ({why}); the guest is restarted after {} ms without an alive answer",
                            health.timeout.as_millis()
                        ),
                        &[("event", "health_failed".into()), ("reason", why.as_str().into())],
                    );
                }
                if now.duration_since(alive_at) >= health.timeout {
                    run.end(Outcome::Unhealthy(format!(
                        "no alive answer for {for_ms} ms (last check: {why})"
                    )));
                    return;
                }
            }
        }
        next = (next + health.interval).max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// The launcher's metrics page with these health-check `stats` and nothing else.
    fn metrics_of(stats: Arc<Stats>) -> String {
        crate::metrics::render(
            &crate::metrics::Sources {
                name: "n".into(),
                stats,
                exits: Arc::default(),
                devices: Vec::new(),
                published: Vec::new(),
                egress: Vec::new(),
                sidecar: None,
            },
            0,
            None,
        )
    }

    /// A server that answers each connection with `status`, or never answers (`None`).
    fn server(status: Option<u16>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let mut conn = conn.unwrap();
                let _ = conn.read(&mut [0u8; 1024]);
                match status {
                    Some(status) => {
                        let _ = write!(conn, "HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\n{{}}");
                    }
                    None => held.push(conn),
                }
            }
        });
        addr
    }

    #[test]
    fn only_no_answer_a_refusal_or_503_fail() {
        let second = Duration::from_secs(1);
        assert_eq!(check(server(Some(200)), second), Check::Alive(200));
        assert_eq!(check(server(Some(206)), second), Check::Alive(206));
        assert_eq!(
            check(server(Some(404)), second),
            Check::Alive(404),
            "an answer from a guest without the endpoint"
        );
        assert_eq!(check(server(Some(503)), second), Check::Failed("answered 503".into()));
        assert_eq!(
            check(server(None), Duration::from_millis(50)),
            Check::Failed("no answer within 50 ms".into())
        );
        let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(matches!(check(refused, second), Check::Failed(why) if why.contains("refused")));
    }

    fn watched(status: Option<u16>, timeout_ms: u64, for_ms: u64) -> (Option<Outcome>, String, Arc<Stats>) {
        watched_through(None, status, timeout_ms, for_ms)
    }

    fn watched_through(
        relay: Option<Arc<ForwardCounters>>,
        status: Option<u16>,
        timeout_ms: u64,
        for_ms: u64,
    ) -> (Option<Outcome>, String, Arc<Stats>) {
        let check = HealthCheck {
            target: server(status),
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(timeout_ms),
            relay,
        };
        let run = RunHandle::for_tests(1);
        run.set_ready();
        let stats = Arc::new(Stats::new());
        let (log, out) = crate::output::capture("n", crate::output::LogFormat::Text);
        let thread = {
            let (run, stats) = (run.clone(), stats.clone());
            std::thread::spawn(move || watch_here(&check, &run, &stats, &log))
        };
        std::thread::sleep(Duration::from_millis(for_ms));
        let outcome = run.outcome();
        run.end(Outcome::Exited(0));
        thread.join().unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        (outcome, text, stats)
    }

    #[test]
    fn a_guest_that_stops_answering_is_ended_after_the_timeout() {
        let (outcome, log, _) = watched(None, 100, 600);
        let Some(Outcome::Unhealthy(what)) = outcome else { panic!("{outcome:?}") };
        assert!(
            what.starts_with("no alive answer for ")
                && what.ends_with("(last check: no answer within 20 ms)"),
            "{what}"
        );
        assert!(log.contains("[n launcher] health: check failed (no answer within 20 ms); the guest is restarted after 100 ms"), "{log}");
        let (outcome, _, _) = watched(Some(503), 100, 600);
        assert!(
            matches!(outcome, Some(Outcome::Unhealthy(ref what)) if what.contains("answered 503")),
            "{outcome:?}"
        );
    }

    #[test]
    fn no_check_is_made_or_missed_while_the_relay_holds_connections() {
        // A guest that never answers, behind a relay held by a rolling update: not ended.
        let relay = Arc::new(ForwardCounters::default());
        relay.hold();
        let (outcome, log, stats) = watched_through(Some(relay.clone()), None, 100, 400);
        assert_eq!(outcome, None, "{log}");
        assert!(log.is_empty(), "{log}");
        let text = metrics_of(stats);
        assert!(text.contains("spacecore_launcher_health_checks_total{result=\"failed\"} 0"), "{text}");
        // Released, the same guest is ended after the timeout.
        relay.release();
        let (outcome, _, _) = watched_through(Some(relay), None, 100, 600);
        assert!(matches!(outcome, Some(Outcome::Unhealthy(_))), "{outcome:?}");
    }

    #[test]
    fn a_guest_that_answers_is_left_running_and_counted() {
        let (outcome, log, stats) = watched(Some(206), 100, 300);
        assert_eq!(outcome, None);
        assert!(log.is_empty(), "{log}");
        let text = metrics_of(stats);
        let alive = text
            .lines()
            .find(|l| l.starts_with("spacecore_launcher_health_checks_total{result=\"alive\"}"))
            .unwrap();
        let count: f64 = alive.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(count >= 5.0, "{alive}");
    }
}
