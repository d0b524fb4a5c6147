//! The layers of `ringtail-core` and its crate dependencies, checked on the source: a module
//! may use modules of its own layer or below, never above, and no modules (files) use each
//! other in a circle. Layers, bottom up (ARCHITECTURE.md):
//!
//! 0. foundations: `config`, `limits`, `logging`, `metrics`
//! 1. the shard runtime: `runtime` (executor state, cross-core queues, partition table, routing)
//! 2. (no module: the error table sits with the broker, whose errors it maps)
//! 3. the broker: `broker` (per-shard context, services, the messages between shards); the
//!    error table `errors` (domain errors, the broker's among them, to Kafka codes), used by
//!    the Kafka API handlers and never by the broker, which returns domain errors
//! 4. the Kafka API handlers: `kafka`
//! 5. the server: `server`; the command-line tools `group_cli`, `cluster_cli`, `metadata_cli`; `main`
//!
//! A module's dependencies are the `crate::`, `super::` and `self::` paths it names (in `use`
//! or inline) and the paths through its own child modules; declaring a child (`mod x;`) is
//! not a use of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LAYERS: &[(&str, usize)] = &[
    ("config", 0),
    ("config_keys", 0),
    ("limits", 0),
    ("logging", 0),
    ("metrics", 0),
    ("runtime", 1),
    ("errors", 3),
    ("broker", 3),
    ("kafka", 4),
    ("server", 5),
    ("group_cli", 5),
    ("cluster_cli", 5),
    ("metadata_cli", 5),
    ("main", 6),
];

/// Crates of the workspace by level: a crate may depend only on crates of a lower level.
const CRATES: &[(&str, usize)] =
    &[("log", 0), ("net", 0), ("tuning", 0), ("replication", 1), ("core", 2), ("bench-harness", 3), ("perf", 3)];

