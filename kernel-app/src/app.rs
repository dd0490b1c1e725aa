//! The HTTP endpoints of the node.
//!
//! - `GET /`: `200` with `{"name":..,"version":..,"boot_count":N,"uptime_ms":N,"operator_id":..}`
//!   (JSON); `boot_count` is 0 when there is no disk to count boots on; `operator_id` is the
//!   `0x` hex id of the operator key once it is loaded, `null` before.
//! - `GET /spacecore/identity`: `200` with the operator's scheme, id, public key, ECDSA address
//!   and the identity statement signed by the ECDSA key (JSON, see
//!   [`crate::avs::AvsNode::identity_json`]); `503` with `{"error":"..."}` while the BLS key is
//!   not loaded.
//! - `POST /echo`: `200` with the request body, byte for byte.
//! - `GET /eigen/...`: the EigenLayer AVS Node API ([`crate::api`]).
//! - `GET /metrics`: the Prometheus metrics ([`crate::metrics`]).
//! - `POST /test/panic`, `POST /test/hang`: only with `spacecore.testhooks=on` (404 otherwise):
//!   the guest panics with `test hook: panic requested`, or its vCPU spins forever without an
//!   exit or any polling (a hung guest, for the launcher's recovery tests). Neither answers.
//!
//! - the linked AVS's routes (`spacecore_avs::Avs::routes`): its answers; it may refuse a
//!   request from its request line, before the body is read (`Avs::refuse`).
//!
//! Anything else is 404; a known path with another method is 405 with `Allow`.

use crate::api::{self, Resource};
use crate::avs::{AvsNode, Records};
use crate::http::calls::{AvsCalls, CallRequest};
use crate::http::client::HttpResponse;
use crate::http::{Handler, Response};
use crate::metrics;
use crate::sdk::{Linked, Services, Settings};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

/// Reads the clock: nanoseconds since boot.
pub type Clock = Box<dyn Fn() -> u64>;

/// The application: the node's identity, its AVS side and its records.
pub struct App<R> {
    name: String,
    boot_count: Option<u64>,
    clock: Clock,
    test_hooks: bool,
    hang: fn() -> !,
    /// The operator side: keys, signing history, signing.
    pub avs: AvsNode,
    /// The AVS's settings from the spec.
    pub settings: Settings,
    /// Writes a line of the AVS to the console: `(AVS name, line)`.
    pub log: fn(&str, &str),
    /// The disk's records, if there is a disk.
    pub records: Option<R>,
    /// The AVS linked into the image (`spacecore_avs`): its routes, timers, metrics, services.
    pub linked: Linked,
}

impl<R> core::fmt::Debug for App<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("App")
            .field("name", &self.name)
            .field("boot_count", &self.boot_count)
            .field("test_hooks", &self.test_hooks)
            .field("avs", &self.avs)
            .finish_non_exhaustive()
    }
}

/// Spins the vCPU forever: no exit to the launcher, no polling, nothing else runs.
pub fn spin_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

impl<R: Records> App<R> {
    /// The application of node `name`, in its boot number `boot_count` (`None` when the disk
    /// cannot count boots), with its disk's `records`; `sends`: whether signed responses go to
    /// an aggregator. Its clock reads 0 until [`App::with_clock`] sets one; test hooks are off.
    pub fn new(name: &str, boot_count: Option<u64>, mut records: Option<R>, sends: bool) -> Self {
        let avs = AvsNode::new(records.as_mut().map(|r| r as &mut dyn Records), sends);
        App {
            name: name.into(),
            boot_count,
            clock: Box::new(|| 0),
            test_hooks: false,
            hang: spin_forever,
            avs,
            settings: Settings::default(),
            log: |_, _| {},
            records,
            linked: Linked::none(),
        }
    }

    /// Runs `linked`, the image's AVS.
    pub fn with_avs(mut self, linked: Linked) -> Self {
        self.linked = linked;
        self
    }

