//! The summary table `cargo xtask ci` prints at the end: one row per step.

use std::time::Duration;

use super::Check;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(Duration),
    /// Why it failed (its exit code, or the missing tool) and how long it ran, if it ran.
    Failed(String, Option<Duration>),
    /// Why it did not run. Only allowed where a skip is not a silent pass.
    Skipped(String),
}

impl Outcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Failed(..))
    }

    fn columns(&self) -> (&'static str, String, &str) {
        match self {
            Outcome::Passed(time) => ("passed", seconds(Some(*time)), ""),
            Outcome::Failed(why, time) => ("FAILED", seconds(*time), why),
            Outcome::Skipped(why) => ("skipped", "-".to_owned(), why),
        }
    }
}

fn seconds(time: Option<Duration>) -> String {
    time.map_or_else(|| "-".to_owned(), |t| format!("{:.1}s", t.as_secs_f64()))
}

/// The table, then a closing count line in the `N passed, N failed` form CI logs expect.
pub fn render(checks: &[Check], outcomes: &[Outcome]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("\nci summary\n{:<width$}  {:<7}  {:>7}  note\n", "step", "result", "time");
    for (check, outcome) in checks.iter().zip(outcomes) {
        let (result, time, note) = outcome.columns();
        let row = format!("{:<width$}  {result:<7}  {time:>7}  {note}", check.name);
        out.push_str(row.trim_end());
        out.push('\n');
    }
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
    let passed = count(|o| matches!(o, Outcome::Passed(_)));
    let failed = count(Outcome::is_failure);
    let skipped = count(|o| matches!(o, Outcome::Skipped(_)));
    out.push_str(&format!("ci: {passed} passed, {failed} failed, {skipped} skipped\n"));
    out
}

pub fn print(checks: &[Check], outcomes: &[Outcome]) {
    print!("{}", render(checks, outcomes));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::{check, Needs};
    use crate::plan::Step;

    #[test]
    fn every_step_gets_a_row_with_its_reason_and_the_count_closes_the_table() {
        let checks = [
            check("fmt", Step::new("cargo", "/"), Needs::default()),
            check("nginx -t", Step::new("cargo", "/"), Needs::default()),
            check("cargo test", Step::new("cargo", "/"), Needs::default()),
            check("e2e", Step::new("cargo", "/"), Needs::default()),
        ];
        let outcomes = [
            Outcome::Passed(Duration::from_millis(1300)),
            Outcome::Failed("missing nginx: `apt-get install -y nginx`".into(), None),
            Outcome::Failed("exit code 101".into(), Some(Duration::from_secs(75))),
            Outcome::Skipped("no Docker engine".into()),
        ];
        let table = render(&checks, &outcomes);
        let expected = "
ci summary
step        result      time  note
fmt         passed      1.3s
nginx -t    FAILED         -  missing nginx: `apt-get install -y nginx`
cargo test  FAILED     75.0s  exit code 101
e2e         skipped        -  no Docker engine
ci: 1 passed, 2 failed, 1 skipped
";
        assert_eq!(table, expected);
    }
}
