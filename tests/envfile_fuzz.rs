//! The env-file reader (xtask/src/config/envfile.rs) against the real Compose v2: generated
//! files (quotes, escapes, `export`, comments, interpolation, CRLF, a byte order mark, empty
//! values, unicode, very long lines) are read by both, and every difference is reported with
//! the file that shows it. Compose's reading is what it gives a container: each file is a
//! service's `env_file`, and `docker compose config --format json` prints the environment.
//!
//! `cargo xtask ci` runs a fixed seed and a bounded count (the `envfile_check::` step).
//! A longer run: `XTASK_ENV_FUZZ_CASES=20000 XTASK_ENV_FUZZ_SEED=7 cargo test -p xtask
//! --test integration -- envfile_check:: --nocapture`.

mod envfile_check {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;
    use std::fs;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    use serde_json::Value;
    use xtask::envfile;

    const DEFAULT_CASES: usize = 1500;
    const DEFAULT_SEED: u64 = 0x5eed_2026;
    /// Files per `compose config` call: one service each.
    const BATCH: usize = 100;
    /// The only variable of the environment the generated files refer to.
    const FROM_ENV: (&str, &str) = ("FUZZ_ENV", "from the environment");

    fn setting(name: &str, default: u64) -> u64 {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    // --- the generator ------------------------------------------------------------------

    struct Generator {
        rng: fastrand::Rng,
        keys: Vec<String>,
    }

    impl Generator {
        fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
            choices[self.rng.usize(..choices.len())]
        }

        fn file(&mut self) -> String {
            self.keys.clear();
            let mut text = String::new();
            if self.rng.u8(..10) == 0 {
                text.push('\u{feff}');
            }
            let newline = if self.rng.u8(..6) == 0 { "\r\n" } else { "\n" };
            for _ in 0..self.rng.usize(1..10) {
                let line = self.line();
                text.push_str(&line);
                text.push_str(newline);
            }
            if self.rng.bool() {
                text.truncate(text.len() - newline.len());
            }
            text
        }

        fn line(&mut self) -> String {
            let line = match self.rng.u8(..14) {
                0 => format!("#{}", self.unquoted()),
                1 => String::new(),
                2 => self.pick(&["   ", "\t", "  # indented comment", "export", "KBARE"]).to_owned(),
                _ => self.statement(),
            };
            if self.rng.u8(..8) == 0 {
                self.mutate(line)
            } else {
                line
            }
        }

        /// The line with one character that matters to the format put anywhere in it.
        fn mutate(&mut self, line: String) -> String {
            let at =
                line.char_indices().map(|(i, _)| i).nth(self.rng.usize(..=line.chars().count())).unwrap_or(line.len());
            let noise =
                self.pick(&["\"", "'", "\\", "$", "{", "}", "#", "=", ":", " ", "\t", "\r", "`", "\u{a0}", "\u{85}"]);
            format!("{}{noise}{}", &line[..at], &line[at..])
        }

        fn statement(&mut self) -> String {
            let export = self.pick(&["", "", "", "export ", "export  ", "  "]);
            let key = self.key();
            let separator = self.pick(&["=", "=", "=", " = ", "= ", ": ", ":"]);
            let value = match self.rng.u8(..10) {
                0 => String::new(),
                1..=4 => self.unquoted(),
                5..=6 => self.single_quoted(),
                _ => self.double_quoted(),
            };
            self.keys.push(key.clone());
            format!("{export}{key}{separator}{value}")
        }

        /// A new name, or one set before (the last statement wins). Names start with `K` so
        /// none is a variable the docker CLI puts in Compose's environment.
        fn key(&mut self) -> String {
            if !self.keys.is_empty() && self.rng.u8(..5) == 0 {
                return self.keys[self.rng.usize(..self.keys.len())].clone();
            }
            let mut key = String::from(self.pick(&["K", "K_", "k", "Ke"]));
            for _ in 0..self.rng.usize(0..6) {
                key.push(self.rng.choice(b"ABCXYZ019_".iter()).map(|&b| b as char).unwrap_or('A'));
            }
            if self.rng.u8(..12) == 0 {
                key.push_str(self.pick(&[".x", "-y", "[0]", ".a-b"]));
            }
            key
        }

        /// A reference to an earlier name, the environment, or a name set nowhere.
        fn reference(&mut self) -> String {
            let name = match self.rng.u8(..4) {
                0 if !self.keys.is_empty() => self.keys[self.rng.usize(..self.keys.len())].clone(),
                1 => FROM_ENV.0.to_owned(),
                2 => "KMISSING".to_owned(),
                _ => self.keys.last().cloned().unwrap_or_else(|| "KMISSING".to_owned()),
            };
            let plain = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let name = if plain { name } else { "KMISSING".to_owned() };
            match self.rng.u8(..9) {
                0 => format!("${name}"),
                1 => format!("${{{name}}}"),
                2 => format!("${{{name}:-de fault}}"),
                3 => format!("${{{name}-d}}"),
                4 => format!("${{{name}:+alt}}"),
                5 => format!("${{{name}+alt}}"),
                6 => format!("${{{name}:-${{KMISSING:-nested}}}}"),
                7 if self.rng.u8(..8) == 0 => format!("${{{name}:?must be set}}"),
                _ => "$$".to_owned(),
            }
        }

        fn piece(&mut self, extra: &[&str]) -> String {
            match self.rng.u8(..12) {
                0..=2 => self.reference(),
                3 if self.rng.u8(..20) == 0 => "x".repeat(self.rng.usize(2000..9000)),
                4 => self.pick(extra).to_owned(),
                _ => self
                    .pick(&[
                        "word",
                        "two words",
                        " ",
                        "\t",
                        "#",
                        " #c",
                        "=",
                        "é",
                        "€",
                        "日本",
                        "😀",
                        "\\",
                        "\\n",
                        "$",
                        "a$ b",
                        "$1",
                        "{",
                        "}",
                        "'",
                        "\"",
                        ",",
                        "-",
                    ])
                    .to_owned(),
            }
        }

        fn pieces(&mut self, extra: &[&str]) -> String {
            (0..self.rng.usize(0..6)).map(|_| self.piece(extra)).collect()
        }

        fn unquoted(&mut self) -> String {
            // A quote or newline would make it another kind of value or statement.
            self.pieces(&["x y", "$KMISSING"]).replace(['\'', '"'], "q")
        }

        fn single_quoted(&mut self) -> String {
            let body = self.pieces(&["\\'", "\n", "\\\\"]).replace('\'', "\\'");
            format!("'{}'{}", body.replace("\\\\'", "\\'"), self.trailer())
        }

        fn double_quoted(&mut self) -> String {
            let escapes = ["\\\"", "\\n", "\\t", "\\\\", "\\$", "\n", "\\r", "\\a", "\\x41", "\\u00e9"];
            let body = self.pieces(&escapes);
            // An unescaped quote would end the value early: escape it, unless it is escaped already.
            let mut escaped = String::new();
            let mut backslashes = 0;
            for c in body.chars() {
                if c == '"' && backslashes % 2 == 0 {
                    escaped.push('\\');
                }
                backslashes = if c == '\\' { backslashes + 1 } else { 0 };
                escaped.push(c);
            }
            if backslashes % 2 == 1 {
                escaped.push('\\');
            }
            format!("\"{escaped}\"{}", self.trailer())
        }

        fn trailer(&mut self) -> String {
            self.pick(&["", "", "", " # comment", "  ", "\t# c"]).to_owned()
        }
    }

