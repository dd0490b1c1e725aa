//! The exposition text itself: every family well-formed for a strict parser, values in the right
//! series and buckets.

mod common;

use std::time::Duration;

use aggregator::metrics::{ChainStage, Metrics, SignatureFault, format_value};
use avs_protocol::rpc::ErrorCode;
use common::prom;

#[test]
fn exposition_parses_and_holds_the_values() {
    let m = Metrics::new();
    let fresh = prom::parse(&m.render()).unwrap();
    assert_eq!(fresh.get("aggregator_tasks_created_total"), Some(0.0));
    for code in ErrorCode::ALL {
        let series = format!(
            "aggregator_responses_rejected_total{{code=\"{}\",reason=\"{}\"}}",
            code.code(),
            aggregator::metrics::reason_label(code)
        );
        assert_eq!(fresh.get(&series), Some(0.0), "{series}");
    }
    assert_eq!(fresh.get("aggregator_aggregation_latency_seconds_bucket{le=\"+Inf\"}"), Some(0.0));

    for _ in 0..3 {
        m.task_created();
    }
    m.task_completed(Duration::from_millis(3));
    m.task_completed(Duration::from_millis(40));
    m.task_completed(Duration::from_secs(60));
    m.task_expired();
    m.response_accepted();
    m.response_rejected(ErrorCode::DuplicateResponse);
    m.response_rejected(ErrorCode::DuplicateResponse);
    m.delivery(false);
    m.set_active_tasks(2);
    m.set_last_ratios([(0, 2.0 / 3.0), (3, 1.0)]);
    let text = m.render();
    let e = prom::parse(&text).unwrap_or_else(|err| panic!("{err}\n{text}"));
    assert_eq!(e.types["aggregator_aggregation_latency_seconds"], "histogram");
    assert_eq!(e.types["aggregator_active_tasks"], "gauge");
    assert_eq!(e.get("aggregator_tasks_created_total"), Some(3.0));
    assert_eq!(e.get("aggregator_tasks_completed_total"), Some(3.0));
    assert_eq!(e.get("aggregator_tasks_expired_total"), Some(1.0));
    assert_eq!(e.get("aggregator_responses_accepted_total"), Some(1.0));
    assert_eq!(
        e.get("aggregator_responses_rejected_total{code=\"1004\",reason=\"duplicate_response\"}"),
        Some(2.0)
    );
    assert_eq!(e.get("aggregator_task_deliveries_total{result=\"error\"}"), Some(1.0));
    assert_eq!(e.get("aggregator_active_tasks"), Some(2.0));
    assert_eq!(e.get("aggregator_last_task_signed_stake_ratio{quorum=\"3\"}"), Some(1.0));
    let h = "aggregator_aggregation_latency_seconds";
    assert_eq!(e.get(&format!("{h}_bucket{{le=\"0.005\"}}")), Some(1.0));
    assert_eq!(e.get(&format!("{h}_bucket{{le=\"0.025\"}}")), Some(1.0));
    assert_eq!(e.get(&format!("{h}_bucket{{le=\"0.05\"}}")), Some(2.0));
    assert_eq!(e.get(&format!("{h}_bucket{{le=\"30\"}}")), Some(2.0));
    assert_eq!(e.get(&format!("{h}_bucket{{le=\"+Inf\"}}")), Some(3.0));
    assert_eq!(e.get(&format!("{h}_count")), Some(3.0));
    let sum = e.get(&format!("{h}_sum")).unwrap();
    assert!((sum - 60.043).abs() < 1e-9, "{sum}");
    // Every family has a HELP line before its TYPE.
    for name in e.types.keys() {
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
}

/// Every family the aggregator renders, chain mode's included, each with values (histogram
/// samples in several buckets, every label value used), passes Prometheus' own checker, not only
/// the strict parser of these tests. `promtool` is `$SPACECORE_PROMTOOL` (`cargo xtask test`
/// provides it) or the one on `PATH`; without it the test fails.
#[test]
fn promtool_accepts_every_family_with_values() {
    let m = Metrics::new();
    m.enable_chain();
    m.set_scheme(avs_protocol::Scheme::Bn254);
    for _ in 0..3 {
        m.task_created();
        m.chain_task_created();
    }
    m.task_completed(Duration::from_millis(3));
    m.task_completed(Duration::from_secs(60));
    m.task_expired();
    m.set_active_tasks(1);
    m.set_last_ratios([(0, 2.0 / 3.0), (1, 1.0)]);
    m.set_last_non_signers(2);
    m.response_accepted();
    for code in ErrorCode::ALL {
        m.response_rejected(code);
    }
    for fault in SignatureFault::ALL {
        m.invalid_signature(fault);
    }
    m.delivery(true);
    m.delivery(false);
    for stage in ChainStage::ALL {
        m.chain_error(stage);
    }
    m.chain_reverted();
    m.chain_responded(250_000, Duration::from_millis(700));
    m.chain_responded(260_000, Duration::from_secs(400));
    let text = m.render();
    assert!(text.contains("aggregator_chain_"), "chain mode's families are rendered:\n{text}");
    test_support::assert_promtool_passes("the aggregator's metrics", &text);
}

#[test]
fn special_values() {
    assert_eq!(format_value(f64::INFINITY), "+Inf");
    assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
    assert_eq!(format_value(f64::NAN), "NaN");
    assert_eq!(format_value(0.5), "0.5");
    assert_eq!(format_value(30.0), "30");
}

#[test]
fn the_test_parser_is_strict() {
    let bad = [
        "x_total 1",                                                // no newline at the end
        "x_total 1\n",                                              // no TYPE
        "# TYPE x counter\nx 1\n",                                  // counter not named _total
        "# TYPE x_total counter\nx_total{a=\"1} 1\n",               // unterminated label
        "# TYPE x_total counter\nx_total{1a=\"1\"} 1\n",            // bad label name
        "# TYPE x_total counter\nx_total one\n",                    // bad value
        "# TYPE g gauge\n# TYPE g gauge\ng 1\n",                    // two TYPE lines
        "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 2\n", // family split
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    ];
    for text in bad {
        assert!(prom::parse(text).is_err(), "{text:?}");
    }
}
