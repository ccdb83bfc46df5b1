//! `cargo xtask layout`: the modules of a crate, their sizes, what each imports, and the import
//! cycles between them (`cargo xtask test` fails on a cycle in the server or the dashboard).
//!
//! A module is a source file (`a/b.rs` or `a/b/mod.rs` is `a::b`; `lib.rs`/`main.rs` the root).
//! Every path that starts with `crate::`, `$crate::`, `self::` or `super::` — in `use` trees
//! (braces expanded) and in expressions alike — is an edge from the file's module to the longest
//! module that path names. Comments, strings and everything from the file's first
//! `#[cfg(test)]` on (its unit tests, which nothing imports) are not read. So a child that
//! imports an item its parent re-exports depends on the parent: children import their siblings
//! directly, and a parent only declares and re-exports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::args::Args;
use crate::workspace::root;

pub const USAGE: &str = "cargo xtask layout [--check] [SRC_DIR...]   (default: the server's and the dashboard's src/)";

/// The crates whose modules must not import each other in circles.
pub const CHECKED: &[&str] = &["crates/mechfund-server/src", "web/src"];

/// A crate's modules: lines per module and the modules each one imports.
#[derive(Debug, Default)]
pub struct Layout {
    pub lines: BTreeMap<String, usize>,
    pub imports: BTreeMap<String, BTreeSet<String>>,
}

pub fn run(mut args: Args) -> Result<()> {
    let check = args.flag("--check");
    let given = args.positionals()?;
    let dirs: Vec<PathBuf> = if given.is_empty() {
        CHECKED.iter().map(|dir| root().join(dir)).collect()
    } else {
        given.iter().map(PathBuf::from).collect()
    };
    let mut cycles = 0;
    for dir in &dirs {
        let layout = Layout::read(dir)?;
        println!("{}", layout.report(&dir.display().to_string()));
        cycles += layout.cycles().len();
    }
    if check && cycles > 0 {
        bail!("{cycles} import cycle(s) between modules (see above)");
    }
    Ok(())
}

/// Fails when a checked crate's modules import each other in circles; returns the number of
/// modules read.
pub fn check_no_cycles(root: &Path) -> Result<usize> {
    let mut modules = 0;
    let mut problems = Vec::new();
    for dir in CHECKED {
        let layout = Layout::read(&root.join(dir))?;
        modules += layout.lines.len();
        for cycle in layout.cycles() {
            problems.push(format!("{dir}: {}", cycle.join(" -> ")));
        }
    }
    if !problems.is_empty() {
        bail!(
            "modules import each other in circles (move what both need into a module of its own):\n  {}",
            problems.join("\n  ")
        );
    }
    Ok(modules)
}

impl Layout {
    /// Reads every `.rs` file below `src`.
    pub fn read(src: &Path) -> Result<Layout> {
        let mut files = Vec::new();
        collect(src, &mut files)?;
        if files.is_empty() {
            bail!("no Rust files below {}", src.display());
        }
        let mut layout = Layout::default();
        let mut texts = Vec::new();
        for file in &files {
            let relative = file.strip_prefix(src).unwrap_or(file);
            let module = module_of(relative);
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            *layout.lines.entry(module.clone()).or_default() += text.lines().count();
            texts.push((module, text));
        }
        for (module, text) in texts {
            let own: Vec<&str> = segments(&module);
            let mut imports = BTreeSet::new();
            for path in crate_paths(&code_of(&text)) {
                let mut full: Vec<String> = Vec::new();
                let mut rest = path.as_slice();
                match rest.first().map(String::as_str) {
                    Some("crate") => rest = &rest[1..],
                    _ => {
                        full = own.iter().map(|s| (*s).to_owned()).collect();
                        while let Some(first) = rest.first() {
                            match first.as_str() {
                                "self" => {}
                                "super" => {
                                    full.pop();
                                }
                                _ => break,
                            }
                            rest = &rest[1..];
                        }
                    }
                }
                full.extend(rest.iter().cloned());
                let target = (0..=full.len())
                    .rev()
                    .map(|n| full[..n].join("::"))
                    .find(|candidate| layout.lines.contains_key(candidate))
                    .unwrap_or_default();
                if target != module {
                    imports.insert(target);
                }
            }
            layout.imports.insert(module, imports);
        }
        Ok(layout)
    }

