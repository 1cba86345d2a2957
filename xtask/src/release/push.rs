//! `release --push`: the web image and a static nginx image (docker/static.Dockerfile, made
//! from the release's static tarball byte for byte), each tagged with the version and pushed
//! to the registry, which then names them by digest for manifest.json.
//!
//! Both tags are checked against the registry before either is pushed: a tag it holds with
//! the same image is left alone, one it holds with another image refuses the whole release
//! before anything is pushed or written.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};

use super::collect::Scratch;
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

/// What `--push` and `--registry` ask for.
pub struct Push {
    registry: Registry,
    /// `NGINX_IMAGE` as the production stack reads it; None leaves the Dockerfile's default.
    nginx_image: Option<String>,
    /// The build context, a fresh directory under target/.
    context: PathBuf,
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
        Ok(Some(Push { registry, nginx_image: nginx_image(cx)?, context }))
    }

    /// The commands `--dry-run` prints, for the release of `version` whose static tarball
    /// is `tarball`.
    pub fn describe(&self, cx: &Context, version: &str, tarball: &Path) -> String {
        let images = self.images(cx, version, "STATIC_IMAGE_ID");
        let mut text = format!(
            "{}\n# then: copy {} and {} into {}\n{}",
            registry::image_id_step(&cx.root, &images[0].local),
            tarball.display(),
            cx.path(NGINX_CONF).display(),
            self.context.display(),
            Plan::default().run(self.build(cx)).render()
        );
        text += &format!("# STATIC_IMAGE_ID below: the image id written to {}\n", self.id_file().display());
        for image in &images {
            text += &format!("{}\n", registry::inspect(&cx.root, &image.tagged));
        }
        text += "# then: refuse if the registry holds either tag with another image; push the tags it does not hold\n";
        text += &self.push_plan(cx, &images, &[true, true]).render();
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
        runner::execute(cx, Plan::default().run(self.build(cx)))?;
        let static_id = read_id(&self.id_file())?;
        let images = self.images(cx, version, &static_id);
        let ids = [web_id, static_id];
        let decisions = check_tags(cx, &images, &ids)?;
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

    /// The web image as Compose built it, and the static image by id (`static_id`).
    fn images(&self, cx: &Context, version: &str, static_id: &str) -> [Image; 2] {
        let image = |kind, local: String| Image { kind, local, tagged: self.registry.tagged(kind, version) };
        [image("web", compose::web_image(cx)), image("static", static_id.to_owned())]
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
/// On a refusal the static image just built (the last of `ids`) is not left behind, unless
/// a tag names it.
fn check_tags(cx: &Context, images: &[Image], ids: &[String]) -> Result<Vec<Decision>> {
    let decided: Result<Vec<Decision>> = images
        .iter()
        .zip(ids)
        .map(|(image, id)| registry::decide(&image.tagged, id, registry::remote(cx, &image.tagged)?))
        .collect();
    decided.inspect_err(|_| registry::remove_if_untagged(cx, ids.last().expect("there are images")))
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

/// `NGINX_IMAGE` from the environment, else from .env.prod (Compose's order for the
/// production stack); None when neither sets it.
fn nginx_image(cx: &Context) -> Result<Option<String>> {
    if let Some(value) = std::env::var("NGINX_IMAGE").ok().filter(|v| !v.is_empty()) {
        return Ok(Some(value));
    }
    let env_file = cx.path(".env.prod");
    if !env_file.is_file() {
        return Ok(None);
    }
    Ok(envfile::read(&env_file)?.remove("NGINX_IMAGE").filter(|v| !v.is_empty()))
}
