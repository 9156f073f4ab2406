//! A session that has month_lock's library loaded keeps working across an install of a
//! *different* build into the same PostgreSQL (docs/install.md, its opening section:
//! installs never rewrite a loaded file; every install writes a file under a temporary name and
//! renames it over the old one).
//!
//! It rewrites the installation PG_CONFIG names, so it runs only when asked for
//! (`tools/install-while-loaded.sh PG_CONFIG STAGE_DIR ALT_STAGE_DIR [MODE]`, part of
//! `make regress`), with `MONTH_LOCK_STAGE` (the build installed now) and
//! `MONTH_LOCK_ALT_STAGE` (a different ELF: the same crate built with other features):
//! 1. a session calls month_lock_try (the library is now mapped into its backend) and keeps a
//!    month;
//! 2. the other build is installed through the path every install takes,
//!    tools/install-files.sh (a temporary file renamed over month_lock.so);
//! 3. the same session calls month_lock functions again: its month is still held, it takes and
//!    releases more, and its backend still maps the old, now unlinked, file; a new session
//!    loads the new build and works too; no backend was killed by a signal;
//! 4. the first build is installed again the same way (the tree is left as it was).
//!
//! `MONTH_LOCK_INSTALL_MODE=cp` (for demonstrating that the test can fail, never in `make test`):
//! step 2 copies the new library over the old file in place instead, as `cp` or pgrx's `sudo cp`
//! would.

mod common;

use common::*;
use month_lock_tests::{backend_pid, server};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn env_path(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var_os(name)
            .unwrap_or_else(|| panic!("{name} is not set (run tools/install-while-loaded.sh)")),
    )
}

fn pkglibdir(pg_config: &Path) -> PathBuf {
    let out = Command::new(pg_config)
        .arg("--pkglibdir")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", pg_config.display()));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Installs a stage directory's files with tools/install-files.sh (write, then rename).
fn install(stage: &Path, pg_config: &Path) -> Result<(), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/install-files.sh");
    let out = Command::new(&script)
        .arg(stage)
        .arg(pg_config)
        .output()
        .map_err(|e| format!("{}: {e}", script.display()))?;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        println!("install-while-loaded: {line}");
    }
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "install-files.sh {} failed: {}",
            stage.display(),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Puts the first build back however the test ends.
struct Restore<'a> {
    stage: &'a Path,
    pg_config: &'a Path,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        if let Err(e) = install(self.stage, self.pg_config) {
            eprintln!("install-while-loaded: could not put the original build back: {e}");
        }
    }
}

fn maps(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/maps: {e}"))
}

#[tokio::test]
#[ignore = "rewrites the installed library: run by tools/install-while-loaded.sh (make regress)"]
async fn a_loaded_session_keeps_working_across_the_install_of_another_build() {
    let pg_config = env_path("PG_CONFIG");
    let stage = env_path("MONTH_LOCK_STAGE");
    let alt_stage = env_path("MONTH_LOCK_ALT_STAGE");
    let copy_in_place = std::env::var("MONTH_LOCK_INSTALL_MODE").as_deref() == Ok("cp");
    let lib = pkglibdir(&pg_config).join("month_lock.so");
    let (build, other_build) = (
        read(&stage.join("lib/month_lock.so")),
        read(&alt_stage.join("lib/month_lock.so")),
    );
    assert_ne!(
        build, other_build,
        "the two builds are identical; the test needs a different library"
    );
    assert!(
        read(&lib) == build,
        "{} is not the build in {}",
        lib.display(),
        stage.display()
    );

    let server = server().await;
    let db = server.fresh_db("install_while_loaded").await;
    let session = db.connect().await;
    assert!(
        q_bool(&session, "SELECT month_lock_try(2024, 3)").await,
        "the session could not take 2024-03"
    );
    let pid = backend_pid(&session).await;
    assert!(
        maps(pid).contains("month_lock.so"),
        "backend {pid} has not mapped month_lock.so"
    );
    let inode_before = std::fs::metadata(&lib).unwrap().ino();

    let restore = Restore {
        stage: &stage,
        pg_config: &pg_config,
    };
    if copy_in_place {
        println!(
            "install-while-loaded: MONTH_LOCK_INSTALL_MODE=cp: copying the other build over {} in place",
            lib.display()
        );
        std::fs::copy(alt_stage.join("lib/month_lock.so"), &lib).expect("cp");
    } else {
        install(&alt_stage, &pg_config).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        read(&lib) == other_build,
        "the other build was not installed"
    );
    println!(
        "install-while-loaded: {} inode {inode_before} -> {}",
        lib.display(),
        std::fs::metadata(&lib).unwrap().ino()
    );

    let answer = session
        .query_one(
            "SELECT month_lock_held(2024, 3) AND month_lock_try(2024, 4) AND month_lock_try_shared(2024, 5, 100)
               AND month_lock_release(2024, 4) AND (SELECT count(*) = 2 FROM month_locks WHERE pid = pg_backend_pid())
               AND month_lock_release_all() = 2",
            &[],
        )
        .await
        .map(|row| row.get::<_, bool>(0));
    assert!(
        matches!(answer, Ok(true)),
        "the loaded session answered {:?} after the install (expected true)",
        answer.map_err(|e| describe(&e))
    );
    if !copy_in_place {
        assert!(
            maps(pid).contains("month_lock.so (deleted)"),
            "backend {pid} does not map the old, unlinked library"
        );
    }
    println!(
        "install-while-loaded: backend {pid} (old library mapped) still works after the install"
    );
    assert!(
        q_bool(
            &db.connect().await,
            "SELECT month_lock_try(2024, 6) AND month_lock_release(2024, 6)"
        )
        .await,
        "a new session with the new build does not work"
    );
    drop(session);
    let crashes = server.crash_reports();
    assert!(
        crashes.is_empty(),
        "a backend crashed:\n{}",
        crashes.join("\n--\n")
    );

    drop(restore);
    assert!(read(&lib) == build, "could not put the original build back");
}
