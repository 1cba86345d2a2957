//! The release, push and swarm scenarios share one project, so the suite pays for one cold
//! image build, not three: tagged v1.2.3, released with its image (scenario release), pushed
//! to a registry of its own (scenario push), then deployed to Swarm (scenario swarm). Each
//! scenario is a test of its own that asks for the stage it starts from; the stages this
//! process has not run yet run first, under its name, so each scenario also runs alone.
//!
//! The swarm scenario, the last, takes the project and removes it when it ends. When it does
//! not run, what the stages made (images, the registry, the scratch copy) is removed when the
//! test process exits: a static is never dropped.

use std::ops::Deref;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, MutexGuard, Once, PoisonError};

use super::harness::Project;
use super::push::{self, Registry};

/// The version the project's HEAD is tagged with.
pub const VERSION: &str = "1.2.3";

/// The shared project, from the release stage on.
pub struct Released {
    pub project: Project,
    /// The registry the release was pushed to, from the push stage on.
    pub registry: Option<Registry>,
}

static SHARED: Mutex<Option<Released>> = Mutex::new(None);

/// The shared project at a stage, held for the calling scenario.
pub struct Stage(MutexGuard<'static, Option<Released>>);

impl Deref for Stage {
    type Target = Released;

    fn deref(&self) -> &Released {
        self.0.as_ref().expect("a stage holds the project")
    }
}

impl Stage {
    /// The project for the calling scenario alone: it is removed when that scenario ends.
    pub fn take(mut self) -> Released {
        self.0.take().expect("a stage holds the project")
    }
}

/// The project released with its image, loaded back (the release scenario).
pub fn released() -> Stage {
    let mut shared = SHARED.lock().unwrap_or_else(|_| {
        panic!("an earlier stage of the release, push and swarm scenarios failed in this run: see its failure")
    });
    if shared.is_none() {
        remove_at_exit();
        *shared = Some(Released { project: super::release_and_load(), registry: None });
    }
    Stage(shared)
}

/// The release pushed to a registry (the push scenario).
pub fn pushed() -> Stage {
    let mut stage = released();
    let shared = stage.0.as_mut().expect("a stage holds the project");
    if shared.registry.is_none() {
        shared.registry = Some(push::release_push(&shared.project, VERSION));
    }
    stage
}

/// Removes the shared project when the test process exits, if no scenario took it.
fn remove_at_exit() {
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
    }
    extern "C" fn remove() {
        let left = SHARED.lock().unwrap_or_else(PoisonError::into_inner).take();
        // A panic must not unwind out of an exit handler; Project's cleanup says what it could not remove.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| drop(left)));
    }
    static REGISTERED: Once = Once::new();
    // SAFETY: atexit only stores the address of a function that takes and returns nothing.
    REGISTERED.call_once(|| assert_eq!(unsafe { atexit(remove) }, 0, "atexit refused the cleanup"));
}
