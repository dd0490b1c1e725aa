//! The one table of keys that are parsed and validated but not acted on yet.
//! Shrink it as capabilities land.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::plan::NotEnforced;
use crate::tree::render;

/// Capability: a virtio-blk data disk and a virtio-net device with limits (enforced).
pub const STORAGE_AND_NETWORKING: &str = "storage and networking";
/// Capability: a host-side supervisor that confines and tunes the VMM.
pub const SUPERVISOR: &str = "supervisor";

/// `(dotted key, capability that will enforce it)`, in documentation order.
/// Every other key is enforced today (or is pure identification).
pub const NOT_ENFORCED: &[(&str, &str)] = &[("spec.virtualization.criteria.performance", SUPERVISOR)];

/// One entry for every key of [`NOT_ENFORCED`] present in `root`, in table
/// order. Call only on a document that has been validated.
pub(crate) fn collect(root: &DeTable<'_>) -> Vec<NotEnforced> {
    NOT_ENFORCED
        .iter()
        .filter_map(|&(key, arrives_with)| {
            lookup(root, key).map(|value| NotEnforced { key, value: render(value.get_ref()), arrives_with })
        })
        .collect()
}

fn lookup<'r, 's>(root: &'r DeTable<'s>, dotted: &str) -> Option<&'r Spanned<DeValue<'s>>> {
    let mut parts = dotted.split('.');
    let mut value = find(root, parts.next()?)?;
    for part in parts {
        match value.get_ref() {
            DeValue::Table(table) => value = find(table, part)?,
            _ => return None,
        }
    }
    Some(value)
}

fn find<'r, 's>(table: &'r DeTable<'s>, name: &str) -> Option<&'r Spanned<DeValue<'s>>> {
    table.iter().find(|(key, _)| key.get_ref() == name).map(|(_, value)| value)
}
