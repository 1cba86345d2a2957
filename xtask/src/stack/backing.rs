//! The services the production stack's own ones need first (the bundled database and Redis):
//! started on their own, without recreating running ones, and waited for by running their
//! healthchecks as soon as they start, so that neither the release steps nor web wait for
//! Docker's first health poll (one interval after the start) inside Compose's `depends_on`.

use anyhow::{bail, Result};

use crate::context::Context;
use crate::plan::health::{self, Target};
use crate::plan::{Action, Step};
use crate::process;

#[derive(Debug)]
pub struct StartBacking {
    /// The stack's compose command, without a subcommand.
    pub compose: Step,
    pub project: String,
    /// The services, by name (`db`, `redis`); none leaves nothing to do.
    pub services: Vec<String>,
    pub timeout_secs: u64,
}

impl Action for StartBacking {
    fn render(&self) -> String {
        if self.services.is_empty() {
            return String::new();
        }
        format!(
            "{}\n# wait up to {}s until their healthchecks pass (run in them as soon as they start)",
            self.up(),
            self.timeout_secs
        )
    }

    fn run(&self, cx: &Context) -> Result<()> {
        if self.services.is_empty() {
            return Ok(());
        }
        process::run(&self.up())?;
        let names: Vec<String> = self.services.iter().flat_map(|s| self.containers(s)).collect();
        if names.is_empty() {
            bail!("`{}` left no container of {} running", self.up(), self.services.join(", "));
        }
        health::wait_for(cx, Target::Containers(&names), self.timeout_secs)
    }
}

impl StartBacking {
    fn up(&self) -> Step {
        self.compose
            .clone()
            .args(["up", "--detach", "--no-build", "--no-deps", "--no-recreate"])
            .args(self.services.iter().cloned())
    }

    fn containers(&self, service: &str) -> Vec<String> {
        let ps = Step::new("docker", &self.compose.dir)
            .args(["ps", "--filter", &format!("label=com.docker.compose.project={}", self.project)])
            .args(["--filter", &format!("label=com.docker.compose.service={service}")])
            .args(["--filter", "label=com.docker.compose.oneoff=False", "--format", "{{.Names}}"]);
        process::stdout_of(&ps).unwrap_or_default().split_whitespace().map(str::to_owned).collect()
    }
}
