//! The figures of one load, printed as one line, and the assertions every fault test makes.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::Duration;

use super::RECOVERY_BOUND;

/// The figures of one load and what was wrong in it.
#[derive(Debug, Default)]
pub struct Report {
    pub fault: &'static str,
    pub samples: usize,
    pub permits: usize,
    /// gatehouse's denies by status.
    pub denies: BTreeMap<u16, usize>,
    pub envoy_errors: usize,
    pub others: usize,
    /// Answers a probe tolerated during the fault.
    pub tolerated: usize,
    pub wrong: Vec<String>,
    pub unexpected: Vec<String>,
    pub recovery: Option<Duration>,
    pub slowest: Duration,
    /// Probes with no correct answer after recovery.
    pub unverified_after_recovery: Vec<String>,
    pub upstream_saw: usize,
    pub upstream_saw_denied: Vec<String>,
}

impl Report {
    pub fn denied(&self, status: u16) -> usize {
        self.denies.get(&status).copied().unwrap_or(0)
    }

    /// Prints the figures line, with `extra` (` key=value …`) appended.
    pub fn print(&self, extra: &str) {
        let recovery = self
            .recovery
            .map_or_else(|| "none".to_owned(), |r| r.as_millis().to_string());
        let line = format!(
            "fault={} requests={} permits={} deny_400={} deny_401={} deny_403={} deny_503={} \
             envoy_503={} other={} wrong_decisions={} tolerated={} recovery_ms={} slowest_ms={}{extra}",
            self.fault,
            self.samples,
            self.permits,
            self.denied(400),
            self.denied(401),
            self.denied(403),
            self.denied(503),
            self.envoy_errors,
            self.others,
            self.wrong.len(),
            self.tolerated,
            recovery,
            self.slowest.as_millis(),
        );
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    /// Asserts the module's expectations (see the module documentation).
    pub fn assert_clean(&self) {
        let fault = self.fault;
        assert!(
            self.samples >= 100,
            "{fault}: only {} requests",
            self.samples
        );
        assert!(
            self.wrong.is_empty(),
            "{fault}: {} wrong decisions, first: {:#?}",
            self.wrong.len(),
            &self.wrong[..self.wrong.len().min(10)]
        );
        assert!(
            self.unexpected.is_empty(),
            "{fault}: {} answers that are no decision, first: {:#?}",
            self.unexpected.len(),
            &self.unexpected[..self.unexpected.len().min(10)]
        );
        assert!(
            self.upstream_saw_denied.is_empty(),
            "{fault}: the upstream saw requests that must be denied: {:?}",
            self.upstream_saw_denied
        );
        assert_eq!(
            self.upstream_saw, self.permits,
            "{fault}: every permitted request, and only those, reaches the upstream"
        );
        let recovery = self
            .recovery
            .unwrap_or_else(|| panic!("{fault}: no recovery"));
        assert!(
            recovery < RECOVERY_BOUND,
            "{fault}: recovery took {recovery:?}"
        );
        assert!(
            self.unverified_after_recovery.is_empty(),
            "{fault}: no correct answer after recovery for {:?}",
            self.unverified_after_recovery
        );
    }
}
