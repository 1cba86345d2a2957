//! Reading the stacks' env files (`.env`, `.env.prod`) the way Docker Compose v2 reads them.
//!
//! The rules are Compose v2's dotenv format (checked against Compose v2.40): `KEY=VALUE` or
//! `KEY: VALUE`, an optional `export `, `#` comment lines, unquoted values cut at ` #` and
//! trimmed, single quotes literal, double quotes with backslash escapes, quoted values spanning
//! lines, and `$VAR` / `${VAR:-default}` interpolation from the environment, then from earlier
//! lines. `dotenvy` reads the same files differently (it rejects `KEY=two words`, has no
//! `${VAR:-default}` and reports no line numbers), so checking with it would check another file.
//!
//! `tests/envfile_fuzz.rs` compares this reader with the real Compose v2 on generated files.
//! The differences it allows are deliberate: each is a file refused here that Compose reads.
//! - A line holding a bare name (`DEBUG`), which Compose fills from the shell it runs in, so
//!   that a file means the same on every machine.
//! - A name with a blank inside: Compose refuses a space but keeps a tab, CR, U+0085 or U+00A0
//!   in a name (`K\tZ=1`), which no program can then read as one.
//! - An empty name (`=value`), which Compose accepts and Docker cannot pass to a container.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context as _, Result};

/// One `KEY=VALUE` statement, with the value as Compose passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    /// The lines the statement spans, counted from 1 (a quoted value may span several).
    pub first_line: usize,
    pub last_line: usize,
}

/// A statement Compose would refuse (or, for a bare name, read from the shell).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct EnvFile {
    pub entries: Vec<Entry>,
    pub malformed: Vec<Malformed>,
}

impl EnvFile {
    /// The values of the variables that hold a secret (see [`holds_secret`]), the empty ones left out.
    pub fn secret_values(&self) -> Vec<String> {
        self.vars().into_iter().filter(|(k, v)| holds_secret(k, v) && !v.trim().is_empty()).map(|(_, v)| v).collect()
    }

    /// The statement that sets `key`: the last one, as with Compose.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.key == key)
    }

    pub fn vars(&self) -> BTreeMap<String, String> {
        self.entries.iter().map(|e| (e.key.clone(), e.value.clone())).collect()
    }

    /// The file read from `path`, refused at its first malformed line.
    pub fn well_formed(self, path: &Path) -> Result<EnvFile> {
        if let Some(bad) = self.malformed.first() {
            bail!("{}:{}: {}", path.display(), bad.line, bad.message);
        }
        Ok(self)
    }
}

/// Parses the file at `path`, interpolating from this process's environment as Compose
/// (started by this process) would. Only a file that cannot be read is an error here.
/// The env files of the dev and production stacks, in the project root.
pub const DEV_FILE: &str = ".env";
pub const PROD_FILE: &str = ".env.prod";

/// A variable of the environment, else of the env file's `vars`; None when blank in both.
pub fn setting(vars: &BTreeMap<String, String>, key: &str) -> Option<String> {
    std::env::var(key).ok().or_else(|| vars.get(key).cloned()).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}
/// The value the committed example files give every secret, which production refuses.
pub const EXAMPLE_VALUE: &str = "change-me";

/// A variable whose value is a secret: the two the stack sets, and by name anything that
/// holds a password, a secret, a token or a key.
pub fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["PASSWORD", "SECRET", "TOKEN"].iter().any(|word| upper.contains(word)) || upper.ends_with("_KEY")
}

/// Whether a variable's value is a secret: its name says so ([`is_secret`]), or it is a URL
/// that carries a password (`REDIS_URL=redis://:PASSWORD@redis:6379/0`).
pub fn holds_secret(name: &str, value: &str) -> bool {
    is_secret(name) || url_with_password(value)
}

fn url_with_password(value: &str) -> bool {
    let Some((_, rest)) = value.split_once("://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(credentials, _)| credentials.split_once(':').is_some_and(|(_, p)| !p.is_empty()))
}

pub fn load(path: &Path) -> Result<EnvFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(parse(&text, &|name| std::env::var(name).ok()))
}

/// The variables the file at `path` defines; its first malformed line is an error.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>> {
    Ok(load(path)?.well_formed(path)?.vars())
}