    /// The node's services lent to the linked AVS, and the AVS.
    fn lend(&mut self) -> (&mut dyn spacecore_avs::Avs, Services<'_>) {
        let linked = &mut self.linked;
        let services = Services {
            avs: &mut self.avs,
            records: self.records.as_mut().map(|r| r as &mut dyn Records),
            clock: &*self.clock,
            boot_count: self.boot_count.unwrap_or(0),
            avs_name: linked.name,
            outbound: &mut linked.outbound,
            settings: &self.settings,
            log: self.log,
        };
        (&mut *linked.avs, services)
    }

    /// Starts the linked AVS: once, after the operator key is loaded.
    pub fn start_avs(&mut self) {
        let (avs, mut node) = self.lend();
        avs.start(&mut node);
    }

    /// Runs the linked AVS's periodic work if it is due at `now_ms`; returns when it is due next.
    pub fn tick_avs(&mut self, now_ms: u64) -> Option<u64> {
        if self.linked.due_ms.is_some_and(|due| due <= now_ms) {
            let (avs, mut node) = self.lend();
            let next = avs.tick(&mut node);
            self.linked.due_ms = next;
        }
        self.linked.due_ms
    }

    /// Uses `clock` (nanoseconds since boot) for the uptime and to time signatures.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The AVS's authority: the Ethereum address `spec.avs.task_signer` names, if any.
    pub fn with_task_source(mut self, source: Option<[u8; 20]>) -> Self {
        self.avs.set_task_source(source);
        self
    }

    /// Serves `POST /test/panic` and `POST /test/hang` when `on`.
    pub fn with_test_hooks(mut self, on: bool) -> Self {
        self.test_hooks = on;
        self
    }

    /// The services the node API shows now.
    fn services(&self) -> Vec<api::Service> {
        let mut list = api::services(&self.avs);
        for service in self.linked.services() {
            if !list.iter().any(|s| s.id == service.id) {
                list.push(service);
            }
        }
        list
    }

    fn status(&self) -> Response {
        /// `GET /`.
        #[derive(serde::Serialize)]
        struct NodeStatus<'a> {
            name: &'a str,
            version: &'a str,
            boot_count: u64,
            uptime_ms: u64,
            operator_id: Option<String>,
        }
        api::json(
            200,
            &NodeStatus {
                name: &self.name,
                version: env!("CARGO_PKG_VERSION"),
                boot_count: self.boot_count.unwrap_or(0),
                uptime_ms: (self.clock)() / 1_000_000,
                operator_id: self.avs.operator().map(|op| avs_protocol::encoding::to_hex(&op.id)),
            },
        )
    }

    fn metrics(&self) -> Response {
        let inputs = metrics::Inputs {
            avs: &self.avs,
            avs_name: self.linked.name,
            health: api::health(&self.services()),
            boot_count: self.boot_count,
            uptime_ns: (self.clock)(),
        };
        let mut page = metrics::render(&inputs);
        let mut own = spacecore_avs::Metrics::new();
        self.linked.avs.metrics(&mut own);
        page.extend_from_slice(own.into_string().as_bytes());
        Response::new(200, metrics::CONTENT_TYPE, page)
    }

    fn identity(&self) -> Response {
        match self.avs.identity_json() {
            Ok(json) => api::json(200, &json),
            Err((status, why)) => api::error(status, &why),
        }
    }
}

impl<R: Records> AvsCalls for App<R> {
    fn next_call(&mut self, endpoint: &str) -> Option<(u64, CallRequest)> {
        self.linked.outbound.next(endpoint)
    }

    fn call_done(&mut self, id: u64, result: Result<HttpResponse, String>) {
        self.linked.outbound.finished();
        let outcome = result.map(|r| spacecore_avs::Reply { status: r.status, body: r.body });
        let (avs, mut node) = self.lend();
        avs.call_done(id, outcome, &mut node);
        self.linked.due_ms = Some(0);
    }
}

