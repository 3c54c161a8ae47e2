//! The layer test: reads `src/`, builds the graph of `use crate::…` / `super::…` imports
//! between modules, and fails on an import against the layer table of `docs/architecture.md`,
//! on an import cycle, or on a module the table does not place. The table is written down once,
//! there; this test reads it, so a newcomer adding a module sees at once where it may reach.

#[path = "support/layers.rs"]
mod layers_graph;

use std::path::Path;

use layers_graph::{Graph, LayerTable};

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn load() -> (Graph, LayerTable) {
    let doc = std::fs::read_to_string(project().join("docs/architecture.md"))
        .expect("docs/architecture.md holds the layer table");
    let table = LayerTable::parse(&doc).expect("docs/architecture.md has a layer table");
    let graph = Graph::read(&project().join("src")).expect("src/ is readable");
    (graph, table)
}

#[test]
fn every_module_has_a_place_in_the_layer_table() {
    let (graph, table) = load();
    let unplaced: Vec<String> = graph
        .modules()
        .filter(|module| table.layer_of(module).is_none())
        .map(|module| module.to_string())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules missing from the layer table in docs/architecture.md: {unplaced:?}"
    );
}

#[test]
fn imports_point_down_the_layer_table() {
    let (graph, table) = load();
    let upward = table.upward_imports(&graph);
    assert!(
        upward.is_empty(),
        "imports against the layer order (docs/architecture.md):\n{}",
        upward.join("\n")
    );
}

#[test]
fn there_is_no_import_cycle() {
    let (graph, table) = load();
    let cycles = graph.cycles(|module| module.to_string());
    assert!(
        cycles.is_empty(),
        "import cycles between files:\n{}",
        cycles.join("\n")
    );
    let cycles = graph.cycles(|module| table.unit_of(module).unwrap_or(module).to_string());
    assert!(
        cycles.is_empty(),
        "import cycles between the modules of the layer table:\n{}",
        cycles.join("\n")
    );
}

/// The reader itself must see what it claims to check: a back-import written into a copy of
/// `src/` is reported, and so is a cycle.
#[test]
fn a_deliberate_back_import_is_caught() {
    let (_, table) = load();
    let copy = tempdir();
    copy_tree(&project().join("src"), copy.path());
    let wire = copy.path().join("wire.rs");
    let mut text = std::fs::read_to_string(&wire).expect("src/wire.rs exists");
    text.push_str("\n#[allow(unused_imports)]\nuse crate::gateway::Bound;\n");
    std::fs::write(&wire, text).unwrap();
    let graph = Graph::read(copy.path()).unwrap();
    let upward = table.upward_imports(&graph);
    assert!(
        upward
            .iter()
            .any(|line| line.contains("wire") && line.contains("gateway")),
        "the back-import wire → gateway was not reported: {upward:?}"
    );
    let cycles = graph.cycles(|module| table.unit_of(module).unwrap_or(module).to_string());
    assert!(
        cycles.iter().any(|line| line.contains("wire")),
        "the cycle through wire was not reported: {cycles:?}"
    );
}

#[test]
fn the_reader_resolves_groups_super_and_nested_paths() {
    let mut graph = Graph::default();
    graph.add_file(
        "a/b",
        "//! doc with crate::z in it\nuse crate::{c::{d, e::F}, g};\nuse super::h::I;\n\
         fn f() { crate::j::k(); let s = \"crate::y\"; }\n",
    );
    for module in ["a", "a::h", "c", "c::d", "c::e", "g", "j", "y", "z"] {
        graph.add_file(&module.replace("::", "/"), "");
    }
    let mut seen = graph.imports_of("a::b");
    seen.sort();
    assert_eq!(seen, ["a::h", "c::d", "c::e", "g", "j"]);
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("wsgate-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
