//! `include` expansion: file loading, glob(3)-like matching, cycle and size
//! limits.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::{parser, Directive, ParseError, ParseErrorKind, Pos, MAX_NESTING};

/// Deepest chain of files including each other (the main file counts).
const MAX_INCLUDE_DEPTH: usize = 32;
/// Most files loaded in total, so a glob over a huge directory stays bounded.
const MAX_FILES: usize = 1024;

pub(super) fn load(main: &Path) -> Result<Vec<Directive>, ParseError> {
    let mut loader = Loader {
        prefix: main.parent().map(Path::to_path_buf).unwrap_or_default(),
        stack: Vec::new(),
        files: 0,
    };
    loader.load_file(main, None, 0)
}

struct Loader {
    /// nginx's conf prefix: relative include patterns resolve against the
    /// main file's directory, whichever file the include is in.
    prefix: PathBuf,
    /// Files being loaded, outermost first, for cycle detection.
    stack: Vec<Frame>,
    files: usize,
}

struct Frame {
    canonical: PathBuf,
    shown: PathBuf,
}

impl Loader {
    /// Loads `path` with its includes expanded. `site` is the include
    /// directive that asked for it (`None` for the main file); `nesting` is
    /// the block depth the file's directives are spliced into.
    fn load_file(
        &mut self,
        path: &Path,
        site: Option<&Pos>,
        nesting: usize,
    ) -> Result<Vec<Directive>, ParseError> {
        let error_at = |kind| {
            let pos = site.cloned().unwrap_or_else(|| Pos::whole_file(path));
            ParseError::new(pos, kind)
        };
        let io_error = |source| {
            error_at(ParseErrorKind::Io {
                path: path.to_path_buf(),
                source,
            })
        };
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            return Err(error_at(ParseErrorKind::IncludeDepth {
                limit: MAX_INCLUDE_DEPTH,
            }));
        }
        self.files += 1;
        if self.files > MAX_FILES {
            return Err(error_at(ParseErrorKind::TooManyFiles { limit: MAX_FILES }));
        }
        // Resolving symlinks also makes a dangling one fail here, naming it.
        let canonical = fs::canonicalize(path).map_err(io_error)?;
        if let Some(chain) = self.cycle(&canonical, path) {
            return Err(error_at(ParseErrorKind::IncludeCycle { chain }));
        }
        let bytes = fs::read(path).map_err(io_error)?;
        let directives = parser::parse(&bytes, Arc::from(path))?;
        self.stack.push(Frame {
            canonical,
            shown: path.to_path_buf(),
        });
        let expanded = self.expand(directives, nesting);
        self.stack.pop();
        expanded
    }

    /// The include chain that loading `canonical` again would close, if any.
    fn cycle(&self, canonical: &Path, shown: &Path) -> Option<Vec<PathBuf>> {
        let start = self.stack.iter().position(|f| f.canonical == canonical)?;
        let mut chain: Vec<PathBuf> = self.stack[start..]
            .iter()
            .map(|f| f.shown.clone())
            .collect();
        chain.push(shown.to_path_buf());
        Some(chain)
    }

    /// Replaces each `include` in `directives` (at block depth `nesting`),
    /// recursively, by the directives of the files it names.
    fn expand(
        &mut self,
        directives: Vec<Directive>,
        nesting: usize,
    ) -> Result<Vec<Directive>, ParseError> {
        let mut out = Vec::with_capacity(directives.len());
        for mut directive in directives {
            if directive.name == "include" {
                let pattern = include_pattern(&directive)?;
                for path in self.resolve(pattern, &directive.pos)? {
                    out.extend(self.load_file(&path, Some(&directive.pos), nesting)?);
                }
                continue;
            }
            if let Some(block) = directive.block.take() {
                // Each file was depth-checked alone; spliced together they
                // can nest deeper.
                if nesting >= MAX_NESTING {
                    return Err(ParseError::new(
                        directive.pos,
                        ParseErrorKind::TooDeep { limit: MAX_NESTING },
                    ));
                }
                directive.block = Some(self.expand(block, nesting + 1)?);
            }
            out.push(directive);
        }
        Ok(out)
    }

    fn resolve(&self, pattern: &str, site: &Pos) -> Result<Vec<PathBuf>, ParseError> {
        glob(&self.prefix, pattern).map_err(|(path, source)| {
            ParseError::new(site.clone(), ParseErrorKind::ReadDir { path, source })
        })
    }
}

