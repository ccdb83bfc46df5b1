//! The guard that keeps the repository's Markdown standing alone: every relative link in a
//! Markdown file the repository holds must name a file (or folder) of the repository, inside it,
//! and a `#fragment` into a Markdown file must name one of its headings. Absolute URLs
//! (`https:`, `mailto:`, `data:`, …) are not followed.
//!
//! "The repository" is what a clone gets: the files git tracks, plus new files not ignored yet
//! (so a link to a build output such as `dist/` or `target/` is refused even where it exists).
//! Links are read from inline links and images (`[text](target "title")`), reference
//! definitions (`[id]: target`) and `href`/`src` attributes of inline HTML, outside fenced code
//! blocks and code spans.
//!
//! A second guard keeps the spec's rule ids in step with the conformance cases: every id of
//! `tests/conformance/rules.json` appears in `docs/spec.md`.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::args::Args;
use crate::workspace::root;

pub const USAGE: &str =
    "cargo xtask links   (the relative links of every Markdown file; also part of `cargo xtask test`)";

/// `cargo xtask links`.
pub fn run_links(args: Args) -> Result<()> {
    args.finish()?;
    let checked = check_links(&root())?;
    eprintln!("{checked} links checked: every relative link names a file of the repository");
    Ok(())
}

/// The conformance rules, whose ids `docs/spec.md` must show next to the rules they name.
const RULES: &str = "tests/conformance/rules.json";
/// The spec.
const SPEC: &str = "docs/spec.md";

/// Checks that `docs/spec.md` names every rule id of `tests/conformance/rules.json` (as
/// `` `id` ``), so a case's `rules_covered` leads to the rule's text; returns how many ids.
///
/// # Errors
/// Unreadable files, or the ids the spec does not name.
pub fn check_spec_rule_ids(root: &Path) -> Result<usize> {
    let read = |path: &str| std::fs::read_to_string(root.join(path)).with_context(|| format!("reading {path}"));
    let (rules, spec) = (read(RULES)?, read(SPEC)?);
    let ids = rule_ids(&rules)?;
    let missing: Vec<&str> = ids.iter().map(String::as_str).filter(|id| !spec.contains(&format!("`{id}`"))).collect();
    ensure!(missing.is_empty(), "{SPEC} does not name these rule ids of {RULES}: {}", missing.join(", "));
    Ok(ids.len())
}

/// The `id`s of a `rules.json` text.
fn rule_ids(text: &str) -> Result<Vec<String>> {
    let doc: serde_json::Value = serde_json::from_str(text).with_context(|| format!("{RULES} is not JSON"))?;
    let rules = doc["rules"].as_array().with_context(|| format!("{RULES} has no \"rules\" array"))?;
    rules
        .iter()
        .map(|r| r["id"].as_str().map(str::to_owned).with_context(|| format!("{RULES}: a rule without an id")))
        .collect()
}

/// A link target found in a Markdown text.
#[derive(Debug, PartialEq, Eq)]
pub struct Link {
    /// 1-based line of the target's first character.
    pub line: usize,
    /// The target as written (angle brackets and title removed).
    pub target: String,
}