    // --- the two readers ----------------------------------------------------------------

    /// What one reader made of a file: the variables, or that it refused the file.
    type Reading = Result<BTreeMap<String, String>, String>;

    fn ours(text: &str) -> Reading {
        let file = envfile::parse(text, &|name| (name == FROM_ENV.0).then(|| FROM_ENV.1.to_owned()));
        if let Some(bad) = file.malformed.first() {
            return Err(format!("line {}: {}", bad.line, bad.message));
        }
        Ok(file.vars())
    }

    /// Compose's reading of each file, one `config` call per batch. Compose stops at the
    /// first file it refuses and names it (`failed to read PATH: ...`): that file's reading is
    /// the refusal, and the batch is read again without it.
    fn composes(dir: &Path, files: &[PathBuf]) -> Vec<Reading> {
        let mut refused: BTreeMap<usize, String> = BTreeMap::new();
        loop {
            let left: Vec<(usize, &PathBuf)> =
                files.iter().enumerate().filter(|(i, _)| !refused.contains_key(i)).collect();
            let paths: Vec<PathBuf> = left.iter().map(|(_, p)| (*p).clone()).collect();
            match compose_config(dir, &paths) {
                Ok(maps) => {
                    let mut maps = maps.into_iter();
                    return (0..files.len())
                        .map(|i| match refused.remove(&i) {
                            Some(why) => Err(why),
                            None => Ok(maps.next().expect("one reading per file")),
                        })
                        .collect();
                }
                Err(why) => {
                    let named = left.iter().find(|(_, p)| why.contains(&format!("failed to read {}:", p.display())));
                    let Some((index, _)) = named else {
                        panic!("Compose refused a batch without naming a file: {why}")
                    };
                    refused.insert(*index, why);
                }
            }
        }
    }

    fn compose_config(dir: &Path, files: &[PathBuf]) -> Result<Vec<BTreeMap<String, String>>, String> {
        let mut yaml = String::from("services:\n");
        for (i, file) in files.iter().enumerate() {
            writeln!(yaml, "  s{i}:\n    image: scratch\n    env_file: {:?}", file.display().to_string()).unwrap();
        }
        let compose_file = dir.join("compose.yml");
        fs::write(&compose_file, yaml).unwrap();
        let config = xtask::tools::compose_v2().expect("Compose v2 installs into target/tools");
        let out = Command::new("docker")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOCKER_CONFIG", config)
            .env(FROM_ENV.0, FROM_ENV.1)
            .args(["compose", "--project-name", "envfuzz", "--project-directory"])
            .arg(dir)
            .arg("-f")
            .arg(&compose_file)
            .args(["config", "--format", "json"])
            .stdin(Stdio::null())
            .output()
            .expect("docker runs");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        let json: Value = serde_json::from_slice(&out.stdout).expect("compose config prints JSON");
        Ok((0..files.len()).map(|i| environment(&json["services"][format!("s{i}")]["environment"])).collect())
    }