/// The single argument of an `include` directive.
fn include_pattern(directive: &Directive) -> Result<&str, ParseError> {
    if directive.block.is_some() {
        return Err(ParseError::new(
            directive.pos.clone(),
            ParseErrorKind::IncludeBlock,
        ));
    }
    match directive.args.as_slice() {
        [arg] => Ok(&arg.value),
        args => Err(ParseError::new(
            directive.pos.clone(),
            ParseErrorKind::IncludeArgs { count: args.len() },
        )),
    }
}

fn has_magic(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

/// Expands an include pattern as nginx does with glob(3): a pattern without
/// wildcards names one file (which must exist, checked when opened); with
/// wildcards it yields the existing matches, possibly none, sorted bytewise.
/// Directories matched by a wildcard in the last component are skipped.
/// Errors carry the directory that could not be listed.
fn glob(prefix: &Path, pattern: &str) -> Result<Vec<PathBuf>, (PathBuf, io::Error)> {
    let pattern_path = Path::new(pattern);
    if !has_magic(pattern) {
        return Ok(vec![prefix.join(pattern_path)]);
    }
    let mut candidates = vec![if pattern_path.is_absolute() {
        PathBuf::new()
    } else {
        prefix.to_path_buf()
    }];
    let mut last_was_magic = false;
    for component in pattern_path.components() {
        let name = component.as_os_str().to_string_lossy();
        last_was_magic = matches!(component, Component::Normal(_)) && has_magic(&name);
        if last_was_magic {
            candidates = matching_entries(&candidates, &name)?;
        } else {
            candidates.iter_mut().for_each(|c| c.push(component));
        }
    }
    candidates.retain(|path| keep_match(path, last_was_magic));
    candidates.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    Ok(candidates)
}

/// Entries of each directory in `dirs` whose name matches `pattern`.
/// Missing directories and non-directories just match nothing, as in glob(3).
fn matching_entries(dirs: &[PathBuf], pattern: &str) -> Result<Vec<PathBuf>, (PathBuf, io::Error)> {
    let pattern: Vec<char> = pattern.chars().collect();
    let mut out = Vec::new();
    for dir in dirs {
        // An empty prefix (main file given as a bare name) means the cwd.
        let listed = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let entries = match fs::read_dir(listed) {
            Ok(entries) => entries,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                continue
            }
            Err(e) => return Err((dir.clone(), e)),
        };
        for entry in entries {
            let name = entry.map_err(|e| (dir.clone(), e))?.file_name();
            let chars: Vec<char> = name.to_string_lossy().chars().collect();
            if name_matches(&pattern, &chars) {
                out.push(dir.join(name));
            }
        }
    }
    Ok(out)
}

/// Whether a final match is kept. A wildcard's match that is a directory is
/// skipped; one that cannot be stat'ed (a dangling symlink) is kept so that
/// opening it reports the error. Literal components after a wildcard only
/// yield paths that exist, as glob(3).
fn keep_match(path: &Path, last_was_magic: bool) -> bool {
    if last_was_magic {
        !fs::metadata(path).is_ok_and(|m| m.is_dir())
    } else {
        fs::symlink_metadata(path).is_ok()
    }
}

/// glob(3) name matching: wildcards never match a leading `.`.
fn name_matches(pattern: &[char], name: &[char]) -> bool {
    let explicit_dot = matches!(pattern, ['.', ..] | ['\\', '.', ..]);
    if name.first() == Some(&'.') && !explicit_dot {
        return false;
    }
    wildcard_match(pattern, name)
}