    /// The sets of modules that import each other in circles (strongly connected components of
    /// more than one module, or a module importing itself), each sorted.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let names: Vec<&String> = self.lines.keys().collect();
        let index: BTreeMap<&String, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
        let edges: Vec<Vec<usize>> = names
            .iter()
            .map(|n| self.imports.get(*n).into_iter().flatten().filter_map(|t| index.get(t).copied()).collect())
            .collect();
        strongly_connected(&edges)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| {
                let mut cycle: Vec<String> = component.into_iter().map(|i| names[i].clone()).collect();
                cycle.sort();
                cycle
            })
            .collect()
    }

    /// A table of modules (lines, imports) and the cycles.
    pub fn report(&self, title: &str) -> String {
        let total: usize = self.lines.values().sum();
        let mut out = format!("{title}: {} modules, {total} lines\n", self.lines.len());
        for (module, lines) in &self.lines {
            let name = if module.is_empty() { "(root)" } else { module };
            let imports: Vec<&str> = self
                .imports
                .get(module)
                .into_iter()
                .flatten()
                .map(|m| if m.is_empty() { "(root)" } else { m.as_str() })
                .collect();
            out.push_str(&format!("  {lines:>6}  {name:<28} -> {}\n", imports.join(", ")));
        }
        let cycles = self.cycles();
        if cycles.is_empty() {
            out.push_str("  import cycles: none\n");
        }
        for cycle in cycles {
            out.push_str(&format!("  import cycle: {}\n", cycle.join(" <-> ")));
        }
        out
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// `serve/api.rs` -> `serve::api`; `serve/mod.rs` -> `serve`; `lib.rs` -> `` (the root).
fn module_of(relative: &Path) -> String {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.last_mut() {
        *last = last.trim_end_matches(".rs").to_owned();
    }
    if parts.last().is_some_and(|l| l == "mod" || l == "lib" || l == "main") {
        parts.pop();
    }
    parts.join("::")
}

fn segments(module: &str) -> Vec<&str> {
    if module.is_empty() { Vec::new() } else { module.split("::").collect() }
}

/// The code of a file without comments, string and char literals, and without its tests (from
/// the first `#[cfg(test)]`).
fn code_of(text: &str) -> String {
    let text = text.find("#[cfg(test)]").map_or(text, |at| &text[..at]);
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if let Some(comment) = rest.strip_prefix("/*") {
            i += comment.find("*/").map_or(rest.len(), |end| end + 4);
        } else if let Some(len) = raw_string_len(rest) {
            out.push_str("\"\"");
            i += len;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match rest.as_bytes()[j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            out.push_str("\"\"");
            i += (j + 1).min(rest.len());
        } else if let Some(len) = char_literal_len(rest) {
            out.push_str("' '");
            i += len;
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of a raw string literal (`r"…"`, `r#"…"#`, `br"…"`) at the start of `text`.
fn raw_string_len(text: &str) -> Option<usize> {
    let after_prefix = text.strip_prefix("br").or_else(|| text.strip_prefix('r'))?;
    let hashes = after_prefix.len() - after_prefix.trim_start_matches('#').len();
    let body = after_prefix[hashes..].strip_prefix('"')?;
    let end = format!("\"{}", "#".repeat(hashes));
    let close = body.find(&end)?;
    Some(text.len() - body.len() + close + end.len())
}

/// The length of a char literal (`'a'`, `'\''`, `'\u{1F}'`) at the start of `text`; `None` for
/// a lifetime.
fn char_literal_len(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('\'')?;
    if let Some(escaped) = rest.strip_prefix('\\') {
        let close = escaped.find('\'')?;
        return (close <= 10).then_some(close + 3);
    }
    let c = rest.chars().next()?;
    rest[c.len_utf8()..].starts_with('\'').then_some(c.len_utf8() + 2)
}

#[derive(Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' || c == '$' {
            let mut end = at + c.len_utf8();
            while let Some(&(next_at, next)) = chars.peek() {
                if !(next.is_alphanumeric() || next == '_') {
                    break;
                }
                end = next_at + next.len_utf8();
                chars.next();
            }
            out.push(Token::Ident(code[at..end].to_owned()));
        } else if c == ':' && chars.peek().is_some_and(|&(_, n)| n == ':') {
            chars.next();
            out.push(Token::PathSep);
        } else if c == '{' {
            out.push(Token::Open);
        } else if c == '}' {
            out.push(Token::Close);
        } else if c == ',' {
            out.push(Token::Comma);
        } else if !c.is_whitespace() {
            out.push(Token::Other);
        }
    }
    out
}

/// Every path starting with `crate`, `$crate`, `self` or `super`, with `use` trees expanded
/// (`crate::a::{b, c::d}` is `crate::a::b` and `crate::a::c::d`); `$crate` is `crate`.
fn crate_paths(code: &str) -> Vec<Vec<String>> {
    let tokens = tokens(code);
    let mut paths = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts = matches!(&tokens[i], Token::Ident(s) if matches!(s.as_str(), "crate" | "$crate" | "self" | "super"))
            && tokens.get(i + 1) == Some(&Token::PathSep)
            && (i == 0 || tokens[i - 1] != Token::PathSep);
        if starts {
            i = tree(&tokens, i, Vec::new(), &mut paths);
        } else {
            i += 1;
        }
    }
    paths
}

