//! A single-user backend (`postgres --single`) on a data directory of its own, with month_lock
//! installed, whose scripts run under valgrind's callgrind: the instructions the whole process
//! executed, exact and independent of the machine's load. The directory goes with the value.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct SingleUser {
    bindir: PathBuf,
    dir: PathBuf,
    data: PathBuf,
}

impl SingleUser {
    /// Blocking: runs initdb and `CREATE EXTENSION month_lock` (not under callgrind).
    pub fn new() -> SingleUser {
        let bindir = month_lock_tests::sql::pg_bindir();
        let dir = std::env::temp_dir().join(format!("month_lock_callgrind.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the callgrind directory");
        // The backend runs as the server's OS user, who must be able to create the data directory.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .expect("chmod the callgrind directory");
        let data = dir.join("data");
        month_lock_tests::initdb(&data);
        let backend = SingleUser { bindir, dir, data };
        backend.run("CREATE EXTENSION month_lock;", None, &[]);
        backend
    }

    /// Runs `script` (one statement per line) under callgrind, with `settings` (`name=value`)
    /// on the command line; checks that a statement counted `count` rows and returns the
    /// instructions callgrind collected.
    pub fn instructions(&self, script: &str, count: u64, settings: &[&str]) -> u64 {
        self.run(script, Some(count), settings)
    }

    /// With `count`, under callgrind (see [`SingleUser::instructions`]); else 0.
    fn run(&self, script: &str, count: Option<u64>, settings: &[&str]) -> u64 {
        let file: PathBuf = self.dir.join("script.sql");
        std::fs::write(&file, format!("{script}\n")).expect("write the script");
        let postgres = self.bindir.join("postgres");
        let mut cmd = if count.is_some() {
            let mut c = month_lock_tests::server_command(Path::new("valgrind"));
            c.args(["--tool=callgrind", "--callgrind-out-file=/dev/null"])
                .arg(&postgres);
            c
        } else {
            month_lock_tests::server_command(&postgres)
        };
        cmd.arg("--single");
        for s in settings {
            cmd.args(["-c", s]);
        }
        let out = cmd
            .arg("-D")
            .arg(&self.data)
            .arg("postgres")
            .stdin(std::fs::File::open(&file).expect("open the script"))
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} (make bench installs valgrind): {e}",
                    postgres.display()
                )
            });
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("ERROR"),
            "{script}:\n{stderr}"
        );
        let Some(n) = count else { return 0 };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains(&format!("count = \"{n}\"")),
            "not every call answered as expected: {script}\n{stdout}"
        );
        stderr
            .lines()
            .find_map(|l| l.split("Collected : ").nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no instruction count from callgrind:\n{stderr}"))
    }
}

impl Drop for SingleUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
