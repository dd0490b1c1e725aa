use super::*;
use crate::avs::tests::{MemRecords, operator};
use serde_json::Value;

fn service(id: &'static str, status: Status, essential: bool) -> Service {
    Service { id: id.into(), name: "N".into(), description: "D".into(), status, essential }
}

fn body_json(r: &Response) -> Value {
    assert_eq!(r.content_type, "application/json");
    serde_json::from_slice(&r.body).expect("valid JSON")
}

#[test]
fn resources_are_found_by_path() {
    assert_eq!(resource("/eigen/node"), Some(Resource::Node));
    assert_eq!(resource("/eigen/node/health"), Some(Resource::Health));
    assert_eq!(resource("/eigen/node/services"), Some(Resource::Services));
    assert_eq!(resource("/eigen/node/services/signer/health"), Some(Resource::ServiceHealth("signer")));
    assert_eq!(resource("/eigen/node/services/x-1.y/health"), Some(Resource::ServiceHealth("x-1.y")));
    for path in [
        "",
        "/",
        "/eigen",
        "/eigen/",
        "/eigen/node/",
        "/eigen/nodes",
        "/eigen/node/health/",
        "/eigen/node/services/",
        "/eigen/node/services/health",
        "/eigen/node/services//health",
        "/eigen/node/services/a/b/health",
        "/eigen/node/services/signer",
        "/eigen/node/services/signer/health/",
        "/EIGEN/node",
    ] {
        assert_eq!(resource(path), None, "{path}");
    }
}

#[test]
fn health_from_services() {
    use Status::*;
    let cases = [
        (&[][..], Health::Healthy),
        (&[(Up, true)][..], Health::Healthy),
        (&[(Up, true), (Up, false)][..], Health::Healthy),
        (&[(Initializing, true)][..], Health::PartiallyHealthy),
        (&[(Up, true), (Initializing, false)][..], Health::PartiallyHealthy),
        (&[(Up, true), (Down, false)][..], Health::PartiallyHealthy),
        (&[(Initializing, true), (Down, false)][..], Health::PartiallyHealthy),
        (&[(Down, true)][..], Health::Unhealthy),
        (&[(Down, true), (Up, false)][..], Health::Unhealthy),
        (&[(Down, true), (Initializing, false)][..], Health::Unhealthy),
    ];
    for (statuses, expected) in cases {
        let list: Vec<Service> = statuses.iter().map(|&(s, essential)| service("x", s, essential)).collect();
        assert_eq!(health(&list), expected, "{statuses:?}");
    }
    assert_eq!(
        [Health::Healthy, Health::PartiallyHealthy, Health::Unhealthy].map(Health::http_status),
        [200, 206, 503]
    );
    assert_eq!(
        [Health::Healthy, Health::PartiallyHealthy, Health::Unhealthy].map(Health::performance_score),
        [100, 50, 0]
    );
}

#[test]
fn node_identity() {
    let r = answer(Resource::Node, "node-7", &[]);
    assert_eq!(r.status, 200);
    let expected = serde_json::json!({
        "node_name": "node-7",
        "spec_version": "v0.0.1",
        "node_version": env!("CARGO_PKG_VERSION"),
    });
    assert_eq!(body_json(&r), expected);
}

#[test]
fn health_is_a_bare_status() {
    for (statuses, code) in [
        (vec![service("signer", Status::Up, true)], 200),
        (vec![service("signer", Status::Initializing, true)], 206),
        (vec![service("signer", Status::Up, true), service("aggregator", Status::Down, false)], 206),
        (vec![service("signer", Status::Down, true)], 503),
    ] {
        let r = answer(Resource::Health, "n", &statuses);
        assert_eq!((r.status, r.body.len()), (code, 0));
    }
}

