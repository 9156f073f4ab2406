//! `with-cluster PG_CONFIG COMMAND [ARGS...]`: starts a throwaway cluster of the installation
//! PG_CONFIG names with the test kit's starter (initdb into a temporary directory, a free
//! loopback port, as the OS user `postgres` when run as root), runs COMMAND with
//! PGHOST (the cluster's socket directory), PGPORT, PGUSER and PGDATABASE pointing at it, then
//! stops the server and deletes the cluster, whatever COMMAND's outcome. Exits with COMMAND's
//! status, or 1 when the server log shows a backend "terminated by signal" (a crash).
//! `tools/with-cluster.sh` runs it for the Makefile and the scripts.

use month_lock_tests::start_cluster;
use std::os::unix::process::ExitStatusExt;
use std::process::{exit, Command};

#[tokio::main]
async fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(pg_config), Some(command)) = (args.next(), args.next()) else {
        eprintln!("usage: with-cluster PG_CONFIG COMMAND [ARGS...]");
        exit(2);
    };
    // The kit takes its binaries from PG_CONFIG --bindir; COMMAND gets the environment as it was.
    let caller_pg_config = std::env::var_os("PG_CONFIG");
    std::env::set_var("PG_CONFIG", &pg_config);
    let server = start_cluster(&[]).await;
    let dir = server.dir.clone().expect("a cluster of our own");
    let port = server.admin_config().get_ports()[0];
    let version = Command::new(month_lock_tests::sql::pg_bindir().join("postgres"))
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "with-cluster: {version} on socket {} port {port}",
        dir.display()
    );
    let mut child = Command::new(&command);
    match &caller_pg_config {
        Some(value) => child.env("PG_CONFIG", value),
        None => child.env_remove("PG_CONFIG"),
    };
    let status = child
        .args(args)
        .env("PGHOST", &dir)
        .env("PGPORT", port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "postgres")
        .status();
    let mut code = match status {
        Ok(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!(
                "with-cluster: cannot run {}: {e}",
                command.to_string_lossy()
            );
            127
        }
    };
    let crashes = server.crash_reports();
    if !crashes.is_empty() {
        println!(
            "with-cluster: a backend crashed:\n{}",
            crashes.join("\n--\n")
        );
        code = 1;
    }
    server.stop_and_remove();
    exit(code);
}
