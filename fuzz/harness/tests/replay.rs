//! Replays every input that once made a fuzz target fail
//! (`fuzz/regressions/<target>/`), and each target's seeds, through the
//! harness: `cargo test` keeps the findings fixed without running libFuzzer.

use std::path::{Path, PathBuf};

use annexa_fuzz::{TARGETS, seeds};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn every_regression_input_passes_its_target() {
    let mut replayed = 0usize;
    for entry in std::fs::read_dir(fuzz_dir().join("regressions")).expect("fuzz/regressions") {
        let dir = entry.expect("a directory entry").path();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 name")
            .to_string();
        if !dir.is_dir() {
            continue;
        }
        let target = TARGETS
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("fuzz/regressions/{name}: no such target"));
        for input in std::fs::read_dir(&dir).expect("a regression directory") {
            let path = input.expect("a directory entry").path();
            let data = std::fs::read(&path).expect("a regression input");
            eprintln!("replaying {}", path.display());
            (target.run)(&data);
            replayed += 1;
        }
    }
    eprintln!("{replayed} regression inputs replayed");
}

#[test]
fn every_target_passes_its_seeds() {
    for target in TARGETS {
        let seeds = seeds(target.name);
        assert!(!seeds.is_empty(), "target {} has no seeds", target.name);
        for seed in seeds {
            (target.run)(&seed);
        }
    }
}

/// A target added to the harness must have its cargo fuzz binary, and the
/// other way round.
#[test]
fn every_target_has_its_fuzz_binary() {
    let mut binaries: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| e.expect("an entry").path())
        .filter_map(|p| p.file_stem().and_then(|s| s.to_str()).map(str::to_string))
        .collect();
    binaries.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(binaries, names);
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml lacks [[bin]] {name}"
        );
    }
}
