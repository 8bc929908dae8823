//! The API's spellings of the domain's enumerated values, and the way back.
//!
//! The model holds enums; requests and responses hold strings. Each enum lists its spellings
//! once here, so decoding and encoding cannot drift apart.

use crate::kinesis::model::{CapacityMode, Encryption, RecordDistribution, Status};

/// A domain value the API spells as a string.
pub(crate) trait WireName: Copy + PartialEq + 'static {
    /// Every value with its spelling.
    const NAMES: &'static [(Self, &'static str)];

    /// How requests and responses spell `self`.
    fn wire_name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(value, _)| *value == self)
            .map(|(_, name)| *name)
            .expect("every value has a spelling")
    }

    /// The value `name` spells, if any.
    fn from_wire(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, spelling)| *spelling == name)
            .map(|(value, _)| *value)
    }
}

impl WireName for CapacityMode {
    const NAMES: &'static [(Self, &'static str)] = &[
        (CapacityMode::Provisioned, "PROVISIONED"),
        (CapacityMode::OnDemand, "ON_DEMAND"),
    ];
}

impl WireName for Encryption {
    const NAMES: &'static [(Self, &'static str)] =
        &[(Encryption::None, "NONE"), (Encryption::Kms, "KMS")];
}

impl WireName for RecordDistribution {
    const NAMES: &'static [(Self, &'static str)] = &[
        (RecordDistribution::UserPartitionKey, "USER_PARTITION_KEY"),
        (RecordDistribution::Auto, "AUTO"),
    ];
}

impl WireName for Status {
    const NAMES: &'static [(Self, &'static str)] = &[
        (Status::Creating, "CREATING"),
        (Status::Active, "ACTIVE"),
        (Status::Updating, "UPDATING"),
        (Status::Deleting, "DELETING"),
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API spells each value as the metadata persists it: the two must never part.
    fn spelled_as_persisted<T: WireName + serde::Serialize + std::fmt::Debug>() {
        for (value, name) in T::NAMES {
            assert_eq!(T::from_wire(name), Some(*value));
            assert_eq!(serde_json::to_value(value).unwrap(), *name);
        }
    }

    #[test]
    fn wire_names_match_the_persisted_names() {
        spelled_as_persisted::<CapacityMode>();
        spelled_as_persisted::<Encryption>();
        spelled_as_persisted::<RecordDistribution>();
        assert_eq!(CapacityMode::from_wire("on_demand"), None);
        // Statuses are not persisted, only answered.
        for (status, name) in Status::NAMES {
            assert_eq!(Status::from_wire(name), Some(*status));
        }
        assert_eq!(Status::Active.wire_name(), "ACTIVE");
    }
}
