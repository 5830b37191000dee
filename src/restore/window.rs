//! `--from-time` / `--to-time`: which records a restore takes.

/// Records with `from <= timestamp < to` are restored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl TimeWindow {
    pub fn contains(&self, ts: i64) -> bool {
        self.from_ms.is_none_or(|f| ts >= f) && self.to_ms.is_none_or(|t| ts < t)
    }

    /// Whether a chunk or subtree with these timestamps can hold a record in the window.
    pub(crate) fn overlaps(&self, min_ts: i64, max_ts: i64) -> bool {
        self.from_ms.is_none_or(|f| max_ts >= f) && self.to_ms.is_none_or(|t| min_ts < t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_bounds() {
        let w = TimeWindow {
            from_ms: Some(10),
            to_ms: Some(20),
        };
        assert!(!w.contains(9) && w.contains(10) && w.contains(19) && !w.contains(20));
        assert!(w.overlaps(0, 10) && !w.overlaps(0, 9) && !w.overlaps(20, 30));
        assert!(TimeWindow::default().contains(i64::MIN));
    }
}