    /// A service's environment as printed: `$` is written `$$` so the output reads back as
    /// a compose file; a name without a value (`null`) would come from the shell.
    fn environment(value: &Value) -> BTreeMap<String, String> {
        let Some(map) = value.as_object() else { return BTreeMap::new() };
        map.iter()
            .map(|(k, v)| {
                (k.clone(), v.as_str().map_or_else(|| "<from the shell>".to_owned(), |s| s.replace("$$", "$")))
            })
            .collect()
    }

    /// How the two readings compare.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        /// The same variables, or both refuse the file.
        Agree,
        /// A difference the reader's documentation names (see `documented`).
        Documented(&'static str),
        Diverge,
    }

    fn compare(ours: &Reading, compose: &Reading) -> Outcome {
        match (ours, compose) {
            (Ok(a), Ok(b)) if a == b => Outcome::Agree,
            (Err(_), Err(_)) => Outcome::Agree,
            (Err(why), Ok(vars)) => documented(why, vars).map_or(Outcome::Diverge, Outcome::Documented),
            _ => Outcome::Diverge,
        }
    }

    /// The files the reader refuses on purpose where Compose reads something, each
    /// recognised by our message and by what Compose made of the file (envfile.rs says why).
    fn documented(why: &str, compose: &BTreeMap<String, String>) -> Option<&'static str> {
        if why.contains(" has no `=`: ") {
            return Some("a bare name, which Compose takes from its shell");
        }
        // Compose refuses a name with a space, but not one with a tab, CR, U+0085 or
        // U+00A0, nor such a bare line (which it takes from its shell, or even as `=LINE`).
        if why.contains("(it has a space)") {
            return Some("a blank inside a name (tab, CR, U+0085, U+00A0), which Compose accepts");
        }
        if why.contains("no variable name before `=`") && compose.contains_key("") {
            return Some("an empty name (`=value`), which Compose accepts");
        }
        None
    }

    #[test]
    fn the_env_file_reader_reads_generated_files_as_compose_does() {
        xtask::tools::system::require(&[&xtask::tools::system::DOCKER]).unwrap_or_else(|e| panic!("{e:#}"));
        let cases = setting("XTASK_ENV_FUZZ_CASES", DEFAULT_CASES as u64) as usize;
        let seed = setting("XTASK_ENV_FUZZ_SEED", DEFAULT_SEED);
        let started = Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let mut generator = Generator { rng: fastrand::Rng::with_seed(seed), keys: Vec::new() };
        let texts: Vec<String> = (0..cases).map(|_| generator.file()).collect();
        let paths: Vec<PathBuf> = texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let path = dir.path().join(format!("{i}.env"));
                fs::write(&path, text).unwrap();
                path
            })
            .collect();
        let mut compose = Vec::new();
        for chunk in paths.chunks(BATCH) {
            compose.extend(composes(dir.path(), chunk));
        }
        let mut diverged = Vec::new();
        let mut known: BTreeMap<&str, usize> = BTreeMap::new();
        let (mut refused, mut variables) = (0, 0);
        for (i, (text, theirs)) in texts.iter().zip(&compose).enumerate() {
            let mine = ours(text);
            refused += usize::from(mine.is_err() && theirs.is_err());
            variables += mine.as_ref().map_or(0, BTreeMap::len);
            match compare(&mine, theirs) {
                Outcome::Agree => {}
                Outcome::Documented(what) => *known.entry(what).or_default() += 1,
                Outcome::Diverge => {
                    diverged.push(format!("file {i}: {text:?}\n  ours:    {mine:?}\n  compose: {theirs:?}"))
                }
            }
        }
        eprintln!(
            "envfile fuzz: {cases} files compared with Compose (seed {seed}): {variables} variables read alike, {refused} files refused by both, {} documented differences, {} diverged, {:.1}s",
            known.values().sum::<usize>(),
            diverged.len(),
            started.elapsed().as_secs_f64()
        );
        for (what, count) in &known {
            eprintln!("envfile fuzz: documented: {count} files with {what}");
        }
        let shown: Vec<&String> = diverged
            .iter()
            .take(std::env::var("XTASK_ENV_FUZZ_SHOW").ok().and_then(|v| v.parse().ok()).unwrap_or(5))
            .collect();
        assert!(
            diverged.is_empty(),
            "{} of {cases} files read differently:\n{}",
            diverged.len(),
            shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
        );
    }
}