/// Reads one use tree (or plain path) from `at`, pushing each full path; returns where it ended.
fn tree(tokens: &[Token], mut at: usize, mut prefix: Vec<String>, paths: &mut Vec<Vec<String>>) -> usize {
    loop {
        match tokens.get(at) {
            Some(Token::Ident(name)) => {
                prefix.push(if name == "$crate" { "crate".to_owned() } else { name.clone() });
                at += 1;
                if tokens.get(at) == Some(&Token::PathSep) {
                    at += 1;
                    continue;
                }
                paths.push(prefix);
                // `a::b as c`: the alias names nothing.
                if matches!(tokens.get(at), Some(Token::Ident(word)) if word == "as") {
                    at += 2;
                }
                return at;
            }
            Some(Token::Open) => {
                at += 1;
                while at < tokens.len() && tokens[at] != Token::Close {
                    at = tree(tokens, at, prefix.clone(), paths);
                    if tokens.get(at) == Some(&Token::Comma) {
                        at += 1;
                    } else if tokens.get(at) != Some(&Token::Close) {
                        // Something a use tree does not hold: skip it.
                        at += 1;
                    }
                }
                return at + 1;
            }
            _ => {
                paths.push(prefix);
                return at;
            }
        }
    }
}

/// Tarjan's strongly connected components, iteratively.
fn strongly_connected(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut components = Vec::new();
    let mut next = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0)];
        while let Some((v, child)) = work.pop() {
            if child == 0 {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            } else {
                let w = edges[v][child - 1];
                low[v] = low[v].min(low[w]);
            }
            let mut descended = false;
            for (k, &w) in edges[v].iter().enumerate().skip(child) {
                if index[w] == usize::MAX {
                    work.push((v, k + 1));
                    work.push((w, 0));
                    descended = true;
                    break;
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            }
            if descended {
                continue;
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    components
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(files: &[(&str, &str)]) -> Layout {
        let dir = std::env::temp_dir().join(format!("xtask-layout-{}-{}", std::process::id(), files.len()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, text) in files {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let layout = Layout::read(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        layout
    }

    #[test]
    fn use_trees_are_expanded_and_resolved_to_the_longest_module() {
        let paths = crate_paths("use crate::a::{b::{C, d}, e as f};\nlet x = super::g::h(self::i);");
        let joined: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
        assert_eq!(joined, ["crate::a::b::C", "crate::a::b::d", "crate::a::e", "super::g::h", "self::i"]);
    }

    #[test]
    fn comments_strings_chars_and_tests_are_not_read() {
        let code = code_of(
            "// use crate::a;\n/* crate::b */ let s = \"crate::c\"; let r = r#\"crate::d\"#;\n\
             let q = '\"'; fn f<'a>(x: &'a str) { crate::e::f() }\n#[cfg(test)]\nmod tests { use crate::g; }",
        );
        let joined: Vec<String> = crate_paths(&code).iter().map(|p| p.join("::")).collect();
        assert_eq!(joined, ["crate::e::f"]);
    }

    #[test]
    fn a_cycle_through_a_parent_reexport_is_found_and_siblings_are_not() {
        let cyclic = layout(&[
            ("lib.rs", "mod serve;"),
            ("serve/mod.rs", "mod api; mod writer; pub use self::writer::Shared;"),
            ("serve/api.rs", "use super::Shared;"),
            ("serve/writer.rs", "use crate::serve::api::Answer;"),
        ]);
        assert_eq!(cyclic.imports["serve::api"], BTreeSet::from(["serve".to_owned()]));
        assert_eq!(cyclic.cycles(), [["serve", "serve::api", "serve::writer"]]);

        let fixed = layout(&[
            ("lib.rs", "mod serve;"),
            ("serve/mod.rs", "mod api; mod writer; mod answer; pub use self::writer::Shared;"),
            ("serve/api.rs", "use super::{answer::Answer, writer::Shared};"),
            ("serve/writer.rs", "use super::answer::Answer;"),
            ("serve/answer.rs", "pub struct Answer;"),
        ]);
        assert!(fixed.cycles().is_empty(), "{:?}", fixed.cycles());
        assert_eq!(fixed.lines["serve::answer"], 1);
        assert_eq!(fixed.lines[""], 1);
    }

    #[test]
    fn module_paths_follow_the_files() {
        assert_eq!(module_of(Path::new("serve/api.rs")), "serve::api");
        assert_eq!(module_of(Path::new("serve/mod.rs")), "serve");
        assert_eq!(module_of(Path::new("main.rs")), "");
    }
}
