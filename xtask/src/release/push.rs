//! `release --push`: the web image and a static nginx image (docker/static.Dockerfile, made
//! from the release's static tarball byte for byte), and the backup service's image
//! (docker/backup) when .env.prod sets BACKUP_SCHEDULE, each tagged with the version and
//! pushed to the registry, which then names them by digest for manifest.json.
//!
//! All tags are checked against the registry before any is pushed: a tag it holds with
//! the same image is left alone, one it holds with another image refuses the whole release
//! before anything is pushed or written.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use super::collect::Scratch;
use crate::backup_settings;
use crate::cli::ReleaseArgs;
use crate::context::{unique_tag, Context};
use crate::envfile;
use crate::plan::{runner, Plan, Sink, Step};
use crate::registry::{self, Decision, Registry, Tagged};
use crate::sha256;
use crate::stack::compose;

/// The nginx configuration the static image serves with (see docker/static.Dockerfile).
const NGINX_CONF: &str = "docker/nginx/static.conf";
const DOCKERFILE: &str = "docker/static.Dockerfile";
/// The tarball's name inside the build context.
const TARBALL: &str = "static.tar.gz";
/// The build context of the backup service's image.
const BACKUP_CONTEXT: &str = "docker/backup";

/// What `--push` and `--registry` ask for.
pub struct Push {
    registry: Registry,
    /// `NGINX_IMAGE` as the production stack reads it; None leaves the Dockerfile's default.
    nginx_image: Option<String>,
    /// The build context, a fresh directory under target/.
    context: PathBuf,
    /// With BACKUP_SCHEDULE in .env.prod: the backup image's build arguments.
    backup: Option<Vec<String>>,
}

/// One image to push: where it comes from locally, and its tag in the registry.
struct Image {
    kind: &'static str,
    local: String,
    tagged: Tagged,
}

impl Push {
    /// None without `--push`; refuses `--registry` without it.
    pub fn from_args(cx: &Context, args: &ReleaseArgs) -> Result<Option<Push>> {
        if !args.push {
            if let Some(registry) = &args.registry {
                bail!("--registry {registry} only applies with --push: add --push");
            }
            return Ok(None);
        }
        let registry = Registry::from_flag_or_env(args.registry.as_deref())?;
        let context = cx.path("target").join(format!("release-image-{}", unique_tag()?));
        let vars = prod_vars(cx)?;
        let backup = backup_settings::Settings::scheduled(&vars).then(|| backup_build_args(&vars));
        Ok(Some(Push { registry, nginx_image: stack_setting(&vars, "NGINX_IMAGE"), context, backup }))
    }

    /// The commands `--dry-run` prints, for the release of `version` whose static tarball
    /// is `tarball`.
    pub fn describe(&self, cx: &Context, version: &str, tarball: &Path) -> String {
        let images = self.images(cx, version, "STATIC_IMAGE_ID", "BACKUP_IMAGE_ID");
        let mut text = format!(
            "{}\n# then: copy {} and {} into {}\n{}",
            registry::image_id_step(&cx.root, &images[0].local),
            tarball.display(),
            cx.path(NGINX_CONF).display(),
            self.context.display(),
            self.builds(cx).render()
        );
        text += &format!("# STATIC_IMAGE_ID below: the image id written to {}\n", self.id_file().display());
        if self.backup.is_some() {
            text += &format!("# BACKUP_IMAGE_ID below: the image id written to {}\n", self.backup_id_file().display());
        }
        for image in &images {
            text += &format!("{}\n", registry::inspect(&cx.root, &image.tagged));
        }
        text +=
            "# then: refuse if the registry holds any of the tags with another image; push the tags it does not hold\n";
        text += &self.push_plan(cx, &images, &vec![true; images.len()]).render();
        text += "# then: read back each tag's digest from the registry (docker manifest inspect) for manifest.json\n";
        text
    }

