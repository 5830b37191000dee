//! Exact consumer-group offset translation.
//!
//! A group's committed source offset C becomes the target offset of the
//! first restored record whose source offset is at least C, or the target
//! partition's end offset when no restored record is at or after C. Records
//! are produced in source-offset order, so the record that answers C is the
//! first one produced at or after it: the translator marks that record when
//! it is sent, and the delivery report supplies its target offset.

use std::collections::BTreeMap;
use std::ops::Range;

/// The positions to translate for one partition and how far restore got.
#[derive(Clone, Debug)]
pub(crate) struct OffsetTranslator {
    /// Distinct committed source offsets, ascending.
    wanted: Vec<i64>,
    /// `wanted[..next]` are answered by records already sent.
    next: usize,
}

impl OffsetTranslator {
    /// `answered` holds the translations earlier (committed) transactions
    /// found; they are always a prefix of `wanted`.
    pub fn new(mut wanted: Vec<i64>, answered: &BTreeMap<i64, i64>) -> OffsetTranslator {
        wanted.sort_unstable();
        wanted.dedup();
        let next = wanted
            .iter()
            .take_while(|c| answered.contains_key(c))
            .count();
        OffsetTranslator { wanted, next }
    }

    /// Called for every record sent, in source-offset order: the committed
    /// offsets this record answers (indexes into [`Self::wanted`]).
    pub(crate) fn claim(&mut self, source_offset: i64) -> Option<Range<usize>> {
        let start = self.next;
        while self.next < self.wanted.len() && self.wanted[self.next] <= source_offset {
            self.next += 1;
        }
        (self.next > start).then_some(start..self.next)
    }

    pub fn wanted(&self) -> &[i64] {
        &self.wanted
    }
}

/// The target offset for committed source offset `c`.
pub fn translate(answered: &BTreeMap<i64, i64>, target_end: i64, c: i64) -> i64 {
    answered.get(&c).copied().unwrap_or(target_end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Restores `sources` (ascending) starting at target offset `base`, with
    /// a transaction marker after every `txn` records, and translates.
    fn run(wanted: &[i64], sources: &[i64], base: i64) -> Vec<i64> {
        let mut t = OffsetTranslator::new(wanted.to_vec(), &BTreeMap::new());
        let mut answered = BTreeMap::new();
        for (i, &s) in sources.iter().enumerate() {
            if let Some(r) = t.claim(s) {
                for c in &t.wanted()[r] {
                    answered.insert(*c, base + i64::try_from(i).unwrap());
                }
            }
        }
        let end = base + i64::try_from(sources.len()).unwrap() + 1;
        wanted
            .iter()
            .map(|&c| translate(&answered, end, c))
            .collect()
    }

    #[test]
    fn positions_map_to_the_first_record_at_or_after_them() {
        // Source offsets with a compaction gap (3..6) and a transaction
        // marker at 8 (so 9 follows 7).
        let sources = [0, 1, 2, 6, 7, 9];
        // start, inside, in the gap, on the marker, at the end
        let got = run(&[0, 2, 4, 8, 10], &sources, 100);
        assert_eq!(got, vec![100, 102, 103, 105, 107]);
    }

    #[test]
    fn a_resumed_restore_keeps_earlier_answers() {
        let mut answered = BTreeMap::new();
        answered.insert(5, 50);
        let mut t = OffsetTranslator::new(vec![9, 5, 5, 20], &answered);
        assert_eq!(t.wanted(), &[5, 9, 20]);
        assert_eq!(t.claim(7), None);
        assert_eq!(t.claim(12), Some(1..2));
        assert_eq!(t.claim(13), None);
        assert_eq!(t.claim(25), Some(2..3));
    }
}