/// Parses env file text. `env` answers interpolated names before earlier lines do, as in Compose.
/// After a malformed statement parsing resumes on the next line, so every one is reported.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> EnvFile {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser { text, pos: 0, env, file: EnvFile::default() };
    while parser.skip_blanks_and_comments() {
        let line = parser.line_at(parser.pos);
        match parser.statement(line) {
            Ok(entry) => parser.file.entries.push(entry),
            Err(message) => parser.file.malformed.push(Malformed { line, message }),
        }
    }
    parser.file
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
    file: EnvFile,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn line_at(&self, pos: usize) -> usize {
        self.text[..pos].matches('\n').count() + 1
    }

    /// Moves to the next statement; false at the end of the text.
    fn skip_blanks_and_comments(&mut self) -> bool {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.pos += rest.len() - trimmed.len();
            if !trimmed.starts_with('#') {
                return !trimmed.is_empty();
            }
            self.pos += trimmed.find('\n').unwrap_or(trimmed.len());
        }
    }

    fn statement(&mut self, first_line: usize) -> Result<Entry, String> {
        self.skip_export();
        let key = self.key()?;
        self.skip_spaces();
        let value = match self.rest().chars().next() {
            Some(quote @ ('"' | '\'')) => self.quoted(quote, &key)?,
            _ => self.unquoted(&key)?,
        };
        Ok(Entry { key, value, first_line, last_line: self.line_at(self.pos) })
    }

    /// `export` counts only before an ASCII blank (not a vertical tab, not U+0085 or U+00A0,
    /// which Compose keeps as part of the name); the blanks after it are any of Compose's.
    fn skip_export(&mut self) {
        if let Some(after) = self.rest().strip_prefix("export") {
            if after.starts_with([' ', '\t', '\r', '\u{c}']) {
                self.pos += "export".len();
                self.skip_spaces();
            }
        }
    }

    fn skip_spaces(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches(is_space).len();
    }

    /// The name before `=` (or YAML-style `:`). On an error, skips the rest of the line.
    fn key(&mut self) -> Result<String, String> {
        let rest = self.rest();
        let end = rest.find(['=', ':', '\n']).unwrap_or(rest.len());
        let (raw, terminator) = (&rest[..end], rest[end..].chars().next());
        let checked = check_name(raw.trim_end(), terminator);
        self.pos += match checked {
            Ok(_) => end + 1,
            Err(_) => rest.find('\n').unwrap_or(rest.len()),
        };
        checked
    }

    /// To the end of the line, cut at ` #`, trimmed, then interpolated.
    fn unquoted(&mut self, key: &str) -> Result<String, String> {
        let rest = self.rest();
        let end = rest.find('\n').unwrap_or(rest.len());
        let raw = rest[..end].split(" #").next().unwrap_or_default().trim_end().to_owned();
        self.pos += end;
        self.interpolate(&raw).map_err(|why| format!("{key}: {why}"))
    }

    /// Up to the matching unescaped quote. A backslash only hides the quote; every other one
    /// stays for the double-quote escapes. An unclosed quote swallows the rest of the file.
    fn quoted(&mut self, quote: char, key: &str) -> Result<String, String> {
        let body_start = self.pos + 1;
        let mut body = String::new();
        let mut escaped = false;
        for (i, c) in self.text[body_start..].char_indices() {
            if c == quote && !escaped {
                self.pos = body_start + i + 1;
                return match quote {
                    '"' => self.interpolate(&unescape(&body)).map_err(|why| format!("{key}: {why}")),
                    _ => Ok(body),
                };
            }
            if c == '\\' && !escaped {
                escaped = true;
                continue;
            }
            if escaped && c != quote {
                body.push('\\');
            }
            escaped = false;
            body.push(c);
        }
        self.pos = self.text.len();
        Err(format!("{key}: the value opens with {quote} but never closes it: add the closing {quote}"))
    }

    /// `$$`, `$NAME`, `${NAME}` and `${NAME<op>text}` with op one of `:-`, `-`, `:+`, `+`, `:?`, `?`.
    fn interpolate(&self, text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let after = &rest[dollar + 1..];
            rest = if let Some(tail) = after.strip_prefix('$') {
                out.push('$');
                tail
            } else if let Some(body) = after.strip_prefix('{') {
                // Compose refuses a line break inside `${...}` (a `\n` escape in double quotes included).
                let end =
                    closing_brace(body).filter(|&end| !body[..end].contains('\n')).ok_or_else(invalid_reference)?;
                out.push_str(&self.braced(&body[..end])?);
                &body[end + 1..]
            } else {
                let len = name_len(after);
                if len == 0 {
                    out.push('$');
                } else {
                    out.push_str(&self.lookup(&after[..len]).unwrap_or_default());
                }
                &after[len..]
            };
        }
        out.push_str(rest);
        Ok(out)
    }

    fn braced(&self, inner: &str) -> Result<String, String> {
        let len = name_len(inner);
        if len == 0 {
            return Err(invalid_reference());
        }
        let (name, op) = inner.split_at(len);
        let value = self.lookup(name);
        let (colon, op) = match op.strip_prefix(':') {
            Some(op) => (true, op),
            None => (false, op),
        };
        // With a colon, an empty value counts as unset.
        let set = value.as_deref().is_some_and(|v| !colon || !v.is_empty());
        let mut chars = op.chars();
        let (kind, text) = (chars.next(), chars.as_str());
        match (kind, set) {
            (None, _) if !colon => Ok(value.unwrap_or_default()),
            (Some('-'), true) | (Some('?'), true) => self.check_syntax(text).map(|()| value.unwrap_or_default()),
            (Some('-'), false) | (Some('+'), true) => self.interpolate(text),
            (Some('+'), false) => self.check_syntax(text).map(|()| String::new()),
            (Some('?'), false) if text.is_empty() => Err(format!("required variable {name} is not set: set {name}")),
            (Some('?'), false) => Err(format!("required variable {name} is not set ({text}): set {name}")),
            _ => Err(invalid_reference()),
        }
    }

    /// Refuses an invalid reference in text that is not used (the default of a set
    /// variable): Compose parses the whole value before it substitutes anything.
    fn check_syntax(&self, text: &str) -> Result<(), String> {
        match self.interpolate(text) {
            Err(why) if why == invalid_reference() => Err(why),
            _ => Ok(()),
        }
    }

    /// The environment first, then the file's earlier statements: Compose's order.
    fn lookup(&self, name: &str) -> Option<String> {
        (self.env)(name).or_else(|| self.file.get(name).map(|e| e.value.clone()))
    }
}