    /// Builds the static image from `tarball` (the staged artifact, expected to hash to
    /// `sha256`), checks both tags, pushes what the registry lacks and returns, per image
    /// kind, its `repository@sha256:digest`.
    pub fn run(
        &self,
        cx: &Context,
        version: &str,
        tarball: &mut File,
        sha256: &str,
    ) -> Result<BTreeMap<String, String>> {
        let web_id = registry::local_id(cx, &compose::web_image(cx))?;
        let scratch = Scratch::create(self.context.clone())?;
        self.fill_context(cx, tarball, sha256)?;
        runner::execute(cx, self.builds(cx))?;
        let static_id = read_id(&self.id_file())?;
        let backup_id = self.backup.as_ref().map(|_| read_id(&self.backup_id_file())).transpose()?;
        let images = self.images(cx, version, &static_id, backup_id.as_deref().unwrap_or_default());
        let ids: Vec<String> = [Some(web_id), Some(static_id.clone()), backup_id].into_iter().flatten().collect();
        let decisions = check_tags(cx, &images, &ids, &static_id)?;
        let wanted: Vec<bool> = decisions.iter().map(|d| *d == Decision::Push).collect();
        runner::execute(cx, self.push_plan(cx, &images, &wanted))?;
        drop(scratch);
        let mut pinned = BTreeMap::new();
        for ((image, id), decision) in images.iter().zip(&ids).zip(decisions) {
            let digest = match decision {
                Decision::Present(digest) => {
                    println!("{} is in the registry already with this image: not pushed again", image.tagged);
                    digest
                }
                Decision::Push => read_back(cx, &image.tagged, id)?,
            };
            pinned.insert(image.kind.to_owned(), image.tagged.pinned(&digest));
        }
        Ok(pinned)
    }

    /// The web image as Compose built it, the static image by id (`static_id`), and the
    /// backup image by id (`backup_id`) when it is built.
    fn images(&self, cx: &Context, version: &str, static_id: &str, backup_id: &str) -> Vec<Image> {
        let image =
            |kind, local: &str| Image { kind, local: local.to_owned(), tagged: self.registry.tagged(kind, version) };
        let mut images = vec![image("web", &compose::web_image(cx)), image("static", static_id)];
        if self.backup.is_some() {
            images.push(image("backup", backup_id));
        }
        images
    }

    /// The static image's build, and the backup image's when it is pushed.
    fn builds(&self, cx: &Context) -> Plan {
        let plan = Plan::default().run(self.build(cx));
        match &self.backup {
            None => plan,
            Some(args) => {
                let step = Step::new("docker", &cx.root).args(["build", "--quiet"]).args(args.iter().cloned());
                let step = step.arg(cx.path(BACKUP_CONTEXT).to_string_lossy());
                let step = step.stdout(Sink { path: self.backup_id_file(), checksum: false });
                plan.run(step.fails_as("cannot build the backup image"))
            }
        }
    }

    /// `docker build` of the static image, its id written to a file rather than the terminal.
    fn build(&self, cx: &Context) -> Step {
        let mut step = Step::new("docker", &cx.root)
            .args(["build", "--quiet", "--file"])
            .arg(cx.path(DOCKERFILE).to_string_lossy());
        if let Some(nginx) = &self.nginx_image {
            step = step.arg("--build-arg").arg(format!("NGINX_IMAGE={nginx}"));
        }
        step.arg(self.context.to_string_lossy())
            .stdout(Sink { path: self.id_file(), checksum: false })
            .fails_as("cannot build the static image")
    }

    /// Tags every image locally (a tag the registry holds already then names the same image
    /// here too), then pushes those of `wanted`.
    fn push_plan(&self, cx: &Context, images: &[Image], wanted: &[bool]) -> Plan {
        let docker = || Step::new("docker", &cx.root);
        let mut plan = Plan::default();
        for image in images {
            plan = plan.run(docker().args(["tag".to_owned(), image.local.clone(), image.tagged.to_string()]));
        }
        for (image, _) in images.iter().zip(wanted).filter(|(_, wanted)| **wanted) {
            let what = format!("cannot push {}", image.tagged);
            let push = docker().args(["push".to_owned(), "--quiet".to_owned(), image.tagged.to_string()]);
            plan = plan.run(push.fails_as(what));
        }
        plan
    }

