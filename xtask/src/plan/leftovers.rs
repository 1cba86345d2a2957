//! What a Compose project owns on the engine (containers, networks, volumes), listed by the
//! project label Compose puts on each, so a command that must change nothing can remove
//! exactly what it created.

use std::path::Path;

use crate::plan::Step;

/// The kinds of object, in the order they must be removed (a network or volume in use
/// by a container cannot be).
pub const KINDS: [Kind; 3] = [Kind::Container, Kind::Network, Kind::Volume];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    Network,
    Volume,
}

impl Kind {
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Network => "network",
            Kind::Volume => "volume",
        }
    }

    /// `docker ... ls` of this kind, one id or name a line, for `project` only.
    pub fn list(self, dir: &Path, project: &str) -> Step {
        let filter = format!("label=com.docker.compose.project={project}");
        let step = Step::new("docker", dir);
        match self {
            Kind::Container => step.args(["ps", "--all", "--quiet", "--no-trunc", "--filter", &filter]),
            Kind::Network | Kind::Volume => step.args([self.noun(), "ls", "--quiet", "--filter", &filter]),
        }
    }

    /// `docker ... rm` of the named objects of this kind.
    pub fn remove(self, dir: &Path, names: &[String]) -> Step {
        let step = Step::new("docker", dir);
        let step = match self {
            Kind::Container => step.args(["rm", "--force"]),
            Kind::Network | Kind::Volume => step.args([self.noun(), "rm"]),
        };
        step.args(names.iter().cloned())
    }
}

/// The names in `after` that were not in `before`.
pub fn created(before: &str, after: &str) -> Vec<String> {
    let old: Vec<&str> = before.lines().map(str::trim).collect();
    after.lines().map(str::trim).filter(|n| !n.is_empty() && !old.contains(n)).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_appeared_counts_as_created() {
        assert_eq!(created("a\nb\n", "b\nc\na\n"), ["c"]);
        assert!(created("a\n", "a\n").is_empty());
    }

    #[test]
    fn containers_are_listed_by_the_project_label_with_stopped_ones() {
        let line = Kind::Container.list(Path::new("/p"), "shop-dev").to_string();
        assert_eq!(
            line,
            "cd /p && docker ps --all --quiet --no-trunc --filter 'label=com.docker.compose.project=shop-dev'"
        );
    }
}
