//! The stack files `docker stack deploy` reads: docker/stack.yml (the site) and
//! docker/stack.db.yml (the bundled database), filled in with the release's images, the
//! environment and secrets of .env.prod, the ports and the version labels.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use serde_yaml::{Mapping, Value};

use crate::deploy::settings::{Secret, Settings};

pub const SITE: &str = "docker/stack.yml";
pub const DB: &str = "docker/stack.db.yml";
pub const REDIS: &str = "docker/stack.redis.yml";
/// The top-level key of docker/stack.yml each process's service is made from.
const PROCESS_TEMPLATE: &str = "x-process";
/// The top-level key of docker/stack.yml the backup service is made from.
const BACKUP_TEMPLATE: &str = "x-backup";
/// The service label that names the release a service runs, and the one before it on web.
pub const VERSION_LABEL: &str = "xtask.version";
pub const PREVIOUS_LABEL: &str = "xtask.previous";
/// The node label the bundled database is placed by: `<stack>.db=true`.
pub fn db_node_label(stack: &str) -> String {
    format!("{stack}.db")
}

/// The network every service and the migration job join.
pub fn network(stack: &str) -> String {
    format!("{stack}_backend")
}

/// What one service of the site runs: its image and its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub image: String,
    pub labels: BTreeMap<String, String>,
}

impl Service {
    /// `image` as release `version`, with `previous` noted when there is one.
    pub fn of(image: &str, version: &str, previous: Option<&str>) -> Service {
        let mut labels = BTreeMap::from([(VERSION_LABEL.to_owned(), version.to_owned())]);
        if let Some(previous) = previous {
            labels.insert(PREVIOUS_LABEL.to_owned(), previous.to_owned());
        }
        Service { image: image.to_owned(), labels }
    }
}

/// The services of a site stack that run a release's images (the edge runs NGINX_IMAGE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub web: Service,
    pub static_files: Service,
    /// The edge's labels.
    pub edge: BTreeMap<String, String>,
    /// Each process's image and labels, by name.
    pub processes: BTreeMap<String, Service>,
    /// The backup service's image and labels, when there is one.
    pub backup: Option<Service>,
}

/// docker/stack.yml filled in for `stack`.
pub fn site(root: &Path, stack: &str, settings: &Settings, site: &Site) -> Result<String> {
    let mut doc = base(root, SITE)?;
    let web_secrets: Vec<&Secret> = settings.secrets.iter().collect();
    let tls: Vec<&Secret> = settings.tls.iter().collect();
    let mut edge_env = BTreeMap::from([("HTTPS_PORT".to_owned(), settings.https_port.to_string())]);
    edge_env.extend(service_env(&doc, "edge"));
    {
        let web = service(&mut doc, "web")?;
        fill(web, &site.web, &settings.environment, &web_secrets);
        deploy_of(web).insert("replicas".into(), Value::from(settings.replicas));
    }
    fill(service(&mut doc, "static")?, &site.static_files, &BTreeMap::new(), &[]);
    {
        let edge = service(&mut doc, "edge")?;
        let image = Service { image: settings.nginx_image.clone(), labels: site.edge.clone() };
        fill(edge, &image, &edge_env, &tls);
        let conf = mapping([
            ("source", settings.nginx_conf.key.clone().into()),
            ("target", "/etc/nginx/templates/default.conf.template".into()),
        ]);
        edge.insert("configs".into(), Value::Sequence(vec![conf]));
        let ports = [(80, settings.http_port), (443, settings.https_port)].map(|(target, published)| {
            mapping([
                ("target", target.into()),
                ("published", published.into()),
                ("protocol", "tcp".into()),
                ("mode", "host".into()),
            ])
        });
        edge.insert("ports".into(), Value::Sequence(ports.to_vec()));
    }
    processes(&mut doc, settings, site)?;
    backup(&mut doc, settings, site)?;
    let all: Vec<&Secret> = settings.all_secrets().collect();
    doc.insert("configs".into(), externals(&[&settings.nginx_conf]));
    finish(doc, stack, &all)
}