/// Checks the relative links of every Markdown file of the repository at `root`; returns how
/// many links were checked.
///
/// # Errors
/// Every broken link, one per line as `FILE:LINE: TARGET: what is wrong`.
pub fn check_links(root: &Path) -> Result<usize> {
    let files = repository_files(root)?;
    let mut checked = 0;
    let mut problems = Vec::new();
    let mut anchors_of = HashMap::new();
    for file in files.iter().filter(|f| is_markdown(f)) {
        let Ok(text) = std::fs::read_to_string(root.join(file)) else { continue };
        for link in links(&text) {
            checked += 1;
            if let Some(why) = problem(root, &files, file, &link.target, &mut anchors_of) {
                problems.push(format!("{file}:{}: {}: {why}", link.line, link.target));
            }
        }
    }
    ensure!(
        problems.is_empty(),
        "{} broken link(s) in the repository's Markdown (a relative link must name a file of the repository):\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(checked)
}

/// The repository's files, as `/`-separated paths relative to `root`: tracked or new and not
/// ignored, and present in the working tree.
fn repository_files(root: &Path) -> Result<BTreeSet<String>> {
    let output = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(root)
        .output()
        .context("running git ls-files")?;
    if !output.status.success() {
        bail!("git ls-files failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .split('\0')
        .filter(|f| !f.is_empty() && root.join(f).exists())
        .map(str::to_owned)
        .collect())
}

fn is_markdown(path: &str) -> bool {
    path.rsplit_once('.').is_some_and(|(_, ext)| ext.eq_ignore_ascii_case("md"))
}

/// What is wrong with `target`, a link in `file`, or `None` when it is fine.
fn problem(
    root: &Path,
    files: &BTreeSet<String>,
    file: &str,
    target: &str,
    anchors_of: &mut HashMap<String, BTreeSet<String>>,
) -> Option<String> {
    if has_scheme(target) || target.starts_with("//") {
        return None;
    }
    let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let resolved = if path.is_empty() {
        file.to_owned()
    } else {
        let base = if path.starts_with('/') { "" } else { file.rsplit_once('/').map_or("", |(dir, _)| dir) };
        match resolve(base, &percent_decode(path)) {
            Some(resolved) => resolved,
            None => return Some("leaves the repository".to_owned()),
        }
    };
    let folder = format!("{resolved}/");
    let is_dir = resolved.is_empty() || files.iter().any(|f| f.starts_with(&folder));
    if !is_dir && !files.contains(&resolved) {
        return Some(if root.join(&resolved).exists() {
            format!("{resolved} is ignored by git: a clone does not have it")
        } else {
            format!("no such file in the repository: {resolved}")
        });
    }
    if fragment.is_empty() || !is_markdown(&resolved) {
        return None;
    }
    let anchors = anchors_of.entry(resolved.clone()).or_insert_with(|| {
        std::fs::read_to_string(root.join(&resolved)).map(|text| anchors(&text)).unwrap_or_default()
    });
    let fragment = percent_decode(fragment);
    (!anchors.contains(&fragment)).then(|| format!("no heading or anchor #{fragment} in {resolved}"))
}

/// Whether `target` starts with a URI scheme (`https:`, `mailto:`, `data:`, …).
fn has_scheme(target: &str) -> bool {
    let Some((scheme, _)) = target.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// `path` joined to the folder `base` (both relative to the root, `/`-separated) and normalised;
/// `None` when it climbs above the root. A leading `/` means the root itself.
fn resolve(base: &str, path: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// `%XX` escapes decoded (anything else, including a malformed escape, kept as written).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = || std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex()) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut fence: Option<(char, usize)> = None;
    text.lines().enumerate().filter_map(move |(i, line)| {
        let trimmed = line.trim_start();
        let marker = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = marker.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        match (fence, marker) {
            (None, Some(c)) if run >= 3 && line.len() - trimmed.len() <= 3 => {
                fence = Some((c, run));
                None
            }
            (Some((c, n)), Some(m)) if m == c && run >= n && trimmed[run..].trim().is_empty() => {
                fence = None;
                None
            }
            (Some(_), _) => None,
            (None, _) => Some((i + 1, line)),
        }
    })
}

/// `line` with its code spans blanked out (same length, so positions keep their meaning).
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let run = rest[start..].chars().take_while(|c| *c == '`').count();
        let after = &rest[start + run..];
        let closing = find_run(after, run);
        match closing {
            Some(end) => {
                out.extend(std::iter::repeat_n(' ', run + end + run));
                rest = &after[end + run..];
            }
            None => {
                out.push_str(&rest[start..start + run]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The byte offset of the next run of exactly `n` backticks in `text`.
fn find_run(text: &str, n: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'`' {
            let run = bytes[i..].iter().take_while(|b| **b == b'`').count();
            if run == n {
                return Some(i);
            }
            i += run;
        } else {
            i += 1;
        }
    }
    None
}

/// Every link target of a Markdown text (see the module's documentation for which).
#[must_use]
pub fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    for (number, line) in prose_lines(text) {
        let line = without_code_spans(line);
        let mut push = |target: &str| {
            if !target.is_empty() {
                out.push(Link { line: number, target: target.to_owned() });
            }
        };
        // Reference definitions: `[id]: target "title"`.
        let trimmed = line.trim_start();
        if line.len() - trimmed.len() <= 3
            && trimmed.starts_with('[')
            && let Some(close) = trimmed.find("]:")
            && close > 1
            && !trimmed[..close].contains("](")
        {
            push(link_destination(trimmed[close + 2..].trim_start()));
            continue;
        }
        // Inline links and images: `](target "title")`.
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            push(link_destination(rest));
        }
        // Inline HTML: `href="…"` and `src="…"`.
        for attribute in ["href=", "src="] {
            let mut rest = line.as_str();
            while let Some(at) = rest.find(attribute) {
                rest = &rest[at + attribute.len()..];
                if let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'')
                    && let Some(end) = rest[1..].find(quote)
                {
                    push(&rest[1..=end]);
                }
            }
        }
    }
    out
}

/// The destination at the start of `text` (what follows `](` or `]:`): `<…>`, or up to
/// whitespace or the `)` that closes the link (balanced parentheses are part of it).
fn link_destination(text: &str) -> &str {
    if let Some(inner) = text.strip_prefix('<') {
        return inner.find('>').map_or("", |end| &inner[..end]);
    }
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' if depth == 0 => return &text[..i],
            ')' => depth -= 1,
            c if c.is_whitespace() => return &text[..i],
            _ => {}
        }
    }
    text
}

