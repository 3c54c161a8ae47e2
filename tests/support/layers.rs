//! Reads a crate's `src/` into a graph of imports between modules, and the layer table of
//! `docs/architecture.md`; used by `tests/layers.rs`.
//!
//! An import is any `crate::…` or `super::…` path outside comments and string literals (in
//! `use` items and in expressions alike), resolved to the longest module it names. A module
//! using its own ancestor's items, or an ancestor using its descendants', is not an edge: a
//! parent and its children are one unit, ordered by the parent's `mod` lines. A `super::`
//! inside an inline module (`mod tests { use super::*; }`) resolves one level too high, which
//! only ever lands on an ancestor and so adds no edge.

use std::{
    collections::{BTreeMap, BTreeSet},
    io,
    path::Path,
};

/// Modules (`a::b`) and the paths each one names.
#[derive(Default)]
pub struct Graph {
    paths: BTreeMap<String, Vec<Vec<String>>>,
}

impl Graph {
    /// Reads every `.rs` file under `src` (the crate root `lib.rs` and the binary's `main.rs`
    /// are modules `lib` and `main`).
    pub fn read(src: &Path) -> io::Result<Graph> {
        let mut graph = Graph::default();
        graph.read_dir(src, src)?;
        Ok(graph)
    }

    fn read_dir(&mut self, root: &Path, dir: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                self.read_dir(root, &path)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(root).expect("under root");
                let name = relative.with_extension("");
                let name = name.to_string_lossy().replace('\\', "/");
                let name = name.strip_suffix("/mod").unwrap_or(&name).to_string();
                self.add_file(&name, &std::fs::read_to_string(&path)?);
            }
        }
        Ok(())
    }

    /// Adds the file of module `name` (slash-separated, as its path under `src/`).
    pub fn add_file(&mut self, name: &str, text: &str) {
        let module: Vec<String> = name.split('/').map(str::to_string).collect();
        let paths = import_paths(&code_only(text))
            .into_iter()
            .filter_map(|(supers, path)| absolute(&module, supers, path))
            .collect();
        self.paths.insert(module.join("::"), paths);
    }

    /// Every module.
    pub fn modules(&self) -> impl Iterator<Item = &str> {
        self.paths.keys().map(String::as_str)
    }

    /// The modules `module` imports (its ancestors and descendants left out).
    pub fn imports_of(&self, module: &str) -> Vec<String> {
        let mut targets = BTreeSet::new();
        for path in self.paths.get(module).into_iter().flatten() {
            let Some(target) = self.longest_module(path) else {
                continue;
            };
            if !related(module, &target) {
                targets.insert(target);
            }
        }
        targets.into_iter().collect()
    }

    fn longest_module(&self, path: &[String]) -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|candidate| self.paths.contains_key(candidate))
    }

    /// Every import as (from, to).
    pub fn edges(&self) -> Vec<(String, String)> {
        self.modules()
            .flat_map(|from| {
                self.imports_of(from)
                    .into_iter()
                    .map(move |to| (from.to_string(), to))
            })
            .collect()
    }

    /// The cycles of the graph whose nodes are `key(module)`: each a line naming its members.
    pub fn cycles(&self, key: impl Fn(&str) -> String) -> Vec<String> {
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for module in self.modules() {
            edges.entry(key(module)).or_default();
        }
        for (from, to) in self.edges() {
            let (from, to) = (key(&from), key(&to));
            if from != to {
                edges.entry(from).or_default().insert(to);
            }
        }
        strongly_connected(&edges)
            .into_iter()
            .filter(|component| component.len() > 1)
            .map(|component| describe_cycle(&component, &edges))
            .collect()
    }
}

