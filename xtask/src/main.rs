//! `cargo xtask`: parse the command line and hand each command to its module.

use std::process::ExitCode;

use clap::Parser;
use xtask::cli::{Cli, Command};
use xtask::config::{check, init};
use xtask::process::error;
use xtask::{backup, ci, db, deploy, new, release, stack, tls, Context};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Context::new(cli.global).and_then(|cx| match cli.command {
        Command::Dev(args) => stack::dev(&cx, args),
        Command::Prod(args) => stack::prod(&cx, args),
        Command::Migrate(args) => stack::migrate(&cx, args),
        Command::Collectstatic(args) => stack::collectstatic(&cx, args),
        Command::Manage(args) => stack::manage(&cx, args),
        Command::Down(args) => stack::down(&cx, args),
        Command::Logs(args) => stack::logs(&cx, args),
        Command::Ps(args) => stack::ps(&cx, args),
        Command::Init(args) => init::init(&cx, args),
        Command::Check(args) => check::check(&cx, args),
        Command::Test(args) => stack::test::test(&cx, args),
        Command::Release(args) => release::release(&cx, args),
        Command::Verify(args) => release::verify::verify(&cx, args),
        Command::Db(args) => db::db(&cx, args),
        Command::Backup(args) => backup::backup(&cx, args),
        Command::Tls(args) => tls::tls(&cx, args),
        Command::Ci(args) => ci::ci(&cx, args),
        Command::New(args) => new::new(&cx, args),
        Command::Deploy(args) => deploy::deploy(&cx, args),
    });
    error::exit_code(result)
}