#[test]
fn services_list_shape() {
    let list = [service("signer", Status::Up, true), service("aggregator", Status::Initializing, false)];
    let r = answer(Resource::Services, "n", &list);
    assert_eq!(r.status, 200);
    let json = body_json(&r);
    let object = json.as_object().unwrap();
    assert_eq!(object.keys().collect::<Vec<_>>(), ["services"]);
    let services = json["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    for (entry, expected) in services.iter().zip(&list) {
        let mut keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["description", "id", "name", "status"]);
        assert_eq!(entry["id"], expected.id.as_ref());
        assert_eq!(entry["name"], expected.name.as_ref());
        assert_eq!(entry["description"], expected.description.as_ref());
        assert_eq!(entry["status"], expected.status.as_str());
    }
    assert_eq!(body_json(&answer(Resource::Services, "n", &[])), serde_json::json!({"services": []}));
}

#[test]
fn service_health_by_status_and_unknown_ids() {
    let list = [
        service("up", Status::Up, true),
        service("down", Status::Down, false),
        service("init", Status::Initializing, false),
    ];
    for (id, code) in [("up", 200), ("down", 503), ("init", 206), ("nope", 404), ("UP", 404)] {
        let r = answer(Resource::ServiceHealth(id), "n", &list);
        assert_eq!(r.status, code, "{id}");
        if code != 404 {
            assert!(r.body.is_empty());
        }
    }
    assert_eq!(
        [Status::Up, Status::Down, Status::Initializing].map(Status::as_str),
        ["Up", "Down", "Initializing"]
    );
}

#[test]
fn the_node_services() {
    let mut records = MemRecords::default();
    let mut avs = AvsNode::new(Some(&mut records), false);
    let list = services(&avs);
    assert_eq!(
        list.iter().map(|s| (s.id.as_ref(), s.status)).collect::<Vec<_>>(),
        [("signer", Status::Initializing)]
    );
    avs.set_operator(Ok(operator(1))).unwrap();
    assert_eq!(services(&avs)[0].status, Status::Up);
    // Not an operator node (no aggregator): a missing key makes it partially healthy only, so a
    // supervisor does not restart a spacecore that was never meant to sign.
    assert!(!services(&avs)[0].essential);
    let mut keyless = AvsNode::new(Some(&mut records), false);
    let _ = keyless.set_operator(Err("no keystore on the disk".into()));
    assert_eq!(services(&keyless)[0].status, Status::Down);
    assert_eq!(health(&services(&keyless)), Health::PartiallyHealthy);

    let sending = AvsNode::new(Some(&mut records), true);
    let list = services(&sending);
    assert_eq!(
        list.iter().map(|s| (s.id.as_ref(), s.status, s.essential)).collect::<Vec<_>>(),
        [("signer", Status::Initializing, true)],
        "the aggregator's service is the AVS's own"
    );
    let mut broken = AvsNode::new(Some(&mut records), true);
    let _ = broken.set_operator(Err("wrong password".into()));
    assert_eq!(health(&services(&broken)), Health::Unhealthy);
    for s in &list {
        assert!(!s.name.is_empty() && !s.description.is_empty());
        assert!(!s.description.contains("  "), "{:?}", s.description);
    }
}

#[test]
fn versions() {
    for query in [None, Some(""), Some("version=v0.0.1"), Some("version=0.0.1"), Some("a=1&version=0.0.1&b")]
    {
        assert!(version_supported(query), "{query:?}");
    }
    for query in
        [Some("version="), Some("version=0.0.2"), Some("version=v0.0.1&version=1"), Some("version=V0.0.1")]
    {
        assert!(!version_supported(query), "{query:?}");
    }
    let r = version_not_found();
    assert_eq!(r.status, 404);
    assert_eq!(body_json(&r), serde_json::json!({"message": "API version not found"}));
}

#[test]
fn json_bodies_escape_what_they_hold() {
    let mut all_controls = String::new();
    for c in 0u8..0x20 {
        all_controls.push(char::from(c));
    }
    for s in ["", "plain", "q\"uo\\te", "ünï ✓ 😀", &all_controls, "\u{7f}\u{2028}"] {
        let r = error(400, s);
        assert!(r.body.ends_with(b"\n") && !r.body[..r.body.len() - 1].contains(&b'\n'));
        assert_eq!(body_json(&r), serde_json::json!({ "error": s }));
    }
}