/// `a` is `b`, or one contains the other.
fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// A component's members with the imports between them, so the fix is visible.
fn describe_cycle(component: &[String], edges: &BTreeMap<String, BTreeSet<String>>) -> String {
    let members: BTreeSet<&String> = component.iter().collect();
    let arrows: Vec<String> = component
        .iter()
        .flat_map(|from| {
            edges[from]
                .iter()
                .filter(|to| members.contains(to))
                .map(move |to| format!("{from} → {to}"))
        })
        .collect();
    format!("  {{{}}}: {}", component.join(", "), arrows.join("; "))
}

/// Tarjan's strongly connected components.
fn strongly_connected(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let n = state.index.len();
        state.index.insert(node, n);
        state.low.insert(node, n);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.edges.get(node).into_iter().flatten() {
            if !state.index.contains_key(next.as_str()) {
                visit(state, next);
                let low = state.low[node].min(state.low[next.as_str()]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next.as_str()) {
                let low = state.low[node].min(state.index[next.as_str()]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.push(member.to_string());
                if member == node {
                    break;
                }
            }
            component.sort();
            state.found.push(component);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in edges.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// `module`'s path for `super::` × `supers` + `path`, or for `crate::` + `path` when
/// `supers` is `None`.
fn absolute(module: &[String], supers: Option<usize>, path: Vec<String>) -> Option<Vec<String>> {
    let base = match supers {
        None => Vec::new(),
        Some(n) if n <= module.len() => module[..module.len() - n].to_vec(),
        Some(_) => return None,
    };
    Some(base.into_iter().chain(path).collect())
}

/// The text with comments and the contents of string and char literals blanked out.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = &chars[i..];
        if rest.starts_with(&['/', '/']) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if rest.starts_with(&['/', '*']) {
            let end = find(&chars, i + 2, &['*', '/']).map_or(chars.len(), |at| at + 2);
            i = end;
            out.push(' ');
        } else if let Some(end) = raw_string_end(&chars, i) {
            i = end;
            out.push_str("\"\"");
        } else if chars[i] == '"' {
            i = string_end(&chars, i + 1);
            out.push_str("\"\"");
        } else if chars[i] == '\'' && is_char_literal(rest) {
            i = string_end_with(&chars, i + 1, '\'');
            out.push_str("' '");
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn find(chars: &[char], from: usize, needle: &[char]) -> Option<usize> {
    (from..chars.len()).find(|&at| chars[at..].starts_with(needle))
}

/// After an opening quote at `from - 1`: the index past the closing one.
fn string_end(chars: &[char], from: usize) -> usize {
    string_end_with(chars, from, '"')
}

fn string_end_with(chars: &[char], mut i: usize, quote: char) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    chars.len()
}

/// `'x'` or `'\n'`, as opposed to a lifetime `'a`.
fn is_char_literal(rest: &[char]) -> bool {
    matches!(rest, ['\'', '\\', ..] | ['\'', _, '\'', ..])
}

/// A raw string `r"…"`, `r#"…"#` or `br"…"` starting at `at`: the index past its end.
fn raw_string_end(chars: &[char], at: usize) -> Option<usize> {
    let previous_is_ident = at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_');
    let mut i = at;
    if chars.get(i) == Some(&'b') {
        i += 1;
    }
    if previous_is_ident || chars.get(i) != Some(&'r') {
        return None;
    }
    i += 1;
    let hashes = chars[i..].iter().take_while(|&&c| c == '#').count();
    i += hashes;
    if chars.get(i) != Some(&'"') {
        return None;
    }
    let closing: Vec<char> = std::iter::once('"')
        .chain(std::iter::repeat_n('#', hashes))
        .collect();
    Some(find(chars, i + 1, &closing).map_or(chars.len(), |end| end + closing.len()))
}

/// Every `crate::…` and `super::…` path in `code`, use-tree groups expanded: for each, the
/// number of `super`s (`None` for `crate`) and the segments after them.
fn import_paths(code: &str) -> Vec<(Option<usize>, Vec<String>)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(offset) = code[at..].find(['c', 's']) {
        let start = at + offset;
        at = start + 1;
        let boundary = start == 0
            || !(bytes[start - 1].is_ascii_alphanumeric() || b"_$:".contains(&bytes[start - 1]));
        if !boundary {
            continue;
        }
        let rest = &code[start..];
        let (supers, after) = if let Some(after) = rest.strip_prefix("crate::") {
            (None, after)
        } else if rest.starts_with("super::") {
            let mut after = rest;
            let mut n = 0;
            while let Some(next) = after.strip_prefix("super::") {
                n += 1;
                after = next.trim_start();
            }
            (Some(n), after)
        } else {
            continue;
        };
        let mut parser = TreeParser { text: after, at: 0 };
        for path in parser.tree() {
            found.push((supers, path));
        }
        at = start + (rest.len() - after.len()) + parser.at.max(1);
    }
    found
}

/// A use tree: `a::b`, `a::{b, c::d}`, `a::*`, `a::b as c`.
struct TreeParser<'a> {
    text: &'a str,
    at: usize,
}

impl TreeParser<'_> {
    fn skip_space(&mut self) {
        while self.text[self.at..].starts_with(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_space();
        let rest = &self.text[self.at..];
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (len > 0).then(|| {
            self.at += len;
            rest[..len].to_string()
        })
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_space();
        let found = self.text[self.at..].starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    /// The paths this tree names, each relative to where the tree starts.
    fn tree(&mut self) -> Vec<Vec<String>> {
        if self.eat("{") {
            let mut paths = Vec::new();
            loop {
                if self.eat("}") {
                    return paths;
                }
                let before = self.at;
                paths.extend(self.tree());
                if !self.eat(",") && self.at == before {
                    // Not a use tree after all (an unbalanced text): stop here.
                    return paths;
                }
            }
        }
        if self.eat("*") {
            return vec![Vec::new()];
        }
        let Some(first) = self.ident() else {
            return Vec::new();
        };
        let head = if first == "self" {
            Vec::new()
        } else {
            vec![first]
        };
        let save = self.at;
        if self.eat("::") {
            let subtrees = self.tree();
            if !subtrees.is_empty() {
                return subtrees
                    .into_iter()
                    .map(|tail| head.iter().cloned().chain(tail).collect())
                    .collect();
            }
            self.at = save;
        }
        if self.eat("as") {
            self.ident();
        }
        vec![head]
    }
}

/// The layer table: rows of `| N | `module`, `module` | … |` in a markdown document.
pub struct LayerTable {
    layers: BTreeMap<String, u32>,
}

impl LayerTable {
    /// The table in `doc`, or `None` when it has no row.
    pub fn parse(doc: &str) -> Option<LayerTable> {
        let mut layers = BTreeMap::new();
        for line in doc.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let [_, number, modules, ..] = cells.as_slice() else {
                continue;
            };
            let Ok(layer) = number.parse::<u32>() else {
                continue;
            };
            for name in modules.split('`').skip(1).step_by(2) {
                layers.insert(name.to_string(), layer);
            }
        }
        (!layers.is_empty()).then_some(LayerTable { layers })
    }

    /// The table entry that places `module`: itself or its nearest listed ancestor.
    pub fn unit_of<'a>(&'a self, module: &str) -> Option<&'a str> {
        let segments: Vec<&str> = module.split("::").collect();
        (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find_map(|candidate| {
                self.layers
                    .get_key_value(&candidate)
                    .map(|(k, _)| k.as_str())
            })
    }

    /// The layer of `module`.
    pub fn layer_of(&self, module: &str) -> Option<u32> {
        self.unit_of(module).map(|unit| self.layers[unit])
    }

    /// Each import from a lower layer to a higher one, described.
    pub fn upward_imports(&self, graph: &Graph) -> Vec<String> {
        graph
            .edges()
            .into_iter()
            .filter_map(|(from, to)| {
                let (low, high) = (self.layer_of(&from)?, self.layer_of(&to)?);
                (high > low).then(|| format!("  {from} (layer {low}) imports {to} (layer {high})"))
            })
            .collect()
    }
}
