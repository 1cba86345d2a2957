//! `cargo xtask check`: refuse a bad env file, then run Django's system checks in a one-off
//! web container (with `--prod`, the deployment checks against the production settings).

use anyhow::Result;

use crate::cli::StackArgs;
use crate::context::Context;
use crate::plan::runner;
use crate::plan::{Plan, Task};
use crate::preflight;
use crate::stack::compose::Stack;
use crate::stack::{self, OneOff};

pub fn check(cx: &Context, args: StackArgs) -> Result<()> {
    let (stack, django_check) = if args.prod {
        (stack::safe_prod(cx, false)?.0, stack::DEPLOY_CHECK)
    } else {
        preflight::refuse_invalid_dev(&stack::load_env(cx, Stack::Dev)?)?;
        (Stack::Dev, ["check"].as_slice())
    };
    let (base, stage) = stack::prepare_build(cx, stack)?;
    // The system checks need no database, so none is started for them; the network and
    // volumes Compose creates for the one-off are removed again, so a check changes nothing.
    let checks = stack::built_one_off(stage, &base, &stack.project(cx), OneOff::NoDeps, &[], django_check)?;
    let tidy = Task::Tidy { project: stack.project(cx), dir: cx.root.clone(), tasks: checks.tasks };
    runner::execute(cx, Plan::default().then(tidy))
}