    fn id_file(&self) -> PathBuf {
        self.context.join("image-id")
    }

    fn backup_id_file(&self) -> PathBuf {
        self.context.join("backup-image-id")
    }

    /// The tarball, checked to be the release's bytes, and the nginx configuration.
    fn fill_context(&self, cx: &Context, tarball: &mut File, sha256: &str) -> Result<()> {
        let copy = self.context.join(TARBALL);
        tarball.seek(SeekFrom::Start(0)).context("cannot read the static tarball back")?;
        let out = File::create(&copy).with_context(|| format!("cannot write {}", copy.display()))?;
        let (_, copied) = sha256::copy(tarball, out).with_context(|| format!("cannot write {}", copy.display()))?;
        if copied != sha256 {
            bail!("the copy of the static tarball in {} is not the release's bytes", copy.display());
        }
        let conf = self.context.join(NGINX_CONF);
        fs::create_dir_all(conf.parent().expect("the conf is in a directory"))
            .with_context(|| format!("cannot create {}", conf.display()))?;
        fs::copy(cx.path(NGINX_CONF), &conf).with_context(|| format!("cannot copy {NGINX_CONF}"))?;
        Ok(())
    }
}

/// What to do with each image's tag, asked of the registry for all of them before any push.
/// On a refusal the static image just built (`static_id`) is not left behind, unless a tag
/// names it.
fn check_tags(cx: &Context, images: &[Image], ids: &[String], static_id: &str) -> Result<Vec<Decision>> {
    let decided: Result<Vec<Decision>> = images
        .iter()
        .zip(ids)
        .map(|(image, id)| registry::decide(&image.tagged, id, registry::remote(cx, &image.tagged)?))
        .collect();
    decided.inspect_err(|_| registry::remove_if_untagged(cx, static_id))
}

/// Does not trust `docker push`'s exit code alone: the registry must now hold `id` under
/// the tag, and it names the digest.
fn read_back(cx: &Context, tagged: &Tagged, id: &str) -> Result<String> {
    let remote = registry::remote(cx, tagged)?;
    match remote {
        Some(remote) if remote.config == id => {
            println!("pushed {tagged}: {}", tagged.pinned(&remote.digest));
            Ok(remote.digest)
        }
        Some(remote) => bail!("after the push the registry holds {tagged} as {}, not the image {id} pushed: another push raced this one; release again", remote.config),
        None => bail!("`docker push {tagged}` succeeded but the registry does not hold the tag: check the registry's storage"),
    }
}

fn read_id(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let id = text.trim().to_owned();
    if !registry::is_digest(&id) {
        bail!("`docker build --quiet` printed {id:?}, not an image id");
    }
    Ok(id)
}

/// .env.prod's variables, none when there is no such file.
fn prod_vars(cx: &Context) -> Result<BTreeMap<String, String>> {
    let env_file = cx.path(envfile::PROD_FILE);
    if !env_file.is_file() {
        return Ok(BTreeMap::new());
    }
    envfile::read(&env_file)
}

/// A variable of the production stack from the environment, else from .env.prod (Compose's
/// order); None when neither sets it.
fn stack_setting(vars: &BTreeMap<String, String>, name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(|| vars.get(name).filter(|v| !v.is_empty()).cloned())
}

/// The backup image's build arguments, as docker/compose.backup.yml gives them: pg_dump of
/// the database's own Postgres (POSTGRES_IMAGE), over BUILD_NETWORK when set.
fn backup_build_args(vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(postgres) = stack_setting(vars, "POSTGRES_IMAGE") {
        args.extend(["--build-arg".to_owned(), format!("POSTGRES_IMAGE={postgres}")]);
    }
    if let Some(network) = stack_setting(vars, "BUILD_NETWORK") {
        args.extend(["--network".to_owned(), network]);
    }
    args
}
