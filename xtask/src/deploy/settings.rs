//! What .env.prod gives a Swarm deploy: the services' environment without its secrets,
//! the secrets as versioned Swarm secrets, the TLS pair, the edge's nginx image and
//! configuration, the web replicas and the database.

use std::collections::BTreeMap;
use std::fs;

use anyhow::{bail, Context as _, Result};

use crate::backup_settings;
use crate::certs::{self, Mode};
use crate::context::Context;
use crate::envfile::{holds_secret, setting, EnvFile, PROD_FILE};
use crate::project::processes::Process;
use crate::sha256;
use crate::stack::compose::Stack;
use crate::stack::ports;
use crate::stack::NGINX_CONF;

/// Variables that configure the stack itself (ports, images, certificates, builds), not
/// Django: they stay out of the services' environment.
const STACK_ONLY: &[&str] = &[
    "HTTP_PORT",
    "HTTPS_PORT",
    "TLS_MODE",
    "TLS_CERT_FILE",
    "TLS_KEY_FILE",
    "ACME_EMAIL",
    "ACME_DIRECTORY_URL",
    "ACME_CA_BUNDLE",
    "CERTBOT_IMAGE",
    "PYTHON_IMAGE",
    "POSTGRES_IMAGE",
    "NGINX_IMAGE",
    "REDIS_IMAGE",
    "PIP_INDEX_URL",
    "BUILD_NETWORK",
    "WEB_REPLICAS",
];
/// The backup service's settings (BACKUP_REPOSITORY, BACKUP_PASSWORD, ...): its alone.
const BACKUP_PREFIX: &str = "BACKUP_";
/// Variables of .env.prod the backup service reads too: the credentials restic takes for S3
/// and B2 repositories.
const BACKUP_READS: &[&str] = &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "B2_ACCOUNT_ID", "B2_ACCOUNT_KEY"];

const DEFAULT_REPLICAS: u64 = 2;
const DEFAULT_POSTGRES_IMAGE: &str = "postgres:17-alpine";
const DEFAULT_REDIS_IMAGE: &str = "redis:7-alpine";
const DEFAULT_NGINX_IMAGE: &str = "nginx:1.27-alpine";

/// A value that becomes a Swarm secret (or config). Those are immutable, so the name carries
/// the first 12 hex digits of the value's SHA-256: a changed value is a new object, which the
/// services switch to, and an unchanged one is reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The name inside the stack file and the file name under /run/secrets.
    pub key: String,
    /// The Swarm object's name, `<stack>_<key>_<hash>`.
    pub name: String,
    pub value: String,
    /// Where the value came from, for messages (`SECRET_KEY in .env.prod`).
    pub origin: String,
}

/// Everything a deploy takes from .env.prod.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Django's variables, without secrets, plus `NAME_FILE` for each secret.
    pub environment: BTreeMap<String, String>,
    /// The secrets web reads (SECRET_KEY, POSTGRES_PASSWORD, ...).
    pub secrets: Vec<Secret>,
    /// The certificate chain and key the edge serves.
    pub tls: [Secret; 2],
    /// The edge's image (`NGINX_IMAGE`) and its configuration, a Swarm config: the edge
    /// changes only when one of them or the certificate does, not with every release.
    pub nginx_image: String,
    pub nginx_conf: Secret,
    pub replicas: u64,
    pub http_port: u16,
    pub https_port: u16,
    /// `Some(image)` when POSTGRES_HOST is the bundled database.
    pub bundled_db: Option<String>,
    /// `Some(image)` when REDIS_URL names the bundled Redis.
    pub bundled_redis: Option<String>,
    /// The project's processes, each a service of the site.
    pub processes: BTreeMap<String, Process>,
    /// The scheduled backup service, when .env.prod sets BACKUP_SCHEDULE.
    pub backup: Option<Backup>,
}

/// What the backup service (docker/backup/agent.py) is given on Swarm: what the production
/// stack gives it, each secret as a file (the agent reads NAME_FILE as NAME).
#[derive(Debug, Clone)]
pub struct Backup {
    pub environment: BTreeMap<String, String>,
    /// Its own secrets (the repository's password, the SSH key and known hosts) and those of
    /// web's it reads (the database's password).
    pub secrets: Vec<Secret>,
    /// How often Docker checks that the last snapshot is recent.
    pub health_interval: String,
}

/// What the production stack supports and a Swarm deploy does not, refused before the
/// preflight: ACME's http-01 challenge is answered from a webroot that certbot writes, and
/// on Swarm every node's edge would have to serve it.
pub fn refuse_unsupported(env: &EnvFile) -> Result<()> {
    if Mode::of(env) == Some(Mode::Acme) {
        bail!(".env.prod: TLS_MODE=acme is not supported by `cargo xtask deploy`: every edge node would have to serve certbot's webroot; use TLS_MODE=files with a certificate renewed outside the Swarm (certbot on a manager, or DNS-01), see docs/src/swarm.md, \"Running on several nodes\"");
    }
    Ok(())
}