/// Compose accepts letters, digits, `_`, `.`, `-`, `[` and `]` in a name.
fn check_name(name: &str, terminator: Option<char>) -> Result<String, String> {
    let allowed = |c: char| c.is_alphanumeric() || "_.-[]".contains(c);
    if let Some(bad) = name.chars().find(|&c| !allowed(c) && !c.is_whitespace()) {
        let upto: String = name.chars().take_while(|&c| c != bad).take(40).collect();
        return Err(format!("\"{upto}{bad}\" is not a variable name: names use letters, digits and _ only"));
    }
    if name.contains(char::is_whitespace) {
        return Err(format!("\"{name}\" is not a variable name (it has a space): write NAME=value"));
    }
    match terminator {
        None | Some('\n') => Err(format!(
            "{name} has no `=`: write {name}=value (a bare name takes its value from the shell running Compose)"
        )),
        _ if name.is_empty() => Err("no variable name before `=`: write NAME=value".to_owned()),
        _ => Ok(name.to_owned()),
    }
}

/// The escapes of a double-quoted value. `\$` becomes `$$` so interpolation leaves a `$`.
fn unescape(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('a') => out.push('\u{7}'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('v') => out.push('\u{b}'),
            Some('\\') => out.push('\\'),
            Some('$') => out.push_str("$$"),
            // Compose's reading: `\0` is a lone backslash (`\000` gives `\00`).
            Some('0') => out.push('\\'),
            Some(other) => out.extend(['\\', other]),
            None => out.push('\\'),
        }
    }
    out
}

/// Where the `}` closing an opened `${` is, as Compose finds it: the one that balances
/// every `{` and `}` after it (`${A:-{x}}` has the default `{x}`), else the last `}` of the
/// text (`${A:-de{fault}` has the default `de{fault`).
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 1;
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return Some(i);
        }
    }
    body.rfind('}')
}

/// The length of the variable name `text` starts with: `[A-Za-z_][A-Za-z0-9_]*`.
fn name_len(text: &str) -> usize {
    if !text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return 0;
    }
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len())
}

