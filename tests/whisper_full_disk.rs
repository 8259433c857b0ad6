//! A create that runs out of room (here: RLIMIT_FSIZE, which makes writes fail with EFBIG exactly as a
//! full disk makes them fail with ENOSPC) must fail with a clear message, a non-zero exit, and no file
//! left behind (whisper PR #105), whatever the allocation mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::process::Command;

#[test]
fn a_create_that_cannot_finish_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_carbide");
    for (i, mode) in ["", "--sparse", "--fallocate"].iter().enumerate() {
        let path = dir.path().join(format!("full{i}.wsp"));
        // Ignoring SIGXFSZ survives exec, so the write returns EFBIG instead of killing the process.
        let script = format!("trap '' XFSZ; ulimit -f 8; exec \"$0\" whisper create {mode} \"$1\" 60:100000");
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(bin)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{mode}: create must fail when the file cannot be written"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("full") || stderr.contains("large") || stderr.contains("space"),
            "{mode}: {stderr}"
        );
        assert!(
            !path.exists(),
            "{mode}: a failed create must remove its partial file"
        );
    }
    // The same command within the limit works, so the failure above was the limit.
    let ok = dir.path().join("small.wsp");
    let script = "trap '' XFSZ; ulimit -f 8; exec \"$0\" whisper create \"$1\" 60:100".to_string();
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(bin)
        .arg(&ok)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(ok.exists());
}