impl Settings {
    /// The settings of `env`, with the bundled database when `bundled_db` (the production
    /// stack's choice, made from POSTGRES_HOST).
    pub fn read(cx: &Context, env: &EnvFile, bundled_db: bool) -> Result<Settings> {
        let file = ".env.prod";
        let vars = env.vars();
        let mut environment = BTreeMap::new();
        let mut secrets = Vec::new();
        for (key, value) in &vars {
            let stack_only = STACK_ONLY.contains(&key.as_str()) || key.starts_with(BACKUP_PREFIX);
            if stack_only || value.trim().is_empty() && holds_secret(key, value) {
                continue;
            }
            if holds_secret(key, value) {
                environment.insert(format!("{key}_FILE"), format!("/run/secrets/{key}"));
                secrets.push(secret(&cx.name, key, value.clone(), format!("{key} in {file}")));
            } else {
                environment.insert(key.clone(), value.clone());
            }
        }
        let files = certs::Files::of(&cx.root, env);
        let tls = [("fullchain.pem", &files.cert), ("privkey.pem", &files.key)].map(|(key, path)| {
            let origin = path.display().to_string();
            match fs::read_to_string(path) {
                Ok(value) => Ok(secret(&cx.name, key, value, origin)),
                // Only a dry run gets here: a run made the `local` certificates while it
                // planned, and the preflight refuses missing `files`.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let name = object_name(&cx.name, key, &format!("<hash of {origin}>"));
                    Ok(Secret {
                        key: key.to_owned(),
                        name,
                        value: String::new(),
                        origin: format!("{origin}, made by the run"),
                    })
                }
                Err(e) => Err(e).with_context(|| format!("cannot read {origin} (the TLS files of {file})")),
            }
        });
        let [cert, key] = tls;
        let tls = [cert?, key?];
        let conf = cx.path(NGINX_CONF);
        let conf_text = fs::read_to_string(&conf).with_context(|| format!("cannot read {NGINX_CONF}"))?;
        let nginx_conf = secret(&cx.name, "default.conf.template", conf_text, NGINX_CONF.to_owned());
        let nginx_image = setting(&vars, "NGINX_IMAGE").unwrap_or_else(|| DEFAULT_NGINX_IMAGE.to_owned());
        let postgres_image = setting(&vars, "POSTGRES_IMAGE").unwrap_or_else(|| DEFAULT_POSTGRES_IMAGE.to_owned());
        let redis_image = setting(&vars, "REDIS_IMAGE").unwrap_or_else(|| DEFAULT_REDIS_IMAGE.to_owned());
        let backup = backup(cx, &vars, &environment, &secrets)?;
        Ok(Settings {
            backup,
            environment,
            secrets,
            tls,
            nginx_image,
            nginx_conf,
            replicas: replicas(&vars)?,
            http_port: port(env, "HTTP_PORT")?,
            https_port: port(env, "HTTPS_PORT")?,
            bundled_db: bundled_db.then_some(postgres_image),
            bundled_redis: crate::redis::bundled(env).then_some(redis_image),
            processes: BTreeMap::new(),
        })
    }

    /// The bundled Redis's own variables: its password, as a Swarm secret's file.
    pub fn redis_environment(&self) -> BTreeMap<String, String> {
        let file = self.environment.get("REDIS_PASSWORD_FILE");
        file.map(|f| BTreeMap::from([("REDIS_PASSWORD_FILE".to_owned(), f.clone())])).unwrap_or_default()
    }

    /// Every secret, web's, the TLS pair and the backup service's own.
    pub fn all_secrets(&self) -> impl Iterator<Item = &Secret> {
        let backup = self.backup.iter().flat_map(|b| &b.secrets);
        let own = backup.filter(|b| self.secrets.iter().all(|web| web.key != b.key));
        self.secrets.iter().chain(&self.tls).chain(own)
    }

    /// The database's own variables, for the bundled Postgres.
    pub fn db_environment(&self) -> BTreeMap<String, String> {
        ["POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE"]
            .iter()
            .filter_map(|key| self.environment.get(*key).map(|v| (key.to_string(), v.clone())))
            .collect()
    }
}

