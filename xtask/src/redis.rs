//! `REDIS_URL` as the stacks read it: the bundled Redis (`redis://:PASSWORD@redis:6379/N`, the
//! `redis` service of docker/compose.redis.yml) or a managed one, and the production
//! preflight's view of it (a Redis without a password is refused).

use crate::envfile::{EnvFile, EXAMPLE_VALUE};

/// The bundled Redis's host name inside the stacks' network.
pub const BUNDLED_HOST: &str = "redis";

/// The parts of a `redis://` or `rediss://` URL the stacks care about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub password: Option<String>,
}

/// `REDIS_URL` of `env`: None when it is unset or blank.
pub fn url(env: &EnvFile) -> Option<Result<Url, String>> {
    let value = env.get("REDIS_URL").map(|e| e.value.trim()).filter(|v| !v.is_empty())?;
    Some(parse(value))
}

/// Whether the stacks run the bundled Redis: `REDIS_URL` names the `redis` service.
pub fn bundled(env: &EnvFile) -> bool {
    matches!(url(env), Some(Ok(url)) if url.host == BUNDLED_HOST)
}

/// `redis[s]://[[user]:password@]host[:port][/db]`, as redis-py and Celery read it.
pub fn parse(value: &str) -> Result<Url, String> {
    let rest = value
        .strip_prefix("redis://")
        .or_else(|| value.strip_prefix("rediss://"))
        .ok_or_else(|| "does not start with redis:// or rediss://".to_owned())?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (credentials, host_port) = match authority.rsplit_once('@') {
        Some((credentials, host_port)) => (Some(credentials), host_port),
        None => (None, authority),
    };
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err("names no host".to_owned());
    }
    if let Some(port) = host_port.rsplit_once(':').map(|(_, p)| p).filter(|_| !host_port.starts_with('[')) {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("has {port:?} as its port"));
        }
    }
    let password = credentials.map(|c| c.split_once(':').map_or(c, |(_, p)| p)).filter(|p| !p.is_empty());
    Ok(Url { host: host.to_owned(), password: password.map(str::to_owned) })
}

/// What the production preflight refuses of `REDIS_URL`: a malformed URL, one without a
/// password, and a bundled Redis whose password is not `REDIS_PASSWORD`'s.
pub fn problems(env: &EnvFile) -> Vec<(&'static str, String)> {
    let Some(url) = url(env) else { return Vec::new() };
    let url = match url {
        Ok(url) => url,
        Err(why) => {
            let fix = "write it as redis://:PASSWORD@HOST:6379/0 (rediss:// for TLS)";
            return vec![("REDIS_URL", format!("REDIS_URL {why}: {fix}"))];
        }
    };
    let Some(password) = &url.password else {
        let fix = "a Redis any container can reach must ask for one: write redis://:PASSWORD@HOST:6379/0";
        return vec![("REDIS_URL", format!("REDIS_URL has no password: {fix}"))];
    };
    if password == EXAMPLE_VALUE {
        let fix = "set a random one (`cargo xtask init --prod --force` writes REDIS_PASSWORD and REDIS_URL)";
        return vec![("REDIS_URL", format!("REDIS_URL's password is the example value {EXAMPLE_VALUE}: {fix}"))];
    }
    let expected = env.get("REDIS_PASSWORD").map(|e| e.value.trim()).unwrap_or_default();
    if url.host == BUNDLED_HOST && expected != password {
        let fix = "the bundled Redis asks for REDIS_PASSWORD: make the two the same (`cargo xtask init --prod --force` writes both)";
        return vec![("REDIS_URL", format!("REDIS_URL's password is not REDIS_PASSWORD's: {fix}"))];
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envfile;

    #[test]
    fn urls_are_read_as_redis_py_reads_them() {
        let bundled = parse("redis://:s3cret@redis:6379/0").unwrap();
        assert_eq!((bundled.host.as_str(), bundled.password.as_deref()), ("redis", Some("s3cret")));
        let managed = parse("rediss://default:pw@cache.example.net:6380").unwrap();
        assert_eq!((managed.host.as_str(), managed.password.as_deref()), ("cache.example.net", Some("pw")));
        assert_eq!(parse("redis://redis:6379/0").unwrap().password, None);
        assert!(parse("http://redis:6379").unwrap_err().contains("redis://"));
        assert!(parse("redis://:pw@redis:port/0").unwrap_err().contains("port"));
        assert!(parse("redis:///0").unwrap_err().contains("no host"));
    }

    #[test]
    fn production_refuses_a_redis_without_a_password_or_with_another_one() {
        let problems = |text: &str| problems(&envfile::parse(text, &|_| None));
        assert!(problems("REDIS_URL=redis://:pw@redis:6379/0\nREDIS_PASSWORD=pw\n").is_empty());
        assert!(problems("").is_empty());
        assert!(problems("REDIS_URL=redis://redis:6379/0\n")[0].1.starts_with("REDIS_URL has no password"));
        assert!(problems("REDIS_URL=redis://:a@redis:6379/0\nREDIS_PASSWORD=b\n")[0]
            .1
            .contains("not REDIS_PASSWORD's"));
        assert!(problems("REDIS_URL=redis:/x\n")[0].1.starts_with("REDIS_URL does not start with"));
        let example = "REDIS_URL=redis://:change-me@redis:6379/0\nREDIS_PASSWORD=change-me\n";
        assert!(problems(example)[0].1.starts_with("REDIS_URL's password is the example value change-me"));
    }
}
