//! `cargo xtask tls ca` (the local CA's path, to trust it) and `tls renew` (have the running
//! certbot service renew now).

use anyhow::{bail, Result};

use crate::certs;
use crate::cli::{TlsArgs, TlsCommand};
use crate::context::Context;
use crate::plan::{runner, Plan};
use crate::stack;

/// `cargo xtask tls ca`: the CA certificate's path, for `curl --cacert` or a browser import.
pub fn tls(cx: &Context, args: TlsArgs) -> Result<()> {
    match args.command {
        TlsCommand::Ca => {
            let ca = certs::local::Paths::under(&cx.root).ca;
            if !ca.is_file() {
                bail!("{} does not exist yet: set TLS_MODE=local in .env.prod and run `cargo xtask prod` (or `cargo xtask init --prod --host HOST --tls local`)", ca.display());
            }
            println!("{}", ca.display());
            Ok(())
        }
        TlsCommand::Renew(args) => renew(cx, args.force),
    }
}

/// `cargo xtask tls renew [--force]`: `certbot renew` in the running certbot service (through
/// its script, which sets the CA bundle), now and without certbot's random delay; nginx
/// picks the new certificate up by itself.
pub fn renew(cx: &Context, force: bool) -> Result<()> {
    let (stack, env) = stack::stack_with_env(cx, true)?;
    if certs::Mode::of(&env) != Some(certs::Mode::Acme) {
        bail!("tls renew is for TLS_MODE=acme, and .env.prod does not set it: local certificates are renewed by every `cargo xtask prod`, TLS_MODE=files by replacing the files");
    }
    let base = stack::prepare(cx, stack)?;
    let mut renew = base.args(["exec", "-T", "certbot", "/bin/sh", "/opt/certbot-service.sh", "renew"]);
    if force {
        renew = renew.arg("--force-renewal");
    }
    let renew = renew.fails_as(
        "certbot could not renew the certificate (see its output above; is the stack up? `cargo xtask ps --prod`)",
    );
    runner::execute(cx, Plan::default().run(renew))
}