/// The anchors a Markdown text defines: GitHub's slug of each heading (`-1`, `-2`, … for repeats)
/// and the `id`/`name` attributes of inline HTML.
#[must_use]
pub fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, line) in prose_lines(text) {
        if let Some(heading) = atx_heading(line) {
            let slug = slug(heading);
            let count = seen.entry(slug.clone()).or_insert(0);
            out.insert(if *count == 0 { slug.clone() } else { format!("{slug}-{count}") });
            *count += 1;
        }
        let line = without_code_spans(line);
        for attribute in ["id=\"", "name=\""] {
            let mut rest = line.as_str();
            while let Some(at) = rest.find(attribute) {
                rest = &rest[at + attribute.len()..];
                if let Some(end) = rest.find('"') {
                    out.insert(rest[..end].to_owned());
                }
            }
        }
    }
    out
}

/// The text of an ATX heading line (`## Text ##`), or `None`.
fn atx_heading(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let level = trimmed.chars().take_while(|c| *c == '#').count();
    let rest = &trimmed[level..];
    if !(1..=6).contains(&level) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    // An optional closing run of `#`, after a space: `## Text ##`.
    let text = rest.trim();
    let open = text.trim_end_matches('#');
    Some(if open.is_empty() || open.ends_with([' ', '\t']) { open.trim_end() } else { text })
}