/// The backup service's settings when `vars` schedule it, checked as the production stack
/// checks them; `environment` and `secrets` are web's, whose database it dumps.
fn backup(
    cx: &Context,
    vars: &BTreeMap<String, String>,
    environment: &BTreeMap<String, String>,
    secrets: &[Secret],
) -> Result<Option<Backup>> {
    if !backup_settings::Settings::scheduled(vars) {
        return Ok(None);
    }
    let file = cx.path(PROD_FILE);
    let settings = backup_settings::Settings::from_vars(vars, &file, &cx.root)?;
    let service = settings.service(&file)?.expect("scheduled");
    let mut env: BTreeMap<String, String> = [
        ("BACKUP_EVERY", service.every),
        ("BACKUP_AT", service.at),
        ("BACKUP_FORGET", service.forget),
        // restic's --host, as the production stack's service and `cargo xtask backup` name it.
        ("BACKUP_HOST", Stack::PROD.project(cx)),
        // Swarm kills an unhealthy task, which would cut off a long first snapshot each time.
        ("BACKUP_HEALTHY_WHILE_STORING", "1".to_owned()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .into();
    let origin = |key: &str| format!("{key} in {PROD_FILE}");
    let mut own = vec![("RESTIC_PASSWORD", settings.password.clone(), origin("BACKUP_PASSWORD"))];
    if backup_settings::redacted(&settings.url) == settings.url {
        env.insert("RESTIC_REPOSITORY".into(), settings.url.clone());
    } else {
        own.push(("RESTIC_REPOSITORY", settings.url.clone(), origin("BACKUP_REPOSITORY")));
    }
    let mut backup_secrets = Vec::new();
    for (key, value, origin) in own {
        env.insert(format!("{key}_FILE"), format!("/run/secrets/{key}"));
        backup_secrets.push(secret(&cx.name, key, value, origin));
    }
    // Read by the agent from /run/secrets by these names, as the production stack mounts them.
    let ssh = settings
        .sftp
        .iter()
        .flat_map(|s| [("backup_ssh_key", Some(&s.key)), ("backup_known_hosts", s.known_hosts.as_ref())]);
    for (key, path) in ssh {
        let Some(path) = path else { continue };
        let value = fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        backup_secrets.push(secret(&cx.name, key, value, path.display().to_string()));
    }
    reads_as_web(environment, secrets, &mut env, &mut backup_secrets);
    Ok(Some(Backup { environment: env, secrets: backup_secrets, health_interval: service.health_interval }))
}

/// What the backup service reads as web does: the database (as PG* variables) and the
/// credentials restic takes for S3 and B2, each secret as web's own Swarm secret.
fn reads_as_web(
    environment: &BTreeMap<String, String>,
    secrets: &[Secret],
    env: &mut BTreeMap<String, String>,
    backup_secrets: &mut Vec<Secret>,
) {
    for (pg, key) in [
        ("PGHOST", "POSTGRES_HOST"),
        ("PGPORT", "POSTGRES_PORT"),
        ("PGUSER", "POSTGRES_USER"),
        ("PGDATABASE", "POSTGRES_DB"),
    ] {
        if let Some(value) = environment.get(key) {
            env.insert(pg.to_owned(), value.clone());
        }
    }
    let read = |key: &str| secrets.iter().find(|s| s.key == key);
    for (name, key) in BACKUP_READS.iter().map(|k| (*k, *k)).chain([("PGPASSWORD", "POSTGRES_PASSWORD")]) {
        if let Some(shared) = read(key) {
            env.insert(format!("{name}_FILE"), format!("/run/secrets/{key}"));
            backup_secrets.push(shared.clone());
        } else if let Some(value) = environment.get(key) {
            env.insert(name.to_owned(), value.clone());
        }
    }
}

fn secret(stack: &str, key: &str, value: String, origin: String) -> Secret {
    let (_, hex) = sha256::copy(&mut value.as_bytes(), std::io::sink()).expect("hashing memory cannot fail");
    Secret { key: key.to_owned(), name: object_name(stack, key, &hex[..12]), value, origin }
}

/// `<stack>_<key, lower case, other characters as _>_<version>`.
fn object_name(stack: &str, key: &str, version: &str) -> String {
    let slug: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("{stack}_{slug}_{version}")
}

fn replicas(vars: &BTreeMap<String, String>) -> Result<u64> {
    let Some(raw) = setting(vars, "WEB_REPLICAS") else { return Ok(DEFAULT_REPLICAS) };
    match raw.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => bail!("WEB_REPLICAS={raw:?} is not a number of web tasks: set it to 1 or more (2 keeps a task serving while another is replaced)"),
    }
}

/// A port the production stack publishes, read as it reads it (the preflight has refused
/// one that is no port).
fn port(env: &EnvFile, variable: &str) -> Result<u16> {
    let published = ports::published(Stack::PROD).iter().find(|p| p.variable == variable);
    let published = published.expect("the production stack publishes HTTP_PORT and HTTPS_PORT");
    ports::port(published, env).with_context(|| format!(".env.prod: {variable} is not a port: use 1-65535"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_named_by_its_stack_key_and_value() {
        let a = secret("shop", "SECRET_KEY", "one".into(), String::new());
        let b = secret("shop", "SECRET_KEY", "two".into(), String::new());
        assert!(a.name.starts_with("shop_secret_key_") && a.name.len() == "shop_secret_key_".len() + 12, "{}", a.name);
        assert_ne!(a.name, b.name);
        assert_eq!(a.name, secret("shop", "SECRET_KEY", "one".into(), "x".into()).name);
        assert!(secret("shop", "fullchain.pem", "c".into(), String::new()).name.starts_with("shop_fullchain_pem_"));
    }
}
