//! The task generator's pieces that need no network: tasks made in order, its configuration
//! checks, and the duration syntax of the CLI.

mod common;

use std::time::Duration;

use aggregator::generator::TaskMaker;
use aggregator::{GeneratorConfig, Numbers, parse_duration};
use avs_protocol::U256;
use common::three_operators;

fn config(numbers: Numbers) -> GeneratorConfig {
    GeneratorConfig {
        interval: Duration::from_secs(1),
        tasks: None,
        quorum_numbers: vec![0],
        threshold_percentage: 67,
        numbers,
        seed: 42,
        first_block: 100,
        delivery_timeout: Duration::from_secs(2),
        task_signer: None,
    }
}

#[test]
fn sequential_tasks() {
    let mut maker = TaskMaker::new(config(Numbers::Sequential));
    let tasks: Vec<_> = (0..3).map(|i| maker.make(i)).collect();
    for (i, t) in tasks.iter().enumerate() {
        let i = u32::try_from(i).unwrap();
        assert_eq!(t.task_index, i);
        assert_eq!(t.task.number_to_be_squared, U256::from(i + 1));
        assert_eq!(t.task.task_created_block, 100 + i);
        assert_eq!(t.task.quorum_numbers, [0]);
        assert_eq!(t.task.quorum_threshold_percentage, 67);
    }
    let json = serde_json::to_string(&tasks[0]).unwrap();
    assert_eq!(
        json,
        r#"{"task_index":0,"task":{"number_to_be_squared":"1","task_created_block":100,"quorum_numbers":"0x00","quorum_threshold_percentage":67}}"#
    );
}

#[test]
fn random_tasks_are_seeded_and_answerable() {
    let make = |seed| {
        let mut maker = TaskMaker::new(GeneratorConfig { seed, ..config(Numbers::Random) });
        (0..20).map(|i| maker.make(i).task.number_to_be_squared).collect::<Vec<_>>()
    };
    let (a, b, c) = (make(1), make(1), make(2));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let distinct: std::collections::BTreeSet<_> = a.iter().collect();
    assert_eq!(distinct.len(), 20);
    assert!(a.iter().all(|n| *n >= U256::from(1u8) && avs_protocol::square(*n).is_ok()));
}

#[test]
fn configuration_is_checked_against_the_operator_set() {
    let (_keys, operators) = three_operators();
    assert!(config(Numbers::Sequential).validate(&operators).is_ok());
    let bad = [
        GeneratorConfig { interval: Duration::ZERO, ..config(Numbers::Sequential) },
        GeneratorConfig { threshold_percentage: 0, ..config(Numbers::Sequential) },
        GeneratorConfig { threshold_percentage: 101, ..config(Numbers::Sequential) },
        GeneratorConfig { quorum_numbers: vec![], ..config(Numbers::Sequential) },
        GeneratorConfig { quorum_numbers: vec![0, 0], ..config(Numbers::Sequential) },
        GeneratorConfig { quorum_numbers: vec![0, 1], ..config(Numbers::Sequential) },
        GeneratorConfig { delivery_timeout: Duration::ZERO, ..config(Numbers::Sequential) },
    ];
    for c in bad {
        assert!(c.validate(&operators).is_err(), "{c:?}");
    }
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("2500ms"), Ok(Duration::from_millis(2500)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    // The spec's grammar: whole numbers and a unit.
    for bad in ["", "s", "10", "2.5s", "-1s", "1e3s", "1.2.3s", "1 s", "99999999999999999999999m"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}