/// GitHub's anchor for a heading: its rendered text lower-cased, punctuation and symbols dropped,
/// spaces turned into `-` (`### 2.4 Replay (`replay`)` -> `24-replay-replay`).
#[must_use]
pub fn slug(heading: &str) -> String {
    // What renders: code spans' text, links' text, no emphasis markers.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(start) = rest.find('[') {
        text.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find("](") {
            Some(close) => {
                text.push_str(&after[..close]);
                let destination = link_destination(&after[close + 2..]);
                let end = close + 2 + destination.len();
                rest = after[end..].strip_prefix(')').unwrap_or(&after[end..]);
            }
            None => {
                text.push('[');
                rest = after;
            }
        }
    }
    text.push_str(rest);
    text.chars()
        .filter(|c| !matches!(c, '`' | '*'))
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(text: &str) -> Vec<(usize, String)> {
        links(text).into_iter().map(|l| (l.line, l.target)).collect()
    }

    fn owned(expected: &[(usize, &str)]) -> Vec<(usize, String)> {
        expected.iter().map(|(line, target)| (*line, (*target).to_owned())).collect()
    }

    #[test]
    fn finds_inline_links_images_references_and_html() {
        let text = "# Title\n\
            See [the spec](docs/spec.md) and ![a picture](docs/a.png \"title\").\n\
            A link whose text spans [two\n\
            lines](#title), one [with parens](a_(b).md) and [one](<with space.md>).\n\
            [ref]: ../outside.md \"title\"\n\
            <img src=\"docs/b.png\" alt=\"\"> <a href='https://example.org'>x</a>\n";
        assert_eq!(
            targets(text),
            owned(&[
                (2, "docs/spec.md"),
                (2, "docs/a.png"),
                (4, "#title"),
                (4, "a_(b).md"),
                (4, "with space.md"),
                (5, "../outside.md"),
                (6, "https://example.org"),
                (6, "docs/b.png"),
            ])
        );
    }

    #[test]
    fn ignores_code_blocks_and_code_spans() {
        let text = "```markdown\n[in a fence](nowhere.md)\n```\n\
            ~~~~\n```\n[still fenced](nowhere.md)\n~~~~\n\
            `[in a span](nowhere.md)` and ``a ` tick [x](real.md)`` then [after](after.md)\n";
        assert_eq!(targets(text), owned(&[(8, "after.md")]));
    }

    #[test]
    fn slugs_like_github() {
        assert_eq!(slug("2.4 Replay"), "24-replay");
        assert_eq!(slug("2. The domain (mechfund-core)"), "2-the-domain-mechfund-core");
        assert_eq!(slug("2.5 Display state at a given `now`"), "25-display-state-at-a-given-now");
        assert_eq!(slug("4. Where mechfund departs from DDC's design"), "4-where-mechfund-departs-from-ddcs-design");
        assert_eq!(slug("Live progress and donation management"), "live-progress-and-donation-management");
        assert_eq!(slug("The [`mechfund`](x.md) command line"), "the-mechfund-command-line");
        assert_eq!(slug("snake_case **bold** §3.1"), "snake_case-bold-31");
    }

    #[test]
    fn anchors_count_repeated_headings_and_html_ids() {
        let text = "# A\n## A\n```\n# not a heading\n```\n### B ###\n#hashtag\n<a id=\"here\"></a>\n";
        let expected: BTreeSet<String> = ["a", "a-1", "b", "here"].iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(anchors(text), expected);
    }

    #[test]
    fn resolves_inside_the_root_only() {
        assert_eq!(resolve("docs", "spec.md").as_deref(), Some("docs/spec.md"));
        assert_eq!(resolve("docs", "../README.md").as_deref(), Some("README.md"));
        assert_eq!(resolve("tests/samples/ddc-dirs", "../../../docs/./spec.md").as_deref(), Some("docs/spec.md"));
        assert_eq!(resolve("", "../sibling/notes.md"), None);
        assert_eq!(resolve("docs", "../../x.md"), None);
        assert!(has_scheme("https://example.org") && has_scheme("mailto:a@b") && !has_scheme("docs/a:b.md"));
        assert_eq!(percent_decode("with%20space.md"), "with space.md");
    }

    #[test]
    fn rule_ids_are_read_and_must_be_named_in_the_spec() {
        let rules = r#"{"rules": [{"id": "2.4.3-toggle-odd-deleted", "text": "…"}, {"id": "2.8-snapshot-goal"}]}"#;
        assert_eq!(rule_ids(rules).unwrap(), ["2.4.3-toggle-odd-deleted", "2.8-snapshot-goal"]);
        assert!(rule_ids(r#"{"rules": [{"text": "no id"}]}"#).is_err());
        assert!(rule_ids("[]").is_err());

        let root = std::env::temp_dir().join(format!("xtask-rule-ids-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("docs")).unwrap();
        std::fs::create_dir_all(root.join("tests/conformance")).unwrap();
        std::fs::write(root.join(RULES), rules).unwrap();
        std::fs::write(root.join(SPEC), "Odd counts delete (rule `2.4.3-toggle-odd-deleted`).\n").unwrap();
        let error = check_spec_rule_ids(&root).unwrap_err().to_string();
        std::fs::write(root.join(SPEC), "(rules `2.4.3-toggle-odd-deleted`, `2.8-snapshot-goal`)\n").unwrap();
        let count = check_spec_rule_ids(&root).unwrap();
        let _ = std::fs::remove_dir_all(&root);
        assert!(error.ends_with("rule ids of tests/conformance/rules.json: 2.8-snapshot-goal"), "{error}");
        assert_eq!(count, 2);
    }

    #[test]
    fn reports_file_line_and_link() {
        let root = std::env::temp_dir().join(format!("xtask-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("docs")).unwrap();
        let git = |args: &[&str]| {
            let status = Command::new("git").args(args).current_dir(&root).output().unwrap().status;
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "-q"]);
        std::fs::write(root.join(".gitignore"), "/dist\n").unwrap();
        std::fs::create_dir_all(root.join("dist")).unwrap();
        std::fs::write(root.join("dist/index.html"), "").unwrap();
        std::fs::write(root.join("docs/spec.md"), "# Spec\n\n## 2.4 Replay\n").unwrap();
        std::fs::write(
            root.join("README.md"),
            "# R\n[ok](docs/spec.md#24-replay) [dir](docs/) [self](#r) [web](https://x.org/a.md)\n\
             [out](../sibling/notes.md)\n[gone](docs/nope.md)\n[anchor](docs/spec.md#25-display)\n\
             [built](dist/index.html)\n",
        )
        .unwrap();
        let error = check_links(&root).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&root);
        assert!(error.contains("README.md:3: ../sibling/notes.md: leaves the repository"), "{error}");
        assert!(error.contains("README.md:4: docs/nope.md: no such file in the repository: docs/nope.md"), "{error}");
        assert!(error.contains("README.md:5: docs/spec.md#25-display: no heading or anchor #25-display in"), "{error}");
        assert!(error.contains("README.md:6: dist/index.html: dist/index.html is ignored by git"), "{error}");
        assert_eq!(error.lines().count(), 5, "{error}");
    }
}
