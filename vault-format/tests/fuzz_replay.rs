//! A short, deterministic smoke run of every fuzz target, part of the test
//! command: the golden vectors are the seeds, each is replayed as is, then
//! truncated at every length and mutated byte by byte. Files under
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` are replayed too.
//!
//! `KVAULT_WRITE_FUZZ_CORPUS=1` writes the seeds into `fuzz/corpus/` to start
//! a `cargo fuzz run`.

use std::path::{Path, PathBuf};

use vault_format::fuzzing::TARGETS;
use vault_format::id::hex_decode;

/// The crate's directory, looked up when the test runs: a test binary
/// built from another checkout of the same tree (CI and developers share
/// a target directory) must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn vectors() -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read_to_string(manifest_dir().join("tests/vectors/v3.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(" = ").unwrap();
            (k.to_string(), hex_decode(v).unwrap())
        })
        .collect()
}

/// The golden vector that seeds each target.
fn seed_vector(target: &str) -> &'static str {
    match target {
        "pack" => "pack",
        "index_object" => "index.body",
        "tree_node" => "tree.node",
        "manifest" => "manifest.body",
        "cluster_estate" => "estate.body",
        "key_file" => "keyfile",
        "record_framing" => "records.framed",
        "config" => "config.body",
        "run_objects" => "run.plan.body",
        "record_streams" => "records.streams.seed",
        "record_planes" => "records.planes.seed",
        t => panic!("no seed for fuzz target {t}"),
    }
}

fn fuzz_dir() -> PathBuf {
    manifest_dir().join("../fuzz")
}

fn files_in(dir: &Path) -> Vec<Vec<u8>> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_fuzz_target_survives_its_seeds_and_their_mutations() {
    let vectors = vectors();
    let targets_on_disk: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for t in &targets_on_disk {
        assert!(
            TARGETS.iter().any(|(n, _)| n == t),
            "fuzz target {t} has no entry in vault_format::fuzzing::TARGETS"
        );
    }
    for (name, run) in TARGETS {
        let seed = vectors
            .iter()
            .find(|(k, _)| k == seed_vector(name))
            .unwrap()
            .1
            .clone();
        if std::env::var_os("KVAULT_WRITE_FUZZ_CORPUS").is_some() {
            let d = fuzz_dir().join("corpus").join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("golden"), &seed).unwrap();
        }
        let mut inputs = vec![seed.clone()];
        inputs.extend(files_in(&fuzz_dir().join("corpus").join(name)));
        inputs.extend(files_in(&fuzz_dir().join("regressions").join(name)));
        for input in &inputs {
            run(input);
            for n in 0..input.len() {
                run(&input[..n]);
            }
        }
        // Byte mutations of the seed (key files are skipped past their
        // Argon2 parameters, which would make each run slow, not unsafe).
        for i in 0..seed.len() {
            for x in [0x01u8, 0x80, 0xff] {
                let mut m = seed.clone();
                m[i] ^= x;
                run(&m);
            }
        }
    }
}
