//! Adds an rpath to libtorch's `lib/` folder (from `LIBTORCH`, which
//! `.cargo/config.toml` points at `.libtorch/torch`) so that the binary, the tests
//! and the benches run without `LD_LIBRARY_PATH`.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        println!(
            "cargo:warning=LIBTORCH is not set; run scripts/install-libtorch.sh or set it to a libtorch 2.13.0 folder"
        );
        return;
    };
    let lib = PathBuf::from(libtorch).join("lib");
    if !lib.join("libtorch_cpu.so").exists() {
        println!(
            "cargo:warning=no libtorch_cpu.so in {}; run scripts/install-libtorch.sh",
            lib.display()
        );
    }
    // CUDA runtime libraries from the nvidia-* wheels live beside torch/ when
    // installed with `pip --target`.
    let mut dirs = vec![lib.clone()];
    if let Some(root) = lib.parent().and_then(|t| t.parent()) {
        for sub in [
            "nvidia/cu13/lib",
            "nvidia/cuda_runtime/lib",
            "nvidia/cuda_cupti/lib",
        ] {
            let d = root.join(sub);
            if d.is_dir() {
                dirs.push(d);
            }
        }
    }
    for d in dirs {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", d.display());
    }
}
