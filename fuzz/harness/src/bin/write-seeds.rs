//! Writes each fuzz target's seeds into `DIR/<target>/seed-<n>` (the
//! corpus directories cargo fuzz reads): `write-seeds fuzz/corpus`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: write-seeds DIR");
        return ExitCode::from(2);
    };
    for target in annexa_fuzz::TARGETS {
        let at = dir.join(target.name);
        let written = std::fs::create_dir_all(&at).and_then(|()| {
            for (n, seed) in annexa_fuzz::seeds(target.name).iter().enumerate() {
                std::fs::write(at.join(format!("seed-{n}")), seed)?;
            }
            Ok(())
        });
        if let Err(e) = written {
            eprintln!("write-seeds: {}: {e}", at.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
