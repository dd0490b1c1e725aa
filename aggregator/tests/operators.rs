//! The operator set file: the documented format loads, and each kind of mistake is refused
//! with an error naming the operator and the field.

mod common;

use aggregator::operators::{OperatorAddress, OperatorEntry, OperatorSetFile};
use aggregator::{OperatorSet, OperatorSetError};
use avs_protocol::bls::pop_prove;
use avs_protocol::encoding::to_hex;
use common::{documented_alpha, entry, key};

fn file(entries: Vec<OperatorEntry>) -> String {
    toml::to_string(&OperatorSetFile { scheme: None, operator: entries }).unwrap()
}

fn error(entries: Vec<OperatorEntry>) -> String {
    OperatorSet::from_toml_str(&file(entries)).expect_err("refused").to_string()
}

#[test]
fn documented_format_loads() {
    let (a, b) = (key(1), key(2));
    let (ea, eb) = (entry("a", &a, &[], ""), entry("b", &b, &[], ""));
    let alpha = documented_alpha(
        &ea.id.to_uppercase().replacen("0X", "0x", 1),
        &format!("pubkey = \"{}\"", ea.pubkey.unwrap()),
        &ea.pop,
    );
    let text = format!(
        r#"
# Two operators.
{alpha}
[[operator]]
id = "{}"
pubkey = "{}"
pop = "{}"
address = "http://[::1]:8081/node/"
[operator.stake]
1 = 25
"#,
        eb.id,
        eb.pubkey.unwrap(),
        eb.pop
    );
    let set = OperatorSet::from_toml_str(&text).unwrap();
    assert_eq!(set.len(), 2);
    let alpha = set.get(&a.public_key().operator_id()).unwrap();
    assert_eq!(alpha.name.as_deref(), Some("alpha"));
    assert_eq!((alpha.stake_in(0), alpha.stake_in(1), alpha.stake_in(2)), (100, 50, 0));
    assert_eq!(alpha.address.as_ref().unwrap().path("/task"), "/task");
    let second = set.get(&b.public_key().operator_id()).unwrap();
    assert_eq!(
        (second.address.as_ref().unwrap().host.as_str(), second.address.as_ref().unwrap().port),
        ("::1", 8081)
    );
    assert_eq!(second.address.as_ref().unwrap().path("/task"), "/node/task");
    assert_eq!(set.quorums().into_iter().collect::<Vec<_>>(), [0, 1]);
    assert_eq!((set.total_stake(0), set.total_stake(1), set.total_stake(7)), (100, 75, 0));
}

#[test]
fn id_must_be_the_keys() {
    let mut e = entry("a", &key(1), &[(0, 1)], "http://127.0.0.1:1");
    e.id = to_hex(&key(2).public_key().operator_id());
    let message = error(vec![entry("ok", &key(3), &[(0, 1)], "http://127.0.0.1:1"), e]);
    assert!(message.contains("operator #2 (\"a\")") && message.contains("`id`"), "{message}");
    assert!(message.contains(&to_hex(&key(1).public_key().operator_id())), "{message}");
}

#[test]
fn proof_of_possession_is_required_and_checked() {
    let sk = key(1);
    let mut e = entry("a", &sk, &[(0, 1)], "http://127.0.0.1:1");
    // Another key's proof.
    e.pop = to_hex(&pop_prove(&key(2)).to_bytes());
    let message = error(vec![e.clone()]);
    assert!(message.contains("`pop`") && message.contains("does not verify"), "{message}");
    // A signature with the signing DST over the key is not a proof of possession.
    e.pop = to_hex(&sk.sign(&sk.public_key().to_bytes()).to_bytes());
    assert!(error(vec![e.clone()]).contains("`pop`"));
    e.pop = "0x1234".into();
    assert!(error(vec![e.clone()]).contains("2 bytes, expected 96"));
    // Missing altogether.
    let text = file(vec![entry("a", &sk, &[(0, 1)], "http://127.0.0.1:1")]);
    let without: String = text.lines().filter(|l| !l.starts_with("pop")).collect::<Vec<_>>().join("\n");
    let message = OperatorSet::from_toml_str(&without).unwrap_err().to_string();
    assert!(message.contains("pop"), "{message}");
}

#[test]
fn keys_stakes_and_addresses_are_checked() {
    let base = entry("a", &key(1), &[(0, 1)], "http://127.0.0.1:1");
    let with = |f: &dyn Fn(&mut OperatorEntry)| {
        let mut e = base.clone();
        f(&mut e);
        error(vec![e])
    };
    type Mutation = Box<dyn Fn(&mut OperatorEntry)>;
    let cases: Vec<(Mutation, &str)> = vec![
        (Box::new(|e| e.pubkey = Some("0xzz".into())), "`pubkey`: not 0x-prefixed hex"),
        (Box::new(|e| e.pubkey = Some(format!("0x{}", "00".repeat(48)))), "`pubkey`: not a valid key"),
        (Box::new(|e| e.stake.clear()), "`stake`: is empty"),
        (
            Box::new(|e| {
                e.stake.insert("one".into(), 5);
            }),
            "quorum \"one\" is not a number",
        ),
        (
            Box::new(|e| {
                e.stake.insert("256".into(), 5);
            }),
            "quorum \"256\"",
        ),
        (
            Box::new(|e| {
                e.stake.insert("2".into(), 0);
            }),
            "stake in quorum 2 is 0",
        ),
        (Box::new(|e| e.address = "https://127.0.0.1:1".into()), "`address`: must start with http://"),
        (Box::new(|e| e.address = "127.0.0.1:8080".into()), "`address`"),
        (Box::new(|e| e.address = "http://127.0.0.1:1/?x=1".into()), "query"),
        (Box::new(|e| e.address = "http://user@127.0.0.1:1".into()), "user information"),
    ];
    for (mutate, expected) in cases {
        let message = with(&*mutate);
        assert!(message.contains("operator #1 (\"a\")"), "{message}");
        assert!(message.contains(expected), "expected {expected:?} in {message}");
    }
}

#[test]
fn set_level_mistakes() {
    let e = entry("a", &key(1), &[(0, 1)], "http://127.0.0.1:1");
    let message = error(vec![e.clone(), e.clone()]);
    assert!(
        message.contains("operator #2") && message.contains("same key and id as operator #1"),
        "{message}"
    );
    assert!(matches!(OperatorSet::from_toml_str(""), Err(OperatorSetError::Empty)));
    let unknown = file(vec![e]).replace("address =", "colour = \"red\"\naddress =");
    let message = OperatorSet::from_toml_str(&unknown).unwrap_err().to_string();
    assert!(message.contains("colour"), "{message}");
    let message = OperatorSet::from_toml_str("[[operator]\n").unwrap_err().to_string();
    assert!(message.contains("line 1"), "{message}");
    let missing = OperatorSet::load(std::path::Path::new("/nonexistent/operators.toml")).unwrap_err();
    assert!(missing.to_string().contains("/nonexistent/operators.toml"));
}

#[test]
fn addresses() {
    let a = OperatorAddress::parse("http://localhost").unwrap();
    assert_eq!(
        (a.host.as_str(), a.port, a.authority.as_str(), a.path("/task")),
        ("localhost", 80, "localhost", "/task".into())
    );
    let a = OperatorAddress::parse("http://node.example:8080/base").unwrap();
    assert_eq!((a.port, a.path("/task")), (8080, "/base/task".into()));
    for bad in ["", "http://", "ftp://host", "http://host/#frag", "not a url"] {
        assert!(OperatorAddress::parse(bad).is_err(), "{bad:?}");
    }
}
