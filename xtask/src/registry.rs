//! An image registry as the Docker CLI reaches it. Every call goes through `docker`, so the
//! credentials are those of `docker login` and never pass through the xtask.
//!
//! What a registry holds under a tag is read with `docker manifest inspect --verbose`: the
//! manifest's digest (what nodes pull by) and its config digest, which is the image id of
//! the local image it was pushed from. Comparing that with the local image's id tells a
//! re-push of the same image from a different one without downloading any layer.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Deserialize;

use crate::context::Context;
use crate::process::{self, Step};

/// A repository prefix such as `127.0.0.1:5000/shop`; each image is a repository below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    prefix: String,
}

impl Registry {
    /// `--registry`, else the `REGISTRY` variable.
    pub fn from_flag_or_env(flag: Option<&str>) -> Result<Registry> {
        if let Some(value) = flag {
            return Registry::parse(value, "--registry");
        }
        match std::env::var("REGISTRY") {
            Ok(value) if !value.is_empty() => Registry::parse(&value, "REGISTRY"),
            _ => bail!(
                "release --push needs a registry: pass --registry HOST[:PORT]/PATH or set REGISTRY, e.g. REGISTRY=127.0.0.1:5000/shop"
            ),
        }
    }

    /// Checks `value` against the reference grammar Docker uses for repository names:
    /// an optional host (with a `.` or a port, or `localhost`), then lower-case path parts.
    pub fn parse(value: &str, source: &str) -> Result<Registry> {
        if let Err(why) = check_repository(value) {
            bail!("{source}={value:?} is not an image repository ({why}): write HOST[:PORT]/PATH in lower case, e.g. 127.0.0.1:5000/shop");
        }
        Ok(Registry { prefix: value.to_owned() })
    }

    /// `image` of this registry under `tag`: `PREFIX/image:tag`.
    pub fn tagged(&self, image: &str, tag: &str) -> Tagged {
        Tagged { repository: format!("{}/{image}", self.prefix), tag: tag.to_owned() }
    }
}

/// One image reference with a tag, as pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tagged {
    pub repository: String,
    pub tag: String,
}

impl Tagged {
    /// The same image by digest, as nodes pull it: `repository@sha256:...`.
    pub fn pinned(&self, digest: &str) -> String {
        format!("{}@{digest}", self.repository)
    }

    /// Docker treats registries on loopback as plain HTTP, and so must the manifest client;
    /// anywhere else TLS stays verified.
    fn on_loopback(&self) -> bool {
        let host = self.repository.split('/').next().unwrap_or_default();
        let host = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => host.split(':').next().unwrap_or_default(),
        };
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Tagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// What the registry holds under a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The manifest's digest, the registry's name for the image.
    pub digest: String,
    /// The config blob's digest: the id of the image it was pushed from.
    pub config: String,
}

/// What to do with one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The registry does not have it yet.
    Push,
    /// It has the same image already, under this digest: nothing to do.
    Present(String),
}

/// `docker manifest inspect --verbose REF`, the read-only question to the registry.
pub fn inspect(dir: &Path, tagged: &Tagged) -> Step {
    let mut step = Step::new("docker", dir).args(["manifest", "inspect"]);
    if tagged.on_loopback() {
        step = step.arg("--insecure");
    }
    step.args(["--verbose".to_owned(), tagged.to_string()])
}

/// `docker image inspect --format {{.Id}} IMAGE`.
pub fn image_id_step(dir: &Path, image: &str) -> Step {
    Step::new("docker", dir).args(["image", "inspect", "--format", "{{.Id}}", image])
}

/// The id of a local image.
pub fn local_id(cx: &Context, image: &str) -> Result<String> {
    let step = image_id_step(&cx.root, image);
    let process::Output { ok, stdout, stderr } = process::output(&step)?;
    if !ok {
        bail!("there is no local image {image} to push ({}): build it with `cargo xtask release` without --static-dir, or `cargo xtask prod`", process::error_line(&stderr));
    }
    let id = stdout.trim().to_owned();
    if !is_digest(&id) {
        bail!("`{step}` printed {id:?}, not an image id");
    }
    Ok(id)
}

/// Removes the local image `id` when no tag names it (best effort: a failure changes nothing).
pub fn remove_if_untagged(cx: &Context, id: &str) {
    let tags = Step::new("docker", &cx.root).args(["image", "inspect", "--format", "{{len .RepoTags}}", id]);
    if process::stdout_of(&tags).is_some_and(|count| count.trim() == "0") {
        let _ = process::output(&Step::new("docker", &cx.root).args(["rmi", id]));
    }
}