/// A request target split into its path and its query, if any.
fn split(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

impl<R: Records> Handler for App<R> {
    fn accept(&mut self, method: &str, target: &str) -> Result<(), Response> {
        let (path, query) = split(target);
        let allowed = match path {
            "/" | "/metrics" | "/spacecore/identity" => "GET",
            "/echo" => "POST",
            "/test/panic" | "/test/hang" if self.test_hooks => "POST",
            _ => match api::resource(path) {
                Some(Resource::ServiceHealth(id)) if !self.services().iter().any(|s| s.id == id) => {
                    return Err(Response::error(404));
                }
                Some(_) => "GET",
                // The linked AVS's routes are its to answer, unless it refuses from the request
                // line alone.
                None if spacecore_avs::routed(self.linked.avs.routes(), path) => {
                    return match self.linked.avs.refuse(method, path) {
                        Some(r) => Err(avs_response(r)),
                        None => Ok(()),
                    };
                }
                None => return Err(Response::error(404)),
            },
        };
        if method != allowed {
            return Err(Response::method_not_allowed(allowed));
        }
        if path.starts_with("/eigen/") && !api::version_supported(query) {
            return Err(api::version_not_found());
        }
        Ok(())
    }

    fn handle(&mut self, method: &str, target: &str, body: Vec<u8>) -> Response {
        let (path, _) = split(target);
        match path {
            "/" => self.status(),
            "/metrics" => self.metrics(),
            "/echo" => Response::new(200, "application/octet-stream", body),
            "/spacecore/identity" => self.identity(),
            "/test/panic" if self.test_hooks => panic!("test hook: panic requested"),
            "/test/hang" if self.test_hooks => (self.hang)(),
            _ => match api::resource(path) {
                Some(resource) => api::answer(resource, &self.name, &self.services()),
                None => self.avs_request(method, target, &body),
            },
        }
    }
}

impl<R: Records> App<R> {
    /// A request for the linked AVS: its answer, or 404.
    fn avs_request(&mut self, method: &str, target: &str, body: &[u8]) -> Response {
        let request = spacecore_avs::Request::new(method, target, body);
        let (avs, mut node) = self.lend();
        let answer = avs.handle(&request, &mut node);
        // A request may have changed what the AVS's timers want.
        self.linked.due_ms = Some(0);
        answer.map_or_else(|| Response::error(404), avs_response)
    }
}

/// The AVS's answer as the server sends it. Statuses whose responses carry no body, or that
/// change the protocol, would break the connection's framing: an AVS gets 200-599 less those.
fn avs_response(r: spacecore_avs::Response) -> Response {
    if (200..600).contains(&r.status) && !matches!(r.status, 204 | 205 | 304) {
        Response::new(r.status, r.content_type, r.body)
    } else {
        api::error(500, &alloc::format!("the AVS answered with status {}, which it may not use", r.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avs::tests::{MemRecords, operator};
    use spacecore_store::RecordKey;

    fn app(name: &str, boot_count: u64) -> App<MemRecords> {
        App::new(name, Some(boot_count), Some(MemRecords::default()), false)
            .with_task_source(Some(crate::avs::tests::task_source().address()))
    }

    fn get(app: &mut App<MemRecords>, target: &str) -> Response {
        match app.accept("GET", target) {
            Ok(()) => app.handle("GET", target, Vec::new()),
            Err(refused) => refused,
        }
    }

    /// An AVS for the routing tests: each path asks for one kind of answer.
    #[derive(Debug, Default)]
    struct Probe {
        handled: u64,
    }

    impl spacecore_avs::Avs for Probe {
        fn routes(&self) -> &'static [&'static str] {
            &["/probe", "/probe/", "/metrics"]
        }

        fn tick(&mut self, node: &mut dyn spacecore_avs::Node) -> Option<u64> {
            Some(node.now_ms() + 100)
        }

        fn refuse(&self, _method: &str, path: &str) -> Option<spacecore_avs::Response> {
            (path == "/probe/closed").then(|| spacecore_avs::Response::text(403, "closed"))
        }

        fn handle(
            &mut self,
            request: &spacecore_avs::Request<'_>,
            node: &mut dyn spacecore_avs::Node,
        ) -> Option<spacecore_avs::Response> {
            use spacecore_avs::Response as R;
            self.handled += 1;
            let status = |status| R { status, content_type: "text/plain", body: b"x".to_vec() };
            match request.path {
                "/probe" => Some(R::text(200, request.method)),
                "/probe/save" => Some(match node.save(request.body) {
                    Ok(()) => R::text(200, "saved"),
                    Err(e) => R::error(500, &alloc::format!("{e}")),
                }),
                "/probe/no-content" => Some(status(204)),
                "/probe/switching" => Some(status(101)),
                "/probe/huge" => Some(status(1000)),
                _ => None,
            }
        }

        fn metrics(&self, out: &mut spacecore_avs::Metrics) {
            out.counter("probe_handled_total", "Requests the probe AVS saw.", &[(&[], self.handled)]);
        }

        fn services(&self) -> Vec<spacecore_avs::Service> {
            let service = |id: &str, status| spacecore_avs::Service {
                id: id.into(),
                name: "Probe".into(),
                description: "A test service.".into(),
                status,
            };
            alloc::vec![
                service("probe", spacecore_avs::Health::Down),
                service("signer", spacecore_avs::Health::Up),
                service("Not An Id", spacecore_avs::Health::Up),
            ]
        }
    }

    fn probe_app() -> App<MemRecords> {
        app("n", 1).with_avs(Linked::new("probe", "0.1.0", alloc::boxed::Box::new(Probe::default())))
    }

    fn send(app: &mut App<MemRecords>, method: &str, target: &str, body: &[u8]) -> Response {
        match app.accept(method, target) {
            Ok(()) => app.handle(method, target, body.to_vec()),
            Err(refused) => refused,
        }
    }

    #[test]
    fn the_linked_avs_gets_its_routes_and_nothing_of_the_runtimes() {
        let mut app = probe_app();
        // Its routes, whatever the method; other paths are refused from the request line.
        assert_eq!(send(&mut app, "DELETE", "/probe", b"").body, b"DELETE");
        assert_eq!(send(&mut app, "GET", "/probe/unknown", b"").status, 404, "the AVS said None");
        assert_eq!(app.accept("POST", "/elsewhere").unwrap_err().status, 404);
        assert_eq!(app.accept("POST", "/probes").unwrap_err().status, 404);
        // A path the runtime keeps stays the runtime's, even when the AVS names it.
        let metrics = send(&mut app, "GET", "/metrics", b"");
        assert_eq!(metrics.content_type, metrics::CONTENT_TYPE);
        // It may refuse from the request line: nothing of the body is read, and the refusal is
        // its answer.
        let closed = app.accept("POST", "/probe/closed").unwrap_err();
        assert_eq!((closed.status, closed.body.as_slice()), (403, &b"closed"[..]));
        // Its record is the store's AvsRecord.
        assert_eq!(send(&mut app, "POST", "/probe/save", b"ledger").body, b"saved");
        let records = app.records.as_mut().unwrap();
        assert_eq!(
            records.values.get(&RecordKey::AvsRecord.number()).map(Vec::as_slice),
            Some(&b"ledger"[..])
        );
    }

    #[test]
    fn the_avs_starts_once_and_its_timer_runs_when_due() {
        let ms = std::rc::Rc::new(core::cell::Cell::new(0u64));
        let clock = ms.clone();
        let mut app = probe_app().with_clock(Box::new(move || clock.get() * 1_000_000));
        app.start_avs();
        assert_eq!(app.tick_avs(0), Some(100), "due at once on the first round; it asks for 100 ms");
        ms.set(99);
        assert_eq!(app.tick_avs(99), Some(100), "not before it is due");
        ms.set(100);
        assert_eq!(app.tick_avs(100), Some(200));
        // A request may change what its timer wants: it runs again on the next round.
        send(&mut app, "GET", "/probe", b"");
        ms.set(101);
        assert_eq!(app.tick_avs(101), Some(201));
    }

    #[test]
    fn an_avs_answer_that_would_break_the_framing_becomes_a_500() {
        let mut app = probe_app();
        for path in ["/probe/no-content", "/probe/switching", "/probe/huge"] {
            let answer = send(&mut app, "GET", path, b"");
            assert_eq!(answer.status, 500, "{path}");
            assert!(String::from_utf8_lossy(&answer.body).contains("which it may not use"), "{path}");
        }
    }

    #[test]
    fn the_avs_metrics_and_services_join_the_runtimes() {
        let mut app = probe_app();
        send(&mut app, "GET", "/probe", b"");
        let page = String::from_utf8(get(&mut app, "/metrics").body).unwrap();
        assert!(page.contains("spacecore_uptime_seconds"), "the runtime's own families stay");
        assert!(page.lines().any(|l| l == "probe_handled_total 1"), "{page}");
        let services: serde_json::Value =
            serde_json::from_slice(&get(&mut app, "/eigen/node/services").body).unwrap();
        let ids: Vec<&str> =
            services["services"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["signer", "probe"], "one signer (the runtime's), no id a path cannot carry");
        assert_eq!(get(&mut app, "/eigen/node/services/probe/health").status, 503);
        assert_eq!(get(&mut app, "/eigen/node/health").status, 206, "a down AVS service is not essential");
    }

    #[test]
    fn routes_and_refuses() {
        let mut app = app("n", 1);
        for (method, target) in [
            ("GET", "/"),
            ("POST", "/echo"),
            ("GET", "/metrics"),
            ("GET", "/eigen/node"),
            ("GET", "/eigen/node/health"),
            ("GET", "/eigen/node/services"),
            ("GET", "/eigen/node/services/signer/health"),
            ("GET", "/eigen/node?version=v0.0.1"),
        ] {
            assert_eq!(app.accept(method, target), Ok(()), "{method} {target}");
        }
        for target in [
            "/nope",
            "/eigen",
            "/eigen/",
            "/eigen/node/",
            "/eigen/node/services/",
            "/eigen/node/services//health",
            "/eigen/node/services/aggregator/health",
            "/eigen/node/services/signer",
            "/eigen/node/services/signer/health/x",
            "/test/panic",
            "/test/hang",
        ] {
            assert_eq!(app.accept("GET", target).unwrap_err().status, 404, "{target}");
            assert_eq!(app.accept("POST", target).unwrap_err().status, 404, "{target}");
        }
        assert_eq!(app.accept("GET", "/spacecore/identity"), Ok(()));
        assert_eq!(app.accept("POST", "/spacecore/identity").unwrap_err().allow, Some("GET"));
        let wrong = app.accept("POST", "/").unwrap_err();
        assert_eq!((wrong.status, wrong.allow), (405, Some("GET")));
        assert_eq!(app.accept("GET", "/echo").unwrap_err().allow, Some("POST"));
        assert_eq!(app.accept("POST", "/task").unwrap_err().status, 404, "the AVS's, and there is none");
        for target in [
            "/metrics",
            "/eigen/node",
            "/eigen/node/health",
            "/eigen/node/services",
            "/eigen/node/services/signer/health",
        ] {
            for method in ["POST", "PUT", "DELETE", "HEAD"] {
                let wrong = app.accept(method, target).unwrap_err();
                assert_eq!((wrong.status, wrong.allow), (405, Some("GET")), "{method} {target}");
            }
        }
    }

    #[test]
    fn status_is_json_with_the_counters() {
        let mut app = app("node \"7\"\\\n", 42).with_clock(Box::new(|| 1_234_567_890));
        let r = app.handle("GET", "/", Vec::new());
        assert_eq!((r.status, r.content_type), (200, "application/json"));
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.ends_with("}\n") && text.matches('\n').count() == 1, "one line: {text:?}");
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected = serde_json::json!({
            "name": "node \"7\"\\\n",
            "version": env!("CARGO_PKG_VERSION"),
            "boot_count": 42,
            "uptime_ms": 1234,
            "operator_id": null,
        });
        assert_eq!(body, expected);
        // Without a disk the boot count shows as 0.
        let diskless = App::<MemRecords>::new("n", None, None, false);
        let body: serde_json::Value = serde_json::from_slice(&diskless.status().body).unwrap();
        assert_eq!(body["boot_count"], 0);
    }

    #[test]
    fn status_shows_the_operator_once_loaded() {
        let mut app = app("n", 1);
        let op = operator(1);
        let id = avs_protocol::encoding::to_hex(&op.id);
        app.avs.set_operator(Ok(op)).unwrap();
        let body = String::from_utf8(app.handle("GET", "/", Vec::new()).body).unwrap();
        assert!(body.ends_with(&format!(",\"operator_id\":\"{id}\"}}\n")), "{body}");
    }

    #[test]
    fn the_identity_is_json_once_the_key_is_loaded() {
        let mut app = app("n", 1);
        let loading = get(&mut app, "/spacecore/identity");
        assert_eq!((loading.status, loading.content_type), (503, "application/json"));
        assert_eq!(loading.body, b"{\"error\":\"the operator key is still loading\"}\n");
        let op = operator(1);
        let id = avs_protocol::encoding::to_hex(&op.id);
        app.avs.set_operator(Ok(op)).unwrap();
        let r = get(&mut app, "/spacecore/identity");
        assert_eq!((r.status, r.content_type), (200, "application/json"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["operator_id"], id.as_str());
        assert_eq!(body["scheme"], "bls12-381");
    }

    #[test]
    fn echo_returns_the_body() {
        let body: Vec<u8> = (0..=255).collect();
        let r = app("n", 0).handle("POST", "/echo?x=1", body.clone());
        assert_eq!((r.status, r.body), (200, body));
    }

    #[test]
    fn the_node_api_follows_the_key() {
        // An operator node (with an aggregator) that cannot sign is unhealthy.
        let mut broken = App::new("n", Some(1), Some(MemRecords::default()), true);
        let mut app = app("node-1", 1);
        let node: serde_json::Value = serde_json::from_slice(&get(&mut app, "/eigen/node").body).unwrap();
        assert_eq!(node["node_name"], "node-1");
        assert_eq!(get(&mut app, "/eigen/node/health").status, 206, "loading");
        assert_eq!(get(&mut app, "/eigen/node/services/signer/health").status, 206);
        app.avs.set_operator(Ok(operator(1))).unwrap();
        assert_eq!(get(&mut app, "/eigen/node/health").status, 200, "ready");
        assert_eq!(get(&mut app, "/eigen/node/services/signer/health").status, 200);
        broken.avs.set_operator(Err("wrong password".into())).unwrap_err();
        assert_eq!(get(&mut broken, "/eigen/node/health").status, 503, "not signing");
        let services: serde_json::Value =
            serde_json::from_slice(&get(&mut broken, "/eigen/node/services").body).unwrap();
        assert_eq!(services["services"][0]["status"], "Down");
        // Versions: the one served, with or without its v; any other is 404 with a message.
        assert_eq!(get(&mut app, "/eigen/node/health?version=0.0.1").status, 200);
        let other = get(&mut app, "/eigen/node?version=0.0.2");
        assert_eq!((other.status, other.content_type), (404, "application/json"));
        let message: serde_json::Value = serde_json::from_slice(&other.body).unwrap();
        assert_eq!(message, serde_json::json!({"message": "API version not found"}));
    }

    #[test]
    fn metrics_are_served_as_text() {
        let mut app = app("n", 7).with_clock(Box::new(|| 2_500_000_000));
        let r = get(&mut app, "/metrics");
        assert_eq!((r.status, r.content_type), (200, "text/plain; version=0.0.4; charset=utf-8"));
        let text = String::from_utf8(r.body).unwrap();
        assert!(text.contains("\nspacecore_boots_total 7\n"), "{text}");
        assert!(text.contains("\nspacecore_uptime_seconds 2.5\n"), "{text}");
        assert!(text.contains("\neigen_performance_score{avs_name=\"none\"} 50\n"), "{text}");
    }

    #[test]
    fn test_hooks_are_served_only_when_on() {
        fn hung() -> ! {
            panic!("hang hook called")
        }
        let mut off = app("n", 1);
        assert_eq!(off.accept("POST", "/test/panic").unwrap_err().status, 404);
        assert_eq!(off.handle("POST", "/test/panic", Vec::new()).status, 404);
        assert_eq!(off.handle("POST", "/test/hang", Vec::new()).status, 404);

        let mut on = app("n", 1).with_test_hooks(true);
        on.hang = hung;
        assert_eq!(on.accept("POST", "/test/panic"), Ok(()));
        assert_eq!(on.accept("POST", "/test/hang"), Ok(()));
        assert_eq!(on.accept("GET", "/test/panic").unwrap_err().status, 405);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on.handle("POST", "/test/panic", Vec::new());
        }));
        let message = panicked.unwrap_err();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"test hook: panic requested"));
        let hung = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            on.handle("POST", "/test/hang", Vec::new());
        }));
        assert_eq!(hung.unwrap_err().downcast_ref::<&str>(), Some(&"hang hook called"));
    }
}