/// `*`, `?`, `[...]` (with `!`/`^` negation and ranges) and `\` escapes.
/// Iterative with single-star backtracking, so it is linear-ish and cannot
/// blow the stack.
fn wildcard_match(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // After a `*`: where the pattern resumes, and where the star's match ends.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&'*') {
            p += 1;
            star = Some((p, n));
            continue;
        }
        if let Some(next) = match_one(pattern, p, name[n]) {
            p = next;
            n += 1;
            continue;
        }
        match star {
            Some((resume, end)) => {
                // Let the star swallow one more character and retry.
                p = resume;
                n = end + 1;
                star = Some((resume, end + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == '*')
}

/// If the single-character element at `pattern[p]` matches `ch`, the index
/// of the element after it.
fn match_one(pattern: &[char], p: usize, ch: char) -> Option<usize> {
    match *pattern.get(p)? {
        '?' => Some(p + 1),
        '[' => match class_end(pattern, p) {
            Some(end) => class_matches(&pattern[p + 1..end - 1], ch).then_some(end),
            // An unclosed `[` is literal.
            None => (ch == '[').then_some(p + 1),
        },
        '\\' if p + 1 < pattern.len() => (pattern[p + 1] == ch).then_some(p + 2),
        c => (c == ch).then_some(p + 1),
    }
}

/// Index just past the `]` closing the class that opens at `pattern[open]`.
/// A `]` right after the `[` (or after `[!`) is a member, not the end.
fn class_end(pattern: &[char], open: usize) -> Option<usize> {
    let mut i = open + 1;
    if matches!(pattern.get(i), Some('!' | '^')) {
        i += 1;
    }
    if pattern.get(i) == Some(&']') {
        i += 1;
    }
    let close = pattern.get(i..)?.iter().position(|&c| c == ']')?;
    Some(i + close + 1)
}

/// `body` is the class without its brackets.
fn class_matches(body: &[char], ch: char) -> bool {
    let (negated, items) = match body {
        ['!' | '^', rest @ ..] => (true, rest),
        _ => (false, body),
    };
    let mut found = false;
    let mut i = 0;
    while i < items.len() {
        if items.get(i + 1) == Some(&'-') && i + 2 < items.len() {
            found |= (items[i]..=items[i + 2]).contains(&ch);
            i += 3;
        } else {
            found |= items[i] == ch;
            i += 1;
        }
    }
    found != negated
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let unique = format!(
                "rpx-nginx-{}-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed),
                name
            );
            let dir = std::env::temp_dir().join(unique);
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes `text` to `rel`, creating parent directories.
        fn write(&self, rel: &str, text: &str) -> PathBuf {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, text).unwrap();
            path
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.0.join(rel)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// `name arg...` of each directive, depth-first, for order checks.
    fn flatten(directives: &[Directive]) -> Vec<String> {
        let mut out = Vec::new();
        for d in directives {
            let mut line = d.name.clone();
            for arg in &d.args {
                line.push(' ');
                line.push_str(&arg.value);
            }
            out.push(line);
            if let Some(block) = &d.block {
                out.extend(flatten(block));
            }
        }
        out
    }

    fn load_err(path: &Path) -> String {
        load(path).expect_err("load should fail").to_string()
    }

    #[test]
    fn wildcard_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("*", "a.conf", true),
            ("*.conf", "a.conf", true),
            ("*.conf", "a.conf.bak", false),
            ("*.conf", ".conf", false),
            ("*", ".hidden", false),
            ("?", ".", false),
            (".*", ".hidden", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*b*c", "xxaybzzc", true),
            ("*a*b*c", "xxaybzz", false),
            ("**", "", true),
            ("", "", true),
            ("", "a", false),
            ("[abc].conf", "b.conf", true),
            ("[abc].conf", "d.conf", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("[^a-c]x", "dx", true),
            ("[]]", "]", true),
            ("[!]]", "a", true),
            ("[a-]", "-", true),
            ("[", "[", true),
            ("a[", "a[", true),
            ("[ab", "a", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("sites-*", "sites-enabled", true),
            ("é*", "état", true),
        ];
        for (pattern, name, want) in cases {
            let p: Vec<char> = pattern.chars().collect();
            let n: Vec<char> = name.chars().collect();
            assert_eq!(name_matches(&p, &n), *want, "{pattern:?} vs {name:?}");
        }
    }

    #[test]
    fn glob_orders_and_filters() {
        let tmp = TempDir::new("glob");
        for name in ["b.conf", "a.conf", "a-b.conf", "A.conf", "c.txt", ".h.conf"] {
            tmp.write(&format!("conf.d/{name}"), "");
        }
        fs::create_dir_all(tmp.path("conf.d/dir.conf")).unwrap();
        tmp.write("conf.d/sub/x.conf", "");
        let names = |pattern: &str| -> Vec<String> {
            glob(&tmp.0, pattern)
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(&tmp.0).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(
            names("conf.d/*.conf"),
            [
                "conf.d/A.conf",
                "conf.d/a-b.conf",
                "conf.d/a.conf",
                "conf.d/b.conf"
            ]
        );
        assert_eq!(
            names("conf.d/[ab].conf"),
            ["conf.d/a.conf", "conf.d/b.conf"]
        );
        assert_eq!(names("conf.d/?.txt"), ["conf.d/c.txt"]);
        assert_eq!(names("*/sub/x.conf"), ["conf.d/sub/x.conf"]);
        assert_eq!(names("conf.*/*/x.conf"), ["conf.d/sub/x.conf"]);
        assert_eq!(names("conf.d/nothing*"), Vec::<String>::new());
        assert_eq!(names("missing/*.conf"), Vec::<String>::new());
        assert_eq!(names("conf.d/a.conf/*"), Vec::<String>::new());
        assert_eq!(names("conf.d/a.conf"), ["conf.d/a.conf"]);
        assert_eq!(names("conf.d/missing.conf"), ["conf.d/missing.conf"]);
        let absolute = format!("{}/conf.d/b*", tmp.0.display());
        assert_eq!(
            glob(Path::new("/unused"), &absolute).unwrap(),
            [tmp.path("conf.d/b.conf")]
        );
    }

    #[test]
    fn splices_includes_in_place_with_own_positions() {
        let tmp = TempDir::new("splice");
        let main = tmp.write(
            "nginx.conf",
            "user www;\nevents {}\nhttp {\n    include mime.types;\n    include conf.d/*.conf;\n    server {\n        include snippets/loc.conf;\n    }\n}\n",
        );
        tmp.write("mime.types", "types {\n    text/html html;\n}\n");
        tmp.write("conf.d/20-b.conf", "b;\n");
        tmp.write("conf.d/10-a.conf", "a1;\na2;\n");
        tmp.write("snippets/loc.conf", "\n  location / { return 200; }\n");
        let dirs = load(&main).unwrap();
        assert_eq!(
            flatten(&dirs),
            [
                "user www",
                "events",
                "http",
                "types",
                "text/html html",
                "a1",
                "a2",
                "b",
                "server",
                "location /",
                "return 200"
            ]
        );
        let http = dirs[2].block.as_ref().unwrap();
        assert_eq!(&*http[0].pos.file, tmp.path("mime.types"));
        assert_eq!(
            http[2].pos.to_string(),
            format!("{}:2:1", tmp.path("conf.d/10-a.conf").display())
        );
        let location = &http[4].block.as_ref().unwrap()[0];
        assert_eq!(&*location.pos.file, tmp.path("snippets/loc.conf"));
        assert_eq!((location.pos.line, location.pos.col), (2, 3));
        assert_eq!(&*http[4].pos.file, main.as_path());
    }

    #[test]
    fn relative_patterns_resolve_against_main_file_dir() {
        let tmp = TempDir::new("relative");
        let main = tmp.write("nginx.conf", "include sites/site.conf;\n");
        tmp.write(
            "sites/site.conf",
            "server { include snippets/common.conf; }\n",
        );
        tmp.write("snippets/common.conf", "right;\n");
        // A decoy next to the including file must not be picked.
        tmp.write("sites/snippets/common.conf", "wrong;\n");
        let dirs = load(&main).unwrap();
        assert_eq!(flatten(&dirs), ["server", "right"]);
    }

    #[test]
    fn include_is_spliced_at_top_level_and_in_locations() {
        let tmp = TempDir::new("levels");
        let main = tmp.write(
            "nginx.conf",
            "include top.conf;\nhttp { server { location / { include loc.conf; } } }\n",
        );
        tmp.write("top.conf", "worker_processes 2;\n");
        tmp.write("loc.conf", "proxy_pass http://x;\n");
        let dirs = load(&main).unwrap();
        assert_eq!(
            flatten(&dirs),
            [
                "worker_processes 2",
                "http",
                "server",
                "location /",
                "proxy_pass http://x"
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn follows_sites_enabled_symlinks() {
        use std::os::unix::fs::symlink;
        let tmp = TempDir::new("symlinks");
        let main = tmp.write("nginx.conf", "http { include sites-enabled/*; }\n");
        let b = tmp.write("sites-available/b.example", "server { server_name b; }\n");
        let a = tmp.write("sites-available/a.example", "server { server_name a; }\n");
        tmp.write("sites-available/unused", "broken {\n");
        fs::create_dir_all(tmp.path("sites-enabled")).unwrap();
        symlink(&b, tmp.path("sites-enabled/b.example")).unwrap();
        symlink(&a, tmp.path("sites-enabled/a.example")).unwrap();
        let dirs = load(&main).unwrap();
        assert_eq!(
            flatten(&dirs),
            ["http", "server", "server_name a", "server", "server_name b"]
        );
        // Positions name the link, as nginx's messages do.
        let servers = dirs[0].block.as_ref().unwrap();
        assert_eq!(&*servers[0].pos.file, tmp.path("sites-enabled/a.example"));
    }

    #[cfg(unix)]
    #[test]
    fn dangling_symlink_is_an_error_naming_the_link() {
        use std::os::unix::fs::symlink;
        let tmp = TempDir::new("dangling");
        let main = tmp.write("nginx.conf", "http {\n  include sites-enabled/*;\n}\n");
        fs::create_dir_all(tmp.path("sites-enabled")).unwrap();
        symlink(
            tmp.path("sites-available/gone"),
            tmp.path("sites-enabled/gone"),
        )
        .unwrap();
        let want = format!(
            "{}:2:3: open() \"{}\" failed (No such file or directory)",
            main.display(),
            tmp.path("sites-enabled/gone").display()
        );
        assert_eq!(load_err(&main), want);
    }

    #[test]
    fn missing_plain_file_is_an_error_at_the_include() {
        let tmp = TempDir::new("missing");
        let main = tmp.write("nginx.conf", "events {}\n\n  include mime.types;\n");
        let want = format!(
            "{}:3:3: open() \"{}\" failed (No such file or directory)",
            main.display(),
            tmp.path("mime.types").display()
        );
        assert_eq!(load_err(&main), want);
    }

    #[test]
    fn missing_main_file_names_only_the_file() {
        let tmp = TempDir::new("nomain");
        let main = tmp.path("nginx.conf");
        let want = format!(
            "{0}: open() \"{0}\" failed (No such file or directory)",
            main.display()
        );
        assert_eq!(load_err(&main), want);
    }

    #[test]
    fn glob_matching_nothing_is_fine() {
        let tmp = TempDir::new("nomatch");
        let main = tmp.write(
            "nginx.conf",
            "http { include conf.d/*.conf; include none/*/x; }\n",
        );
        fs::create_dir_all(tmp.path("conf.d")).unwrap();
        let dirs = load(&main).unwrap();
        assert_eq!(flatten(&dirs), ["http"]);
    }

    #[test]
    fn include_cycle_is_reported_with_chain() {
        let tmp = TempDir::new("cycle");
        let main = tmp.write("nginx.conf", "include a.conf;\n");
        let a = tmp.write("a.conf", "include b.conf;\n");
        let b = tmp.write("b.conf", "x;\n include a.conf;\n");
        let want = format!(
            "{}:2:2: include cycle: \"{}\" -> \"{}\" -> \"{}\"",
            b.display(),
            a.display(),
            b.display(),
            a.display()
        );
        assert_eq!(load_err(&main), want);
    }

    #[test]
    fn self_include_is_a_cycle() {
        let tmp = TempDir::new("selfcycle");
        let main = tmp.write("nginx.conf", "include nginx.conf;\n");
        let want = format!("{0}:1:1: include cycle: \"{0}\" -> \"{0}\"", main.display());
        assert_eq!(load_err(&main), want);
    }

    #[test]
    fn same_file_twice_is_not_a_cycle() {
        let tmp = TempDir::new("twice");
        let main = tmp.write(
            "nginx.conf",
            "server { include ssl.conf; }\nserver { include ssl.conf; }\n",
        );
        tmp.write("ssl.conf", "ssl on;\n");
        assert_eq!(
            flatten(&load(&main).unwrap()),
            ["server", "ssl on", "server", "ssl on"]
        );
    }

    #[test]
    fn include_argument_errors() {
        let tmp = TempDir::new("args");
        let cases = [
            (
                "include;\n",
                "1:1: invalid number of arguments in \"include\" directive",
            ),
            (
                "http {\n include a b;\n}\n",
                "2:2: invalid number of arguments in \"include\" directive",
            ),
            (
                "include a { }\n",
                "1:1: directive \"include\" is not terminated by \";\"",
            ),
        ];
        for (i, (src, want)) in cases.iter().enumerate() {
            let main = tmp.write(&format!("{i}.conf"), src);
            assert_eq!(load_err(&main), format!("{}:{want}", main.display()));
        }
    }

    #[test]
    fn parse_errors_in_included_files_have_their_positions() {
        let tmp = TempDir::new("nested-error");
        let main = tmp.write("nginx.conf", "http { include conf.d/*.conf; }\n");
        let bad = tmp.write("conf.d/bad.conf", "server {\n  listen 80\n}\n");
        assert_eq!(
            load_err(&main),
            format!("{}:3:1: unexpected \"}}\"", bad.display())
        );
    }

    #[test]
    fn include_depth_is_capped() {
        let tmp = TempDir::new("depth");
        for i in 0..40 {
            tmp.write(&format!("{i}.conf"), &format!("include {}.conf;\n", i + 1));
        }
        let err = load(&tmp.path("0.conf")).unwrap_err();
        assert!(
            matches!(err.kind, ParseErrorKind::IncludeDepth { limit: 32 }),
            "{err}"
        );
        assert_eq!(&*err.pos.file, tmp.path("31.conf"));
    }

    #[test]
    fn file_count_is_capped() {
        let tmp = TempDir::new("many");
        // Each include of the directory pulls in 40 files; 30 of them exceed 1024.
        for i in 0..40 {
            tmp.write(&format!("d/{i:02}.conf"), "x;\n");
        }
        let main = tmp.write("nginx.conf", &"include d/*.conf;\n".repeat(30));
        let err = load(&main).unwrap_err();
        assert!(
            matches!(err.kind, ParseErrorKind::TooManyFiles { limit: 1024 }),
            "{err}"
        );
    }

    #[test]
    fn nesting_across_files_is_capped() {
        let tmp = TempDir::new("deepnest");
        let half = MAX_NESTING / 2 + 1;
        let nest = |inner: &str| format!("{}{inner}{}", "a {".repeat(half), "}".repeat(half));
        let main = tmp.write("nginx.conf", &nest("include inner.conf;"));
        tmp.write("inner.conf", &nest("b;"));
        let err = load(&main).unwrap_err();
        assert!(matches!(err.kind, ParseErrorKind::TooDeep { .. }), "{err}");
        assert_eq!(&*err.pos.file, tmp.path("inner.conf"));
    }

    #[test]
    fn full_config_with_mime_types_and_sites() {
        let tmp = TempDir::new("full");
        let main = tmp.write(
            "nginx.conf",
            r#"user www-data;
worker_processes auto;
pid /run/nginx.pid;

events {
    worker_connections 768;
}

http {
    include mime.types;
    default_type application/octet-stream;
    map $http_upgrade $connection_upgrade { default upgrade; '' close; }
    include conf.d/*.conf;
    include sites-enabled/*;
}
"#,
        );
        tmp.write(
            "mime.types",
            "types {\n    text/html html htm;\n    image/png png;\n}\n",
        );
        tmp.write("conf.d/gzip.conf", "gzip on; # compress\n");
        tmp.write(
            "sites-enabled/default",
            "server {\n    listen 80 default_server;\n    location ~ \\.php$ { deny all; } # no php\n}\n",
        );
        let dirs = load(&main).unwrap();
        assert_eq!(
            flatten(&dirs),
            [
                "user www-data",
                "worker_processes auto",
                "pid /run/nginx.pid",
                "events",
                "worker_connections 768",
                "http",
                "types",
                "text/html html htm",
                "image/png png",
                "default_type application/octet-stream",
                "map $http_upgrade $connection_upgrade",
                "default upgrade",
                " close",
                "gzip on",
                "server",
                "listen 80 default_server",
                r"location ~ \.php$",
                "deny all",
            ]
        );
    }
}
