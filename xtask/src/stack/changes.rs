//! Whether a `prod` would change anything on the running production stack. Compose itself
//! says what its `up` would do (`--dry-run`, Compose v2): when it would leave every container
//! running as it is, and web and the processes run the image just built, a deploy would
//! only replace containers with identical ones, so it says "nothing to deploy" and leaves
//! them alone (`--force` replaces them anyway). The image id covers the code, the migrations
//! and the static files collected into it; Compose's comparison covers `.env.prod`, the
//! compose files, the certificates and nginx's template (whose hashes nginx's environment
//! carries). Compose v1 has no dry run: there every `prod` deploys.

use anyhow::Result;

use crate::context::Context;
use crate::plan::{runner, Action, Plan, Step};
use crate::process;
use crate::stack::redeploy;

const SERVICE_LABEL: &str = "com.docker.compose.service";
/// The reason of a first start, which needs no saying.
const NOT_SERVING: &str = "the stack is not serving";
/// What Compose's dry run says of a container it would leave as it is.
const LEFT_AS_IS: [&str; 3] = ["Running", "Waiting", "Healthy"];

/// Runs `then` (the release steps and the deploy) unless the stack already runs what it
/// would deploy.
#[derive(Debug)]
pub struct UnlessUnchanged {
    /// The stack's compose command, without a subcommand.
    pub compose: Step,
    pub project: String,
    /// The web image just built.
    pub image: String,
    /// The services that run the web image: web and the project's processes.
    pub web_services: Vec<String>,
    pub then: Plan,
}

impl Action for UnlessUnchanged {
    fn render(&self) -> String {
        format!(
            "# nothing to deploy when `{}` would leave every container of project {} running as it is and {} run(s) image {}; else:\n{}",
            self.dry_run(),
            self.project,
            self.web_services.join(", "),
            self.image,
            self.then.render().trim_end()
        )
    }

    fn run(&self, cx: &Context) -> Result<()> {
        match self.what_changed() {
            None => {
                println!("nothing to deploy: the stack already runs image {} with this configuration (`cargo xtask prod --force` replaces it anyway)", self.image);
                Ok(())
            }
            Some(why) => {
                if why != NOT_SERVING {
                    println!("deploying: {why}");
                }
                runner::run(cx, self.then.clone())
            }
        }
    }
}

impl UnlessUnchanged {
    /// What differs between the stack as it runs and as it would be deployed; None when
    /// nothing does. Anything Docker or Compose cannot tell counts as a change.
    fn what_changed(&self) -> Option<String> {
        if !redeploy::serving(&self.compose.dir, &self.project) {
            return Some(NOT_SERVING.into());
        }
        let would = match process::output(&self.dry_run()) {
            Ok(out) if out.ok => out.stderr + &out.stdout,
            _ => return Some("Compose cannot say what `up` would change (a dry run needs Compose v2)".into()),
        };
        if let Some(change) = compose_would_change(&would) {
            return Some(change);
        }
        let ids = process::stdout_of(&self.containers()).unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let images =
            if ids.is_empty() { String::new() } else { process::stdout_of(&self.images(&ids)).unwrap_or_default() };
        let built = process::stdout_of(&self.image_id()).unwrap_or_default();
        other_image(&images, built.trim(), &self.web_services)
    }

    /// Compose's `up` of the whole stack, as a dry run: what it would create, recreate or start.
    fn dry_run(&self) -> Step {
        self.compose.clone().args(["--dry-run", "up", "--detach", "--no-build", "--remove-orphans"])
    }

    /// The ids of the project's running containers (one-offs aside).
    fn containers(&self) -> Step {
        Step::new("docker", &self.compose.dir)
            .args(["ps", "--quiet", "--filter", &format!("label=com.docker.compose.project={}", self.project)])
            .args(["--filter", "label=com.docker.compose.oneoff=False"])
    }

