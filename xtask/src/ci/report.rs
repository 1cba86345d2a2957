//! The summary table `cargo xtask ci` prints at the end: one row per step, and under a step
//! one row per test it skipped.

use std::time::Duration;

use super::skips::Skipped;
use super::Check;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed(Duration),
    /// Why it failed (its exit code, or the missing tool) and how long it ran, if it ran.
    Failed(String, Option<Duration>),
    /// Why it did not run. Only allowed where a skip is not a silent pass.
    Skipped(String),
}

/// What one step did, and the tests in it that could not run here (with `--allow-skips`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub outcome: Outcome,
    pub skipped: Vec<Skipped>,
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

impl Ran {
    /// One line on stderr for a step that failed or did not run, and for each skipped test.
    pub fn tell(&self, step: &str) {
        if let Outcome::Failed(why, _) | Outcome::Skipped(why) = &self.outcome {
            eprintln!("ci: {step}: {why}");
        }
        for test in &self.skipped {
            eprintln!("ci: {step}: skipped {}: {}", test.test, test.reason);
        }
    }
}

fn seconds(time: Option<Duration>) -> String {
    time.map_or_else(|| "-".to_owned(), |t| format!("{:.1}s", t.as_secs_f64()))
}

/// One line of the table.
struct Row {
    name: String,
    result: &'static str,
    time: String,
    note: String,
}

/// The step's row, then a row per test it skipped.
fn rows(check: &Check, ran: &Ran) -> Vec<Row> {
    let (result, time, note) = ran.outcome.columns();
    let mut rows = vec![Row { name: check.name.to_owned(), result, time, note: note.to_owned() }];
    for skipped in &ran.skipped {
        let note = format!("{}: {}", skipped.test, skipped.reason);
        rows.push(Row { name: "  test".to_owned(), result: "skipped", time: "-".to_owned(), note });
    }
    rows
}

/// The table, then a closing count of its rows in the `N passed, N failed` form CI logs expect.
pub fn render(checks: &[Check], ran: &[Ran]) -> String {
    let rows: Vec<Row> = checks.iter().zip(ran).flat_map(|(check, ran)| rows(check, ran)).collect();
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!("\nci summary\n{:<width$}  {:<7}  {:>7}  note\n", "step", "result", "time");
    for row in &rows {
        let line = format!("{:<width$}  {:<7}  {:>7}  {}", row.name, row.result, row.time, row.note);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let count = |result: &str| rows.iter().filter(|r| r.result == result).count();
    let (passed, failed, skipped) = (count("passed"), count("FAILED"), count("skipped"));
    out.push_str(&format!("ci: {passed} passed, {failed} failed, {skipped} skipped\n"));
    out
}

pub fn print(checks: &[Check], ran: &[Ran]) {
    print!("{}", render(checks, ran));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::{check, Needs};
    use crate::plan::Step;

    fn checks(names: &[&'static str]) -> Vec<Check> {
        names.iter().map(|name| check(name, Step::new("cargo", "/"), Needs::default())).collect()
    }

    fn ran(outcome: Outcome) -> Ran {
        Ran { outcome, skipped: Vec::new() }
    }

    #[test]
    fn every_step_gets_a_row_with_its_reason_and_the_count_closes_the_table() {
        let checks = checks(&["fmt", "nginx -t", "cargo test", "e2e"]);
        let outcomes = [
            ran(Outcome::Passed(Duration::from_millis(1300))),
            ran(Outcome::Failed("missing nginx: `apt-get install -y nginx`".into(), None)),
            ran(Outcome::Failed("exit code 101".into(), Some(Duration::from_secs(75)))),
            ran(Outcome::Skipped("no Docker engine".into())),
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

    #[test]
    fn each_skipped_test_is_a_row_under_its_step_and_counted() {
        let checks = checks(&["fmt", "compose config"]);
        let skipped = Skipped {
            test: "stack::stack_check::compose_config_v1".into(),
            reason: "no standalone docker-compose (v1) on PATH".into(),
        };
        let outcomes = [
            ran(Outcome::Passed(Duration::from_millis(1300))),
            Ran { outcome: Outcome::Passed(Duration::from_secs(4)), skipped: vec![skipped] },
        ];
        let expected = "
ci summary
step            result      time  note
fmt             passed      1.3s
compose config  passed      4.0s
  test          skipped        -  stack::stack_check::compose_config_v1: no standalone docker-compose (v1) on PATH
ci: 2 passed, 0 failed, 1 skipped
";
        assert_eq!(render(&checks, &outcomes), expected);
    }
}