/// Module path (`["broker", "group"]`) of every source file of the crate.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read source dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src").with_extension("");
            let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The text of a file without comments, string literals and `#[cfg(test)]` modules.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => in_string = true,
            '\'' => {
                // A char literal ('x', '\n') or a lifetime ('a): skip a literal, keep a lifetime.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') || rest.chars().nth(1) == Some('\'') {
                    for c in chars.by_ref() {
                        if c == '\'' {
                            break;
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Every path the code names that starts with `crate`, `super`, `self` or a child module,
/// with `use` groups (`use crate::a::{b, c::d}`) expanded.
fn paths_named(code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let tokens: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < tokens.len() {
        let start_ok = i == 0 || !(tokens[i - 1].is_alphanumeric() || tokens[i - 1] == '_' || tokens[i - 1] == ':');
        if !start_ok || !(tokens[i].is_alphabetic() || tokens[i] == '_') {
            i += 1;
            continue;
        }
        let (path, end) = read_path(&tokens, i);
        let first = path.first().map(String::as_str).unwrap_or("");
        let group_follows = tokens.get(end) == Some(&':') && tokens.get(end + 2) == Some(&'{');
        let long_enough = path.len() > 1 || group_follows;
        if long_enough && (matches!(first, "crate" | "super" | "self") || children.contains(first)) {
            out.extend(expand(&path, &tokens, end));
        }
        i = end.max(i + 1);
    }
    out
}

/// Reads `a::b::c` from `i`; returns the segments and where it stopped.
fn read_path(tokens: &[char], mut i: usize) -> (Vec<String>, usize) {
    let mut segments = vec![String::new()];
    while i < tokens.len() {
        let c = tokens[i];
        if c.is_alphanumeric() || c == '_' {
            segments.last_mut().expect("one").push(c);
            i += 1;
        } else if c == ':' && tokens.get(i + 1) == Some(&':') && tokens.get(i + 2) != Some(&'{') {
            segments.push(String::new());
            i += 2;
        } else {
            break;
        }
    }
    segments.retain(|s| !s.is_empty());
    (segments, i)
}

/// A `use` group after `path::{`: each member joined to the path.
fn expand(path: &[String], tokens: &[char], end: usize) -> Vec<Vec<String>> {
    if !(tokens.get(end) == Some(&':') && tokens.get(end + 2) == Some(&'{')) {
        return vec![path.to_vec()];
    }
    let mut depth = 0;
    let mut j = end + 2;
    let mut inner = String::new();
    while j < tokens.len() {
        match tokens[j] {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            _ => {}
        }
        if depth >= 1 && !(depth == 1 && tokens[j] == '{') {
            inner.push(tokens[j]);
        }
        j += 1;
    }
    let mut out = Vec::new();
    let mut level = 0;
    let mut member = String::new();
    for c in inner.chars().chain(std::iter::once(',')) {
        match c {
            '{' => level += 1,
            '}' => level -= 1,
            _ => {}
        }
        if c == ',' && level == 0 {
            let m = member.trim().to_string();
            if !m.is_empty() {
                let tokens: Vec<char> = m.chars().collect();
                let (tail, tail_end) = read_path(&tokens, 0);
                for t in expand(&tail, &tokens, tail_end) {
                    let mut full = path.to_vec();
                    full.extend(t);
                    out.push(full);
                }
            }
            member.clear();
        } else {
            member.push(c);
        }
    }
    out
}

/// The module a path names, resolved from `module`: the longest known module prefix.
fn target(module: &[String], path: &[String], known: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    let mut absolute: Vec<String> = match path[0].as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module[..module.len().saturating_sub(1)].to_vec(),
        _ => module.to_vec(),
    };
    let rest = match path[0].as_str() {
        "crate" | "self" | "super" => &path[1..],
        _ => path,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|s| s.as_str() == "super") {
        absolute.pop();
        rest.next();
    }
    absolute.extend(rest.cloned());
    (0..=absolute.len()).rev().map(|n| absolute[..n].to_vec()).find(|m| !m.is_empty() && known.contains_key(m))
}

fn layer_of(module: &[String]) -> usize {
    let top = module.first().map(String::as_str).unwrap_or("main");
    LAYERS.iter().find(|(name, _)| *name == top).map(|(_, l)| *l).unwrap_or_else(|| {
        panic!("module `{top}` has no layer: add it to LAYERS here and to ARCHITECTURE.md's codemap")
    })
}

fn edges() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut known = modules(&src);
    // `main.rs` is the crate root: its module path is empty; name it `main`.
    let root = known.remove(&vec!["main".to_string()]).expect("src/main.rs");
    let mut graph = BTreeMap::new();
    for (module, path) in known.iter().map(|(m, p)| (m.clone(), p.clone())).chain([(Vec::new(), root)]) {
        let code = code_of(&std::fs::read_to_string(&path).expect("read source"));
        let children: BTreeSet<String> = known
            .keys()
            .filter(|m| m.len() == module.len() + 1 && m.starts_with(&module))
            .map(|m| m.last().expect("child").clone())
            .collect();
        let mut uses = BTreeSet::new();
        for p in paths_named(&code, &children) {
            if let Some(t) = target(&module, &p, &known) {
                uses.insert(t);
            }
        }
        uses.remove(&module);
        let name = if module.is_empty() { vec!["main".to_string()] } else { module };
        graph.insert(name, uses);
    }
    graph
}

#[test]
fn no_module_uses_a_layer_above_its_own() {
    let mut wrong = Vec::new();
    for (module, uses) in edges() {
        for used in uses {
            if layer_of(&used) > layer_of(&module) {
                wrong.push(format!("{} uses {} (a layer above)", module.join("::"), used.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports pointing up:\n{}", wrong.join("\n"));
}

#[test]
fn no_modules_use_each_other_in_a_circle() {
    let graph = edges();
    // Tarjan's strongly connected components; any with two or more modules is a circle.
    struct State<'a> {
        graph: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        circles: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Vec<String>) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else { continue };
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[w].min(s.low[v]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.index[w].min(s.low[v]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.join("::"));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.circles.push(component);
            }
        }
    }
    let mut state = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        circles: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    let report: Vec<String> = state
        .circles
        .iter()
        .map(|c| {
            let members: BTreeSet<Vec<String>> =
                c.iter().map(|m| m.split("::").map(str::to_string).collect()).collect();
            let uses: Vec<String> = members
                .iter()
                .flat_map(|m| {
                    graph[m]
                        .iter()
                        .filter(|u| members.contains(*u))
                        .map(move |u| format!("{} -> {}", m.join("::"), u.join("::")))
                })
                .collect();
            format!("{}: {}", c.join(", "), uses.join("; "))
        })
        .collect();
    assert!(report.is_empty(), "modules in a circle:\n{}", report.join("\n"));
}

#[test]
fn crate_dependencies_point_down() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let level = |name: &str| CRATES.iter().find(|(c, _)| *c == name).map(|(_, l)| *l);
    let mut wrong = Vec::new();
    for (krate, own) in CRATES {
        let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml")).expect("read Cargo.toml");
        for line in manifest.lines() {
            let Some(dep) = line.split("path = \"../").nth(1).and_then(|rest| rest.split('"').next()) else { continue };
            match level(dep) {
                Some(l) if l < *own => {}
                Some(_) => wrong.push(format!("{krate} depends on {dep}, which is not below it")),
                None => wrong.push(format!("{krate} depends on {dep}, which has no level here")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The checker itself: a planted circle and an upward use are found.
#[test]
fn the_checks_can_fail() {
    let known: BTreeMap<Vec<String>, PathBuf> =
        [vec!["runtime".to_string()], vec!["kafka".to_string()], vec!["kafka".to_string(), "fetch".to_string()]]
            .into_iter()
            .map(|m| (m, PathBuf::new()))
            .collect();
    let children: BTreeSet<String> = ["fetch".to_string()].into();
    let code = code_of(
        "use crate::{runtime::X, kafka::fetch::{a, b}};\n// crate::server::Y\nlet s = \"crate::main\"; fetch::go();",
    );
    let named = paths_named(&code, &children);
    let targets: BTreeSet<Vec<String>> =
        named.iter().filter_map(|p| target(&["kafka".to_string()], p, &known)).collect();
    assert_eq!(
        targets,
        [vec!["runtime".to_string()], vec!["kafka".to_string(), "fetch".to_string()]].into_iter().collect(),
        "{named:?}"
    );
    assert!(layer_of(&["kafka".to_string()]) > layer_of(&["runtime".to_string()]));
}