/// What the registry has under `tagged`; `None` when it has no such manifest.
pub fn remote(cx: &Context, tagged: &Tagged) -> Result<Option<Remote>> {
    let process::Output { ok, stdout, stderr } = process::output(&inspect(&cx.root, tagged))?;
    if !ok && stderr.contains("no such manifest") {
        return Ok(None);
    }
    if !ok {
        let host = tagged.repository.split('/').next().unwrap_or_default();
        bail!("cannot read {tagged} from the registry ({}): check that it answers and that `docker login {host}` has been run", process::error_line(&stderr));
    }
    parse_inspect(&stdout).with_context(|| format!("cannot read what the registry holds under {tagged}")).map(Some)
}

/// Refuses a tag that the registry holds with another image: a pushed version is never
/// replaced, as a published artifact is not.
pub fn decide(tagged: &Tagged, local_id: &str, remote: Option<Remote>) -> Result<Decision> {
    match remote {
        None => Ok(Decision::Push),
        Some(remote) if remote.config == local_id => Ok(Decision::Present(remote.digest)),
        Some(remote) => bail!(
            "{tagged} is already in the registry with another image ({} there, {local_id} here): a pushed version is never replaced; pass another --version",
            remote.config
        ),
    }
}

#[derive(Deserialize)]
struct Verbose {
    #[serde(rename = "Descriptor")]
    descriptor: Descriptor,
    #[serde(rename = "SchemaV2Manifest")]
    manifest: Option<SchemaV2>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

#[derive(Deserialize)]
struct SchemaV2 {
    config: Descriptor,
}

/// The digests in `docker manifest inspect --verbose` output of one image (a list of
/// platforms, printed as a JSON array, is not what `docker push` makes).
pub fn parse_inspect(json: &str) -> Result<Remote> {
    let verbose: Verbose =
        serde_json::from_str(json).context("not the output of `docker manifest inspect --verbose` for one image")?;
    let config = verbose.manifest.map(|m| m.config.digest).context("the manifest is not a v2 image manifest")?;
    let digest = verbose.descriptor.digest;
    for value in [&digest, &config] {
        if !is_digest(value) {
            bail!("{value:?} is not a sha256 digest");
        }
    }
    Ok(Remote { digest, config })
}

/// `sha256:` and 64 lower-case hex digits.
pub fn is_digest(value: &str) -> bool {
    value
        .strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

/// Checks `repository@sha256:...` as manifest.json records it; the error says what is wrong.
pub fn check_pinned(reference: &str) -> Result<(), String> {
    let Some((repository, digest)) = reference.split_once('@') else {
        return Err("no @sha256: digest".to_owned());
    };
    if !is_digest(digest) {
        return Err(format!("{digest:?} is not sha256: and 64 lower-case hex digits"));
    }
    check_repository(repository).map_err(|why| format!("the repository {why}"))
}

/// Why `value` is not a repository name, if it is not.
fn check_repository(value: &str) -> Result<(), String> {
    let mut parts: Vec<&str> = value.split('/').collect();
    let first = parts[0];
    let has_host = parts.len() > 1 && (first.contains(['.', ':', '[']) || first == "localhost");
    if has_host {
        check_host(first)?;
        parts.remove(0);
    }
    if parts.is_empty() && !has_host {
        return Err("it is empty".to_owned());
    }
    for part in parts {
        check_path_part(part)?;
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    let (name, port) = match host.strip_prefix('[') {
        Some(rest) => {
            let (inside, after) = rest.split_once(']').ok_or("an IPv6 address lacks its `]`")?;
            if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                return Err(format!("{inside:?} is not an IPv6 address"));
            }
            ("ipv6", after.strip_prefix(':'))
        }
        None => match host.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    let label_ok =
        |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-');
    if !name.split('.').all(label_ok) {
        return Err(format!("{host:?} is not a host name"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("{port:?} is not a port (a tag does not belong here)"));
        }
    }
    Ok(())
}

/// Lower-case letters and digits, with single `.`, `_`, `__` or runs of `-` between them.
fn check_path_part(part: &str) -> Result<(), String> {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = part.as_bytes();
    let ok = !bytes.is_empty()
        && alnum(bytes[0])
        && alnum(bytes[bytes.len() - 1])
        && bytes.iter().all(|&b| alnum(b) || b"._-".contains(&b))
        && !part.contains("..")
        && !part.contains("___")
        && !part.contains("._")
        && !part.contains("_.");
    if ok {
        Ok(())
    } else if part.is_empty() {
        Err("it has an empty path part".to_owned())
    } else {
        Err(format!("{part:?} is not lower-case letters and digits with . _ - between them"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:4fbadeb399b479abb3b3d5b1dd69a1d3eaa5068aa998f6838d9e23a78c193da4";
    const DIGEST: &str = "sha256:34c63b15fb1ac93ce8b6fc8909d690d469d1973e8e9379f109ca7a0e4852a3ce";

    #[test]
    fn repositories_follow_dockers_grammar() {
        for good in ["127.0.0.1:5000/shop", "registry.example.com/team/shop", "localhost/a_b", "[::1]:5000/x", "user"] {
            assert!(Registry::parse(good, "REGISTRY").is_ok(), "{good}");
        }
        for bad in ["", "Shop", "127.0.0.1:5000/shop:1.0", "host:port/x", "x/", "x//y", "a@sha256:00", "-x/y", "a..b"] {
            let error = Registry::parse(bad, "REGISTRY").unwrap_err().to_string();
            assert!(error.starts_with(&format!("REGISTRY={bad:?} is not an image repository (")), "{error}");
            assert!(error.ends_with("e.g. 127.0.0.1:5000/shop"), "{error}");
        }
    }

    #[test]
    fn only_loopback_registries_are_asked_over_plain_http() {
        let step = |prefix: &str| inspect(Path::new("/"), &Registry::parse(prefix, "x").unwrap().tagged("web", "1"));
        assert_eq!(
            step("127.0.0.1:5000/shop").to_string(),
            "cd / && docker manifest inspect --insecure --verbose 127.0.0.1:5000/shop/web:1"
        );
        assert!(step("localhost:5000/shop").args.contains(&"--insecure".to_owned()));
        assert!(step("[::1]:5000/shop").args.contains(&"--insecure".to_owned()));
        assert!(!step("registry.example.com/shop").args.contains(&"--insecure".to_owned()));
        assert!(!step("127.example.com/shop").args.contains(&"--insecure".to_owned()));
    }

    #[test]
    fn the_verbose_inspect_gives_the_manifest_and_config_digests() {
        let json = format!(
            r#"{{"Ref":"x","Descriptor":{{"mediaType":"m","digest":"{DIGEST}","size":523}},"SchemaV2Manifest":{{"schemaVersion":2,"config":{{"digest":"{ID}"}},"layers":[]}}}}"#
        );
        assert_eq!(parse_inspect(&json).unwrap(), Remote { digest: DIGEST.into(), config: ID.into() });
        assert!(parse_inspect("[]").is_err());
        assert!(parse_inspect(&json.replace(DIGEST, "sha256:00")).is_err());
    }

    #[test]
    fn the_same_image_is_present_and_another_one_is_refused_naming_the_tag() {
        let tagged = Registry::parse("127.0.0.1:5000/shop", "x").unwrap().tagged("web", "1.0.0");
        assert_eq!(decide(&tagged, ID, None).unwrap(), Decision::Push);
        let same = Remote { digest: DIGEST.into(), config: ID.into() };
        assert_eq!(decide(&tagged, ID, Some(same)).unwrap(), Decision::Present(DIGEST.into()));
        let other = Remote { digest: DIGEST.into(), config: DIGEST.into() };
        let error = decide(&tagged, ID, Some(other)).unwrap_err().to_string();
        assert!(
            error.starts_with("127.0.0.1:5000/shop/web:1.0.0 is already in the registry with another image"),
            "{error}"
        );
        assert!(error.ends_with("pass another --version"), "{error}");
    }

    #[test]
    fn pinned_references_are_checked() {
        assert_eq!(check_pinned(&format!("127.0.0.1:5000/shop/web@{DIGEST}")), Ok(()));
        assert!(check_pinned("127.0.0.1:5000/shop/web:1.0.0").is_err());
        assert!(check_pinned("127.0.0.1:5000/shop/web@sha256:ABC").is_err());
        assert!(check_pinned(&format!("Shop/web@{DIGEST}")).is_err());
    }
}
