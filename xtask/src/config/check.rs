//! `cargo xtask check`: refuse a bad env file, then run Django's system checks in a one-off
//! web container (with `--prod`, the deployment checks against the production settings).

use anyhow::Result;

use crate::cli::StackArgs;
use crate::config::preflight;
use crate::context::Context;
use crate::plan::runner;
use crate::plan::Plan;
use crate::stack::{self, OneOff};

pub fn check(cx: &Context, args: StackArgs) -> Result<()> {
    let django_check: &[&str] = if args.prod {
        preflight::refuse_unsafe_prod(cx)?;
        stack::DEPLOY_CHECK
    } else {
        preflight::refuse_invalid_dev(cx)?;
        &["check"]
    };
    let base = stack::prepare(cx, stack::stack_for(cx, args.prod)?)?;
    // The system checks need no database, so none is started for them.
    runner::execute(cx, Plan::default().run(stack::one_off(&base, OneOff::NoDeps, django_check)))
}
