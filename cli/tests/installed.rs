//! `make install`'s layout: `$PREFIX/bin/shunt` finds `$PREFIX/lib/libshunt.so`.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn installed_shunt_finds_libshunt_in_prefix_lib() {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_shunt"));
    let lib = exe.parent().unwrap().join("libshunt.so");
    if !lib.is_file() {
        panic!(
            "{} is not built (cargo build --release -p shunt-preload)",
            lib.display()
        );
    }
    let prefix = std::env::temp_dir().join(format!("shunt-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&prefix);
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("lib")).unwrap();
    std::fs::copy(&exe, prefix.join("bin/shunt")).unwrap();
    std::fs::copy(&lib, prefix.join("lib/libshunt.so")).unwrap();
    let o = Command::new(prefix.join("bin/shunt"))
        .args([
            "run",
            "--iface",
            "lo",
            "--addr",
            "192.0.2.1/24",
            "--",
            "sh",
            "-c",
            "echo \"$LD_PRELOAD\"",
        ])
        .env_remove("LD_PRELOAD")
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    // Nothing is beside the binary: only $PREFIX/lib can have been found.
    let want = prefix.join("lib/libshunt.so").canonicalize().unwrap();
    let _ = std::fs::remove_dir_all(&prefix);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(out, want.display().to_string());
}
