//! The one way a test that cannot run on this machine ends: with its reason, as a failure
//! unless the run allows skips (xtask/src/ci/skips.rs says how, and where they are recorded).

use xtask::ci::skips;

/// Fails the calling test with `reason`, unless skips are allowed: then says why, records
/// the skip for `cargo xtask ci`'s summary and returns, and the test returns at once.
pub fn skip(reason: &str) {
    // The test harness names each test's thread after the test.
    let test = std::thread::current().name().unwrap_or("unnamed test").to_owned();
    if !skips::allowed() {
        panic!(
            "{test} cannot run here: {reason}. A skipped test fails unless skips are allowed: \
             {}=1, or `cargo xtask ci --allow-skips`",
            skips::ALLOW
        );
    }
    eprintln!("{test}: skipped: {reason}");
    skips::record(&test, reason).unwrap_or_else(|e| panic!("{e:#}"));
}