fn invalid_reference() -> String {
    "`${` starts an invalid variable reference: write ${NAME} or ${NAME:-default}, or $$ for a literal $".to_owned()
}

/// Compose's blanks within a line (a newline ends a statement, so it is not one).
fn is_space(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_told_by_name() {
        for name in ["SECRET_KEY", "POSTGRES_PASSWORD", "EMAIL_HOST_PASSWORD", "AWS_SECRET_ACCESS_KEY", "API_TOKEN"] {
            assert!(is_secret(name), "{name}");
        }
        for name in ["POSTGRES_USER", "ALLOWED_HOSTS", "DEBUG", "KEYBOARD", "SECURE_HSTS_SECONDS"] {
            assert!(!is_secret(name), "{name}");
        }
        assert!(holds_secret("REDIS_URL", "redis://:s3cret@redis:6379/0"));
        assert!(holds_secret("DATABASE_URL", "postgres://app:pw@db/app"));
        assert!(!holds_secret("REDIS_URL", "redis://redis:6379/0"));
        assert!(!holds_secret("SITE_URL", "https://user@example.com/a:b@c"));
    }

    fn vars(text: &str) -> Vec<(String, String)> {
        let file = parse(text, &|name| (name == "FROM_ENV").then(|| "env".to_owned()));
        assert_eq!(file.malformed, [], "{text:?}");
        file.entries.into_iter().map(|e| (e.key, e.value)).collect()
    }

    fn one(text: &str) -> String {
        let mut all = vars(text);
        assert_eq!(all.len(), 1, "{text:?}");
        all.remove(0).1
    }

    fn malformed(text: &str) -> Vec<(usize, String)> {
        parse(text, &|_| None).malformed.into_iter().map(|m| (m.line, m.message)).collect()
    }

    // Every expected value below is what Compose v2.40 passes to a container for that line.
    #[test]
    fn unquoted_values_are_trimmed_and_cut_at_space_hash() {
        assert_eq!(one("A=two words # comment"), "two words");
        assert_eq!(one("A=abc#def"), "abc#def");
        assert_eq!(one("A=x\t#c"), "x\t#c");
        assert_eq!(one("A=#notcomment"), "#notcomment");
        assert_eq!(one("A=  spaced   "), "spaced");
        assert_eq!(one("A=v=w"), "v=w");
        assert_eq!(one("A=\\n\\$x"), "\\n\\");
        assert_eq!(one("A="), "");
        assert_eq!(one("A=1\r\n"), "1");
    }

    #[test]
    fn single_quotes_are_literal_but_for_an_escaped_quote() {
        assert_eq!(one("A='lit $A \\n'"), "lit $A \\n");
        assert_eq!(one("A='a\\'b'"), "a'b");
        assert_eq!(one("A='a\\\\'"), "a\\\\");
        assert_eq!(one("A='x' # comment"), "x");
    }

    #[test]
    fn double_quotes_take_escapes_and_span_lines() {
        assert_eq!(one(r#"A="a\"b""#), "a\"b");
        assert_eq!(one(r#"A="t\tx\\y\n""#), "t\tx\\y\n");
        assert_eq!(one(r#"A="\a\b\f\v\q\x41""#), "\u{7}\u{8}\u{c}\u{b}\\q\\x41");
        assert_eq!(one(r#"A="\'x\\""#), "\\'x\\");
        assert_eq!(one("A=\"multi\nline\""), "multi\nline");
        assert_eq!(one(r#"A= " y "  # c"#), " y ");
        assert_eq!(one(r#"A="\$HOME""#), "$HOME");
        assert_eq!(one(r#"A="x\000Y""#), "x\\00Y");
    }

    #[test]
    fn export_counts_only_before_an_ascii_blank() {
        let keys: Vec<String> =
            vars("export\tA=1\nexport\u{c}B=2\nexport \u{85}C=3\n").into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["A", "B", "C"]);
        // Compose reads the name `export\u{a0}D`; a blank inside a name is refused here.
        assert_eq!(malformed("export\u{a0}D=4").len(), 1);
    }

    #[test]
    fn export_yaml_style_and_spaced_keys() {
        let expected = [("A", "1"), ("B", "2"), ("exportC", "3"), ("D", "4"), ("E", "yaml"), ("A.b-c[0]", "5")];
        let expected: Vec<_> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert_eq!(vars("export A=1\nexport   B=2\nexportC=3\n  D = 4\nE: yaml\nA.b-c[0]=5\n"), expected);
    }

    #[test]
    fn comments_blank_lines_and_a_byte_order_mark_are_skipped() {
        assert_eq!(vars("\u{feff}# c\n\n   # c2\nA=1\n\n"), [("A".to_owned(), "1".to_owned())]);
    }

    #[test]
    fn text_after_a_closing_quote_is_the_next_statement() {
        assert_eq!(vars("A=\"x\" B=2").len(), 2);
        assert_eq!(
            malformed("A=\"x\"junk #c\n"),
            [(1, "\"junk #\" is not a variable name: names use letters, digits and _ only".to_owned())]
        );
    }

    #[test]
    fn interpolation_reads_the_environment_then_earlier_lines() {
        let file = vars("A=1\nB=${A}2\nC=$A$A.x\nD=$$A\nE=${MISSING}\nF=${FROM_ENV}\nG=a$ b$1\nH='$A'\n");
        let values: Vec<&str> = file.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["1", "12", "11.x", "$A", "", "env", "a$ b$1", "$A"]);
    }

    #[test]
    fn interpolation_defaults_and_alternatives() {
        let file = vars(
            "A=1\nE=\nB=${Q:-d}\nC=${E:-d}\nD=${E-d}\nF=${A:+r}\nG=${E+r}\nH=${E:+r}\nI=${Q:-${R:-deep}}x\nJ=${Q:-{x}}\nK=${Q:-a}b}\n",
        );
        let values: Vec<&str> = file.iter().skip(2).map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["d", "d", "", "r", "r", "", "deepx", "{x}", "ab}"]);
        let unbalanced = vars("A=${Q:-de fau{lt}a\nB=${Q:-x{}\nC=${Q:-$#{R:-n}}\n");
        let values: Vec<&str> = unbalanced.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["de fau{lta", "x{", "$#{R:-n}"]);
    }

    #[test]
    fn malformed_lines_are_reported_with_their_line_number() {
        let text = "A=1\nBAD LINE\nB/C=2\n# ok\nBARE\n=1\nC=${B:=x}\nD=${Q:?boom}\nE=\"open\nF=1\n";
        let lines: Vec<usize> = malformed(text).iter().map(|(line, _)| *line).collect();
        assert_eq!(lines, [2, 3, 5, 6, 7, 8, 9]);
        assert_eq!(malformed("A=\"${Q:-a\\nb}\"").len(), 1, "a line break inside a reference");
    }

    #[test]
    fn parsing_resumes_after_a_malformed_line() {
        let file = parse("BAD LINE\nA=1\nB=\"x\nline\" C=${Q:?}\nD=2", &|_| None);
        let keys: Vec<&str> = file.entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["A", "B", "D"]);
        assert_eq!(file.malformed.iter().map(|m| m.line).collect::<Vec<_>>(), [1, 4]);
        assert_eq!((file.entries[1].first_line, file.entries[1].last_line), (3, 4));
    }

    #[test]
    fn malformed_messages_name_the_variable_and_the_fix() {
        let cases = [
            ("SECRET KEY=x", "\"SECRET KEY\" is not a variable name (it has a space): write NAME=value"),
            (
                "DEBUG",
                "DEBUG has no `=`: write DEBUG=value (a bare name takes its value from the shell running Compose)",
            ),
            ("=x", "no variable name before `=`: write NAME=value"),
            ("K=\"x", "K: the value opens with \" but never closes it: add the closing \""),
            ("K=${Q:?boom}", "K: required variable Q is not set (boom): set Q"),
        ];
        for (text, message) in cases {
            assert_eq!(malformed(text), [(1, message.to_owned())], "{text:?}");
        }
    }

    #[test]
    fn the_last_statement_for_a_key_wins() {
        let file = parse("A=1\nA=2\n", &|_| None);
        assert_eq!(file.get("A").map(|e| (e.value.as_str(), e.first_line)), Some(("2", 2)));
    }

    #[test]
    fn the_example_files_parse() {
        for text in [include_str!("../../docker/dev.env.example"), include_str!("../../docker/prod.env.example")] {
            let file = parse(text, &|_| None);
            assert_eq!(file.malformed, []);
            assert!(file.get("SECRET_KEY").is_some_and(|e| e.value == "change-me"));
        }
    }
}
