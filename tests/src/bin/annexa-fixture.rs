//! Writes the hardened golden-image fixture root into a directory, for
//! benchmarks and for trying `annexa scan --root` by hand.

fn main() {
    let Some(dir) = std::env::args().nth(1) else {
        eprintln!("usage: annexa-fixture DIR   (DIR must not exist yet)");
        std::process::exit(2);
    };
    let path = std::path::Path::new(&dir);
    if path.exists() {
        eprintln!("annexa-fixture: {dir} already exists; refusing to write into it");
        std::process::exit(2);
    }
    if let Err(e) = std::fs::create_dir_all(path) {
        eprintln!("annexa-fixture: creating {dir}: {e}");
        std::process::exit(2);
    }
    annexa_tests::hardened_root(path);
    println!("{dir}");
}