    /// `SERVICE IMAGE-ID` of each container of `ids`.
    fn images(&self, ids: &[&str]) -> Step {
        let format = format!("{{{{index .Config.Labels \"{SERVICE_LABEL}\"}}}} {{{{.Image}}}}");
        Step::new("docker", &self.compose.dir).args(["inspect", "--format", &format]).args(ids.iter().copied())
    }

    fn image_id(&self) -> Step {
        Step::new("docker", &self.compose.dir).args(["image", "inspect", "--format", "{{.Id}}", &self.image])
    }
}

/// The first thing Compose's dry run would do to a container besides leaving it running
/// (`Recreate`, `Create`, `Start`...), or to a network or volume; None when it would do
/// nothing, and a change when the output says nothing at all.
fn compose_would_change(dry_run: &str) -> Option<String> {
    let lines: Vec<&str> =
        dry_run.lines().filter_map(|l| l.split_once("DRY-RUN MODE -").map(|(_, rest)| rest.trim())).collect();
    if lines.is_empty() {
        return Some("Compose's dry run said nothing".into());
    }
    let changed = lines.into_iter().find(|l| !LEFT_AS_IS.iter().any(|word| l.ends_with(word)))?;
    Some(format!("Compose's dry run says: {}", changed.split_whitespace().collect::<Vec<_>>().join(" ")))
}

/// The first of `web_services` whose container (a `SERVICE IMAGE-ID` line of `images`) runs
/// another image than `built`.
fn other_image(images: &str, built: &str, web_services: &[String]) -> Option<String> {
    if built.is_empty() {
        return Some("the web image is not built".into());
    }
    images.lines().filter_map(|l| l.split_once(' ')).find_map(|(service, image)| {
        (web_services.iter().any(|s| s == service) && image.trim() != built)
            .then(|| format!("{service} runs another image than the one just built"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Compose v2.40's dry run printed for a running stack nothing had changed in.
    const AS_IS: &str = " DRY-RUN MODE -  Container shop-prod-redis-1  Running
 DRY-RUN MODE -  Container shop-prod-db-1  Waiting
 DRY-RUN MODE -  Container shop-prod-db-1  Healthy
 DRY-RUN MODE -  Container shop-prod-web-2  Running
 DRY-RUN MODE -  Container shop-prod-nginx-1  Running
";

    #[test]
    fn compose_leaving_every_container_running_is_no_change() {
        assert_eq!(compose_would_change(AS_IS), None);
    }

    #[test]
    fn anything_else_compose_would_do_or_silence_is_a_change() {
        let recreate = AS_IS.replace("shop-prod-web-2  Running", "shop-prod-web-2  Recreate");
        assert_eq!(
            compose_would_change(&recreate).as_deref(),
            Some("Compose's dry run says: Container shop-prod-web-2 Recreate")
        );
        let start = format!("{AS_IS} DRY-RUN MODE -  Container shop-prod-beat-1  Starting\n");
        assert_eq!(
            compose_would_change(&start).as_deref(),
            Some("Compose's dry run says: Container shop-prod-beat-1 Starting")
        );
        assert!(compose_would_change("").is_some());
        assert!(compose_would_change("unknown flag: --dry-run").is_some());
    }

    #[test]
    fn a_web_service_on_another_image_is_a_change_other_services_are_compose_s() {
        let web = vec!["web".to_owned(), "worker".to_owned()];
        let images = "web sha256:1\nworker sha256:1\nnginx sha256:9\n";
        assert_eq!(other_image(images, "sha256:1", &web), None);
        assert_eq!(
            other_image(images, "sha256:2", &web).as_deref(),
            Some("web runs another image than the one just built")
        );
        let old_worker = images.replace("worker sha256:1", "worker sha256:0");
        assert!(other_image(&old_worker, "sha256:1", &web).is_some_and(|why| why.starts_with("worker ")));
        assert_eq!(other_image(images, "", &web).as_deref(), Some("the web image is not built"));
    }
}
