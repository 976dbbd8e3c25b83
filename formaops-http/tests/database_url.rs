//! The real `formaops` binary reads `DATABASE_URL` with SQLAlchemy's convention:
//! `sqlite:///rel.db` lands in the process's working directory, `sqlite:////abs.db` at the
//! absolute path; a password never reaches its output. (Run as a child process, so the
//! working directory is the child's own: no test changes this process's.)

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_formaops");

fn migrate(cwd: &Path, url: &str) -> Output {
    Command::new(BIN)
        .arg("migrate")
        .current_dir(cwd)
        .env("DATABASE_URL", url)
        .env_remove("FORMAOPS_CONFIG")
        .env("RUST_LOG", "warn")
        .output()
        .expect("running formaops migrate")
}

#[test]
fn sqlite_three_slashes_is_relative_and_four_absolute() {
    let cwd = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let at_root = Path::new("/formaops-url-test.db");
    assert!(!at_root.exists());

    let out = migrate(cwd.path(), "sqlite:///formaops-url-test.db");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cwd.path().join("formaops-url-test.db").is_file(), "created in the working directory");
    assert!(!at_root.exists(), "not at the filesystem root");

    std::fs::create_dir(cwd.path().join("sub")).unwrap();
    let out = migrate(cwd.path(), "sqlite:///sub/nested.db");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(cwd.path().join("sub/nested.db").is_file());

    let absolute = elsewhere.path().join("abs.db");
    let out = migrate(cwd.path(), &format!("sqlite:///{}", absolute.display()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(absolute.is_file(), "sqlite:////abs lands at the absolute path");
}

#[test]
fn errors_name_the_file_and_hide_passwords() {
    let cwd = tempfile::tempdir().unwrap();
    let out = migrate(cwd.path(), "sqlite:///missing-dir/x.db");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    let expected = cwd.path().join("missing-dir/x.db");
    assert!(stderr.contains(&expected.display().to_string()), "names the absolute file: {stderr}");

    let out = migrate(cwd.path(), "mysql://u:secret@h/db");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("u:***@h") && stderr.contains("sqlite:///relative.db"), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
}