/// A service of each process, made from the `x-process` template: the web image (as the
/// site runs it), the command, web's environment and secrets, replicas, stop, health and an
/// update that starts a worker's new tasks first and stops a singleton first.
fn processes(doc: &mut Mapping, settings: &Settings, site: &Site) -> Result<()> {
    let template = doc.get(PROCESS_TEMPLATE).and_then(Value::as_mapping).cloned();
    let template = template.ok_or_else(|| anyhow!("{SITE} has no {PROCESS_TEMPLATE}: restore it from git"))?;
    let secrets: Vec<&Secret> = settings.secrets.iter().collect();
    let services =
        doc.get_mut("services").and_then(Value::as_mapping_mut).ok_or_else(|| anyhow!("{SITE} has no services"))?;
    for (name, process) in &settings.processes {
        let what = site.processes.get(name).unwrap_or(&site.web);
        let mut service = template.clone();
        fill(&mut service, what, &settings.environment, &secrets);
        let command = format!("exec {}", process.command.trim().replace('$', "$$"));
        service.insert("command".into(), Value::Sequence(vec!["sh".into(), "-c".into(), command.into()]));
        service.insert("stop_signal".into(), process.stop_signal.clone().into());
        service.insert("stop_grace_period".into(), format!("{}s", process.stop_grace_period).into());
        if let Some(health) = &process.health {
            let test = Value::Sequence(vec!["CMD-SHELL".into(), health.replace('$', "$$").into()]);
            let check = mapping([
                ("test", test),
                ("interval", "5s".into()),
                ("timeout", "15s".into()),
                ("retries", 3.into()),
                ("start_period", "30s".into()),
            ]);
            service.insert("healthcheck".into(), check);
        }
        let order: Value = if process.singleton { "stop-first" } else { "start-first" }.into();
        let deploy = deploy_of(&mut service);
        deploy.insert("replicas".into(), Value::from(process.replicas));
        for key in ["update_config", "rollback_config"] {
            let config = deploy.entry(key.into()).or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Some(config) = config.as_mapping_mut() {
                config.insert("order".into(), order.clone());
            }
        }
        services.insert(name.clone().into(), Value::Mapping(service));
    }
    Ok(())
}

/// The backup service, made from the `x-backup` template when .env.prod schedules it: its
/// image, environment (with the release's version, which its snapshots are tagged with),
/// secrets and the interval of its stale-backup check.
fn backup(doc: &mut Mapping, settings: &Settings, site: &Site) -> Result<()> {
    let (Some(backup), Some(what)) = (&settings.backup, &site.backup) else { return Ok(()) };
    let template = doc.get(BACKUP_TEMPLATE).and_then(Value::as_mapping).cloned();
    let mut service = template.ok_or_else(|| anyhow!("{SITE} has no {BACKUP_TEMPLATE}: restore it from git"))?;
    let mut env = backup.environment.clone();
    if let Some(version) = what.labels.get(VERSION_LABEL) {
        env.insert("BACKUP_RELEASE".into(), version.clone());
    }
    let secrets: Vec<&Secret> = backup.secrets.iter().collect();
    fill(&mut service, what, &env, &secrets);
    if let Some(Value::Mapping(check)) = service.get_mut("healthcheck") {
        check.insert("interval".into(), backup.health_interval.clone().into());
    }
    let services =
        doc.get_mut("services").and_then(Value::as_mapping_mut).ok_or_else(|| anyhow!("{SITE} has no services"))?;
    services.insert("backup".into(), Value::Mapping(service));
    Ok(())
}

/// docker/stack.db.yml filled in for `stack`'s bundled database running `image`.
pub fn db(root: &Path, stack: &str, settings: &Settings, image: &str) -> Result<String> {
    let mut doc = base(root, DB)?;
    let password: Vec<&Secret> = settings.secrets.iter().filter(|s| s.key == "POSTGRES_PASSWORD").collect();
    {
        let db = service(&mut doc, "db")?;
        fill(db, &Service { image: image.to_owned(), labels: BTreeMap::new() }, &settings.db_environment(), &password);
        let constraint = format!("node.labels.{} == true", db_node_label(stack));
        let placement = mapping([("constraints", Value::Sequence(vec![constraint.into()]))]);
        deploy_of(db).insert("placement".into(), placement);
    }
    finish(doc, stack, &password)
}

