//! `torchserve --start` and `--stop`, as TorchServe's `ts/model_server.py` does them: a pid file in
//! the temporary directory; `--start` refuses while the server it names is running, `--stop`
//! sends it SIGTERM (which drains requests in flight) and waits for it to end.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::ts_config::Address;

/// Where a server started by `torchserve` writes its pid.
pub fn pid_file() -> PathBuf {
    std::env::temp_dir().join(".max-mnist-torchserve.pid")
}

/// The pid of the running server the pid file names; an orphan file is removed, as TorchServe does.
fn running() -> Option<i32> {
    let path = pid_file();
    let text = std::fs::read_to_string(&path).ok()?;
    let pid = text.trim().parse::<i32>().ok().filter(|&pid| pid > 0);
    match pid {
        Some(pid) if alive(pid) => Some(pid),
        _ => {
            println!("Removing orphan pid file.");
            let _ = std::fs::remove_file(&path);
            None
        }
    }
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Refuses to start a second server, as TorchServe does.
pub fn check_not_running() -> anyhow::Result<()> {
    if let Some(pid) = running() {
        bail!("TorchServe is already running (pid {pid}), please use torchserve --stop to stop TorchServe.");
    }
    Ok(())
}

/// Writes this process's pid; the file is removed when the returned guard is dropped. Where the
/// temporary directory is read-only (a container's `--read-only` root without a tmpfs), the server
/// runs without one, and says that `--stop` cannot find it.
pub fn write_pid() -> Option<PidGuard> {
    let path = pid_file();
    match std::fs::write(&path, std::process::id().to_string()) {
        Ok(()) => Some(PidGuard(path)),
        Err(err) => {
            log::warn!(
                "cannot write the pid file {} ({err}): `torchserve --stop` will not find this server; stop it with SIGTERM",
                path.display()
            );
            None
        }
    }
}

pub struct PidGuard(PathBuf);

impl Drop for PidGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `torchserve --stop`.
pub fn stop() -> anyhow::Result<ExitCode> {
    let Some(pid) = running() else {
        println!("TorchServe is not currently running.");
        return Ok(ExitCode::SUCCESS);
    };
    // SAFETY: sends SIGTERM to the process the pid file names, which we checked exists.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        bail!(
            "cannot signal pid {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if alive(pid) {
        bail!("Stopping TorchServe took too long (pid {pid} still runs after 60 s).");
    }
    let _ = std::fs::remove_file(pid_file());
    println!("TorchServe has stopped.");
    Ok(ExitCode::SUCCESS)
}

/// `torchserve --start` without `--foreground`: this command again with `--foreground`, in the
/// background (its output on this terminal, as TorchServe's Java process's is); returns once it
/// answers `/ping` on `inference`, or with its exit status if it stops first.
pub fn start_in_background(inference: &Address) -> anyhow::Result<ExitCode> {
    check_not_running()?;
    // Another server on the address would answer the readiness check below in this one's place.
    drop(
        std::net::TcpListener::bind((inference.host.as_str(), inference.port)).with_context(
            || format!("cannot listen on {inference}: another server uses it; stop it, or choose another inference_address"),
        )?,
    );
    let exe = std::env::current_exe().context("cannot find this program to start it again")?;
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    args.push("--foreground".into());
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .context("cannot start the server in the background")?;
    let url = format!("{inference}/ping");
    let url = url.replace("://0.0.0.0:", "://127.0.0.1:");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            bail!("the server stopped at start ({status}): see its messages above");
        }
        if pings(&url) {
            println!(
                "TorchServe (max-mnist) started in the background, pid {}: {}",
                child.id(),
                inference
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    kill(&mut child);
    bail!("the server did not answer {url} within 120 s; it was stopped")
}

fn pings(url: &str) -> bool {
    let Ok(client) = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
    else {
        return false;
    };
    client
        .get(url)
        .send()
        .map(|mut response| {
            let mut sink = Vec::new();
            let _ = response.read_to_end(&mut sink);
            response.status().is_success()
        })
        .unwrap_or(false)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
