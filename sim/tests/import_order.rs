//! No import circles (docs/design.md D63): the modules of the library (`src/`), of the
//! binary (`src/main.rs` and its modules) and of the simulator (`sim/src/`) import one
//! another in one order. The test reads every `crate::...` and `super::...` path of
//! their source files (grouped `use crate::{a, b::{c}}` too), draws an edge from the
//! top-level module a file belongs to, to the top-level module each path names, and
//! fails on a cycle, printing it with the file and path behind each edge. Inside each
//! directory module it does the same for the sibling files. Run it alone with
//! `cargo test --release -p revenant-sim --test import_order`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// An import: from module, to module, where it was seen (file and path text).
type Edges = BTreeMap<String, BTreeMap<String, String>>;

/// The source without comments, and with every string and char literal emptied, so that
/// a `crate::` in prose or in a message is not read as an import.
fn code_of(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            while i < bytes.len() {
                if text[i..].starts_with("/*") {
                    depth += 1;
                    i += 2;
                } else if text[i..].starts_with("*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if let Some(len) = raw_string_len(rest) {
            out.push_str("\"\"");
            i += len;
        } else if rest.starts_with('"') {
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if let Some(len) = char_literal_len(rest) {
            out.push_str("' '");
            i += len;
        } else {
            let c = rest.chars().next().expect("not at the end");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of a raw string literal (`r"..."`, `r#"..."#`, ...) at the start of `s`.
fn raw_string_len(s: &str) -> Option<usize> {
    let s2 = s.strip_prefix("br").or_else(|| s.strip_prefix('r'))?;
    let hashes = s2.len() - s2.trim_start_matches('#').len();
    let body = s2[hashes..].strip_prefix('"')?;
    let close = format!("\"{}", "#".repeat(hashes));
    let end = body.find(&close)?;
    Some(s.len() - body.len() + end + close.len())
}

/// The length of a char literal (`'a'`, `'\n'`, `'\''`) at the start of `s`; `None`
/// for a lifetime.
fn char_literal_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('\'')?;
    let mut chars = rest.char_indices();
    let (_, first) = chars.next()?;
    let after = if first == '\\' {
        let (_, escaped) = chars.next()?;
        if escaped == 'u' {
            rest.find('}')? + 1
        } else {
            1 + escaped.len_utf8()
        }
    } else {
        first.len_utf8()
    };
    rest[after..].starts_with('\'').then_some(after + 2)
}

/// The paths a source names through `crate::` or `super::`, resolved against the
/// module path of its file (`module`), as module paths from the crate root, each with
/// the text it came from. A group `crate::{a::X, b::{Y, Z}}` gives `a::X` and `b`
/// (what follows a nested group's brace is not needed to name a module). A `super::` in
/// an inline module (`mod tests`) is read as the file's: one level too high, which can
/// only miss an edge between sibling files, never invent one between top-level modules.
fn paths_named(code: &str, module: &[String]) -> Vec<(Vec<String>, String)> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let preceded = i > 0 && {
            let b = bytes[i - 1];
            b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b == b':'
        };
        let (base, mut j) = if !preceded && rest.starts_with("crate::") {
            (Vec::new(), i + "crate::".len())
        } else if !preceded && rest.starts_with("super::") {
            let mut j = i;
            let mut ups = 0;
            while code[j..].starts_with("super::") {
                ups += 1;
                j += "super::".len();
            }
            (module[..module.len().saturating_sub(ups)].to_vec(), j)
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let start = i;
        if code[j..].starts_with('{') {
            let mut depth = 0;
            let open = j;
            while j < code.len() {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let inner = &code[open + 1..j.min(code.len())];
            for item in split_top_level(inner) {
                let segments = segments_of(item.trim());
                if segments.first().is_some_and(|s| s != "self") {
                    let mut path = base.clone();
                    path.extend(segments);
                    out.push((path, code[start..=j.min(code.len() - 1)].to_owned()));
                }
            }
        } else {
            let segments = segments_of(&code[j..]);
            if !segments.is_empty() {
                j += segments.iter().map(String::len).sum::<usize>() + 2 * (segments.len() - 1);
                let mut path = base.clone();
                path.extend(segments);
                out.push((path, code[start..j].to_owned()));
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// The items of a group's inside, split at its top-level commas.
fn split_top_level(inner: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut depth = 0;
    let mut from = 0;
    for (at, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[from..at]);
                from = at + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[from..]);
    items
}

/// The leading `a::b::c` identifiers of `text`.
fn segments_of(text: &str) -> Vec<String> {
    let mut segments = Vec::new();
    let mut rest = text;
    loop {
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        segments.push(rest[..len].to_owned());
        match rest[len..].strip_prefix("::") {
            Some(next) => rest = next,
            None => break,
        }
    }
    segments
}

/// The modules a root file (`lib.rs`, `main.rs`, `mod.rs`) declares with `mod NAME;`.
fn declared_modules(root: &Path) -> BTreeSet<String> {
    let code = code_of(&std::fs::read_to_string(root).expect("a readable root file"));
    code.lines()
        .filter_map(|line| {
            let line = line.trim();
            let line = line
                .strip_prefix("pub(crate) ")
                .or_else(|| line.strip_prefix("pub "))
                .unwrap_or(line);
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// Every `.rs` file below `dir`, sorted.
#[allow(clippy::disallowed_methods)] // the source tree, read by a test: not simulated code
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("a readable source directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module path of a file below the crate's source directory `src`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).expect("a file below src");
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if !matches!(stem, "mod" | "lib" | "main") {
        parts.push(stem.to_owned());
    }
    parts
}

/// The imports between the modules of one crate: between its top-level modules, and
/// between the sibling files of each directory module (keyed `dir/a` -> `dir/b`).
fn edges_of(src: &Path, root: &str) -> Edges {
    let top = declared_modules(&src.join(root));
    let mut edges = Edges::new();
    for file in rust_files(src) {
        let module = module_of(src, &file);
        let Some(first) = module.first() else {
            continue;
        };
        if !top.contains(first) {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(&file).expect("a readable file"));
        let shown = file
            .strip_prefix(src.parent().unwrap_or(src))
            .unwrap_or(&file);
        for (path, text) in paths_named(&code, &module) {
            let Some(target) = path.first() else { continue };
            let evidence = || format!("{} ({text})", shown.display());
            if target != first && top.contains(target) {
                edges
                    .entry(first.clone())
                    .or_default()
                    .entry(target.clone())
                    .or_insert_with(evidence);
            }
            // Siblings of one directory module: a/x.rs naming a::y.
            if module.len() >= 2 && path.len() >= 2 && path[0] == module[0] {
                let dir = src.join(&module[0]);
                let sibling = &path[1];
                let is_module = dir.join(format!("{sibling}.rs")).is_file()
                    || dir.join(sibling).join("mod.rs").is_file();
                if sibling != &module[1] && is_module {
                    edges
                        .entry(format!("{}/{}", module[0], module[1]))
                        .or_default()
                        .entry(format!("{}/{sibling}", module[0]))
                        .or_insert_with(evidence);
                }
            }
        }
    }
    edges
}

/// A cycle of `edges`, if there is one, as the modules in order.
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &Edges,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flat_map(|m| m.keys()) {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).expect("on the stack");
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, edges, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(cycle) = visit(node, edges, &mut state, &mut stack) {
                return Some(cycle);
            }
        }
    }
    None
}

/// What a cycle is made of, one edge a line with the file and path behind it.
fn explain(cycle: &[String], edges: &Edges) -> String {
    cycle
        .windows(2)
        .map(|pair| {
            format!(
                "  {} -> {}: {}\n",
                pair[0], pair[1], edges[&pair[0]][&pair[1]]
            )
        })
        .collect()
}

/// Every module `from` reaches through imports.
fn reached(edges: &Edges, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(node) = todo.pop() {
        for next in edges.get(&node).into_iter().flat_map(|m| m.keys()) {
            if seen.insert(next.clone()) {
                todo.push(next.clone());
            }
        }
    }
    seen
}

fn sim_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn lib_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../src")
}

fn assert_no_cycle(edges: &Edges, what: &str) {
    assert!(
        edges.len() > 3,
        "{what}: the test found almost no imports ({edges:?}): its reading is broken"
    );
    if let Some(cycle) = find_cycle(edges) {
        panic!(
            "{what} has an import circle (docs/design.md D63): {}\n{}",
            cycle.join(" -> "),
            explain(&cycle, edges)
        );
    }
}

#[test]
fn the_library_has_no_import_circle() {
    assert_no_cycle(&edges_of(&lib_src(), "lib.rs"), "src/ (the library)");
}

#[test]
fn the_binary_has_no_import_circle() {
    let edges = edges_of(&lib_src(), "main.rs");
    if let Some(cycle) = find_cycle(&edges) {
        panic!(
            "src/main.rs's modules have an import circle: {}\n{}",
            cycle.join(" -> "),
            explain(&cycle, &edges)
        );
    }
}

#[test]
fn the_simulator_has_no_import_circle() {
    assert_no_cycle(&edges_of(&sim_src(), "lib.rs"), "sim/src/ (the simulator)");
}

/// docs/design.md D31: the observations and the oracles stand below the driver; the
/// host layout below everything.
#[test]
fn observations_and_oracles_do_not_reach_the_driver() {
    let edges = edges_of(&sim_src(), "lib.rs");
    for low in ["observations", "oracles"] {
        let above: Vec<_> = reached(&edges, low)
            .into_iter()
            .filter(|m| {
                ["cluster", "driver", "driver_hosts", "apply_fault", "sweep"].contains(&m.as_str())
            })
            .collect();
        assert!(
            above.is_empty(),
            "{low} reaches {above:?} (docs/design.md D31)"
        );
    }
    assert!(
        reached(&edges, "hosts").is_empty(),
        "hosts imports {:?}: it is the bottom (docs/design.md D62)",
        reached(&edges, "hosts")
    );
}

/// The reader finds what it must: a plain path, a `super::` path, a group, and nothing
/// in comments or strings.
#[test]
fn the_reader_finds_imports_and_only_imports() {
    let code = code_of(
        "use crate::a::X;\n// crate::commented\nlet s = \"crate::quoted\";\nuse crate::{b::{C, D}, e};\nfn f() { super::super::g::h(); let c = '\"'; crate::i::j() }",
    );
    let module = vec!["m".to_owned(), "n".to_owned()];
    let found: BTreeSet<Vec<String>> = paths_named(&code, &module)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let want: BTreeSet<Vec<String>> = [
        vec!["a", "X"],
        vec!["b"],
        vec!["e"],
        vec!["g", "h"],
        vec!["i", "j"],
    ]
    .into_iter()
    .map(|p| p.into_iter().map(str::to_owned).collect())
    .collect();
    assert_eq!(found, want);
    let mut edges = Edges::new();
    for (a, b) in [("x", "y"), ("y", "z"), ("z", "x")] {
        edges
            .entry(a.to_owned())
            .or_default()
            .insert(b.to_owned(), String::new());
    }
    assert_eq!(
        find_cycle(&edges),
        Some(vec!["x".into(), "y".into(), "z".into(), "x".into()])
    );
}
