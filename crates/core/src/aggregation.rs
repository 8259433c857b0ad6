//! Whisper's aggregation methods: how finer points are folded into a coarser archive.

use std::fmt;
use std::str::FromStr;

/// One of the eight methods whisper 1.1 knows, numbered as they are stored in a file header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AggregationMethod {
    /// Mean of the known values (id 1, whisper's default).
    #[default]
    Average,
    /// Sum of the known values (id 2).
    Sum,
    /// The newest known value (id 3).
    Last,
    /// The largest known value (id 4).
    Max,
    /// The smallest known value (id 5).
    Min,
    /// Mean over every slot, unknown slots counted as zero (id 6).
    AvgZero,
    /// The value with the largest magnitude, sign kept (id 7).
    AbsMax,
    /// The value with the smallest magnitude, sign kept (id 8).
    AbsMin,
}

/// A name or id that is not one of whisper's aggregation methods.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unrecognized aggregation method: {0}")]
pub struct UnknownAggregation(pub String);

impl AggregationMethod {
    /// Every method, in id order: what `--help` texts and config errors list.
    pub const ALL: [AggregationMethod; 8] = [
        Self::Average,
        Self::Sum,
        Self::Last,
        Self::Max,
        Self::Min,
        Self::AvgZero,
        Self::AbsMax,
        Self::AbsMin,
    ];

    /// The id stored in the first header word of a whisper file.
    pub fn id(self) -> u32 {
        match self {
            Self::Average => 1,
            Self::Sum => 2,
            Self::Last => 3,
            Self::Max => 4,
            Self::Min => 5,
            Self::AvgZero => 6,
            Self::AbsMax => 7,
            Self::AbsMin => 8,
        }
    }

    /// The method for a header id; `None` for ids whisper.py would call a corrupt header.
    pub fn from_id(id: u32) -> Option<Self> {
        Self::ALL.get(usize::try_from(id).ok()?.checked_sub(1)?).copied()
    }

    /// The name whisper.py and carbon use in configs and script output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Average => "average",
            Self::Sum => "sum",
            Self::Last => "last",
            Self::Max => "max",
            Self::Min => "min",
            Self::AvgZero => "avg_zero",
            Self::AbsMax => "absmax",
            Self::AbsMin => "absmin",
        }
    }
}

impl fmt::Display for AggregationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for AggregationMethod {
    type Err = UnknownAggregation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownAggregation(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for m in AggregationMethod::ALL {
            assert_eq!(AggregationMethod::from_id(m.id()), Some(m));
            assert_eq!(m.name().parse::<AggregationMethod>(), Ok(m));
        }
        assert_eq!(AggregationMethod::from_id(0), None);
        assert_eq!(AggregationMethod::from_id(9), None);
        assert!("avg".parse::<AggregationMethod>().is_err());
    }
}
