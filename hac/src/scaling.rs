//! The replica keys of `[spec.operations]`: how `hac-launch` scales a stateless spacecore
//! (`scaling = "HorizontalAutoScaling"`). Each key does something or is refused: without
//! `HorizontalAutoScaling` there is one instance and no replica key has an effect.

use std::ops::RangeInclusive;

use crate::error::SpecError;
use crate::plan::{Autoscaling, Scaling};
use crate::supervision::duration;
use crate::tree::{Item, Table};

/// The replica keys.
pub(crate) const REPLICA_KEYS: &[&str] =
    &["min_replicas", "max_replicas", "target_connections", "scale_up_after", "scale_down_after"];

/// Accepted `min_replicas` and `max_replicas`.
pub const REPLICAS: RangeInclusive<u32> = 1..=Autoscaling::MAX_REPLICAS;
/// Accepted `target_connections`.
pub const TARGET_CONNECTIONS: RangeInclusive<u32> = 1..=10_000;
/// Accepted `scale_up_after` and `scale_down_after`, in milliseconds (100 ms to 24 h).
pub const SCALE_AFTER_MS: RangeInclusive<u64> = 100..=86_400_000;

/// The replica keys of `table`, `[spec.operations]`, for `scaling`.
pub(crate) fn autoscaling(table: &Table<'_, '_>, scaling: Scaling) -> Result<Autoscaling, SpecError> {
    if scaling != Scaling::HorizontalAutoScaling {
        if let Some(item) = table.entries().into_iter().find(|item| REPLICA_KEYS.contains(&item.name)) {
            return Err(item.key_error(format!(
                "`{}` has no effect without scaling = \"HorizontalAutoScaling\" (one instance runs); \
                 set scaling = \"HorizontalAutoScaling\", or remove it",
                item.name
            )));
        }
        return Ok(Autoscaling::default());
    }
    let defaults = Autoscaling::default();
    let min = count(table, "min_replicas", defaults.min_replicas, &REPLICAS)?;
    let max = count(table, "max_replicas", defaults.max_replicas, &REPLICAS)?;
    if max.0 < min.0 {
        let (blamed, message) = if max.1 {
            ("max_replicas", format!("{} is less than min_replicas ({})", max.0, min.0))
        } else {
            (
                "min_replicas",
                format!(
                    "{} is more than max_replicas ({}, its default); lower it or set max_replicas",
                    min.0, max.0
                ),
            )
        };
        if let Some(item) = table.get(blamed) {
            return Err(item.error(message));
        }
    }
    let target = count(table, "target_connections", defaults.target_connections, &TARGET_CONNECTIONS)?;
    let up = duration(table, "scale_up_after", defaults.scale_up_after_ms, SCALE_AFTER_MS)?;
    let down = duration(table, "scale_down_after", defaults.scale_down_after_ms, SCALE_AFTER_MS)?;
    Ok(Autoscaling {
        min_replicas: min.0,
        max_replicas: max.0,
        target_connections: target.0,
        scale_up_after_ms: up.0,
        scale_down_after_ms: down.0,
    })
}

/// A whole-number key in `range`: its value (or `default`) and whether it was written.
fn count(
    table: &Table<'_, '_>,
    name: &str,
    default: u32,
    range: &RangeInclusive<u32>,
) -> Result<(u32, bool), SpecError> {
    let Some(item) = table.get(name) else { return Ok((default, false)) };
    Ok((whole(&item, range)?, true))
}

fn whole(item: &Item<'_, '_>, range: &RangeInclusive<u32>) -> Result<u32, SpecError> {
    let expected = format!("a whole number from {} to {}", range.start(), range.end());
    let Some(value) = item.integer() else { return Err(item.wrong_type(&expected)) };
    let value = value?;
    match u32::try_from(value) {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(item.error(format!("{value} is out of range; expected {expected}"))),
    }
}