/// docker/stack.redis.yml filled in for `stack`'s bundled Redis running `image`, on the node
/// that keeps the bundled database's data.
pub fn redis(root: &Path, stack: &str, settings: &Settings, image: &str) -> Result<String> {
    let mut doc = base(root, REDIS)?;
    let password: Vec<&Secret> = settings.secrets.iter().filter(|s| s.key == "REDIS_PASSWORD").collect();
    {
        let redis = service(&mut doc, "redis")?;
        let what = Service { image: image.to_owned(), labels: BTreeMap::new() };
        fill(redis, &what, &settings.redis_environment(), &password);
        let constraint = format!("node.labels.{} == true", db_node_label(stack));
        let placement = mapping([("constraints", Value::Sequence(vec![constraint.into()]))]);
        deploy_of(redis).insert("placement".into(), placement);
    }
    finish(doc, stack, &password)
}

fn base(root: &Path, file: &str) -> Result<Mapping> {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    match serde_yaml::from_str(&text).with_context(|| format!("{file} is not YAML: fix its syntax"))? {
        Value::Mapping(doc) => Ok(doc),
        _ => Err(anyhow!("{file} is not a mapping of services, networks and volumes: restore it from git")),
    }
}

fn service<'a>(doc: &'a mut Mapping, name: &str) -> Result<&'a mut Mapping> {
    doc.get_mut("services")
        .and_then(|s| s.get_mut(name))
        .and_then(Value::as_mapping_mut)
        .ok_or_else(|| anyhow!("the stack file has no service {name:?}: restore it from git"))
}

/// The `environment` a service has in the base file.
fn service_env(doc: &Mapping, name: &str) -> BTreeMap<String, String> {
    let env = doc.get("services").and_then(|s| s.get(name)).and_then(|s| s.get("environment"));
    let Some(Value::Mapping(env)) = env else { return BTreeMap::new() };
    let text = |v: &Value| v.as_str().map(str::to_owned).or_else(|| serde_yaml::to_string(v).ok());
    env.iter().map(|(k, v)| (text(k).unwrap_or_default(), text(v).unwrap_or_default().trim().to_owned())).collect()
}

/// A YAML mapping of these keys and values, in this order.
fn mapping<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Mapping(entries.into_iter().map(|(key, value)| (Value::from(key), value)).collect())
}

fn deploy_of(service: &mut Mapping) -> &mut Mapping {
    let deploy = service.entry("deploy".into()).or_insert_with(|| Value::Mapping(Mapping::new()));
    if !deploy.is_mapping() {
        *deploy = Value::Mapping(Mapping::new());
    }
    deploy.as_mapping_mut().expect("made a mapping above")
}

/// Sets a service's image, labels, environment and secrets (each mounted under
/// /run/secrets by its key).
fn fill(service: &mut Mapping, what: &Service, env: &BTreeMap<String, String>, secrets: &[&Secret]) {
    service.insert("image".into(), what.image.clone().into());
    if !env.is_empty() {
        // `docker stack deploy` interpolates `$` as Compose does; the values are literal.
        let literal = env.iter().map(|(k, v)| (k.clone(), v.replace('$', "$$"))).collect();
        service.insert("environment".into(), string_map(&literal));
    }
    if !secrets.is_empty() {
        let refs = secrets
            .iter()
            .map(|s| mapping([("source", s.key.clone().into()), ("target", s.key.clone().into())]))
            .collect();
        service.insert("secrets".into(), Value::Sequence(refs));
    }
    if !what.labels.is_empty() {
        deploy_of(service).insert("labels".into(), string_map(&what.labels));
    }
}

/// The document with the external network and secrets named for `stack`.
fn finish(mut doc: Mapping, stack: &str, secrets: &[&Secret]) -> Result<String> {
    let network = mapping([("external", true.into()), ("name", self::network(stack).into())]);
    doc.insert("networks".into(), mapping([("backend", network)]));
    if !secrets.is_empty() {
        doc.insert("secrets".into(), externals(secrets));
    }
    serde_yaml::to_string(&doc).context("cannot write the stack file")
}

/// Top-level `secrets:` or `configs:` made by the deploy: each key names its Swarm object.
fn externals(objects: &[&Secret]) -> Value {
    let entry = |object: &Secret| mapping([("external", true.into()), ("name", object.name.clone().into())]);
    Value::Mapping(objects.iter().map(|object| (Value::from(object.key.clone()), entry(object))).collect())
}

fn string_map(map: &BTreeMap<String, String>) -> Value {
    Value::Mapping(map.iter().map(|(k, v)| (Value::from(k.clone()), Value::from(v.clone()))).collect())
}
