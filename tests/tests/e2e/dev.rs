//! `genmint dev --nodes 2`, the README's main command with a second node, as a user runs it: node
//! 2 serves two models (the test-size model and `genmint-emoji-32`), and a request for each,
//! sent to node 2 with `genmint generate --wait`, is minted there and passes `genmint verify`.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use genmint_model_runtime::{DEFAULT_MODEL_NAME, TEST_MODEL_NAME};
use tokio::process::{Child, Command};

use crate::support::{free_ports, genmint_bin};

/// Two consecutive free loopback ports, TCP and UDP (dev node i listens on base + i - 1).
fn free_pair() -> u16 {
    free_ports(2)
}

/// `genmint dev` running; stopped with Ctrl-C (SIGINT) as a user stops it, so it stops anvil
/// and Kubo itself.
struct Dev {
    child: Child,
    log: std::path::PathBuf,
}

impl Dev {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn stop(mut self) -> Result<()> {
        let pid = self.child.id().context("genmint dev already exited")?;
        Command::new("kill").args(["-INT", &pid.to_string()]).status().await?;
        match tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await {
            Ok(status) => ensure!(status?.success(), "genmint dev did not stop cleanly:\n{}", self.log()),
            Err(_) => {
                self.child.start_kill()?;
                bail!("genmint dev did not stop within 60 s of Ctrl-C:\n{}", self.log());
            }
        }
        Ok(())
    }
}

async fn genmint(data_dir: &Path, args: &[&str]) -> Result<(bool, String)> {
    let output = Command::new(genmint_bin()).args(args).env("GENMINT_DATA_DIR", data_dir).output().await?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

#[tokio::test(flavor = "multi_thread")]
async fn genmint_dev_mints_with_both_models_of_its_second_node() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (http, p2p) = (free_pair(), free_pair());
    let (anvil, ipfs) = (free_pair(), free_pair());
    let log = dir.path().join("dev.log");
    let out = std::fs::File::create(&log)?;
    let ports = [http, anvil, ipfs, p2p].map(|p| p.to_string());
    let child = Command::new(genmint_bin())
        .args([
            "dev",
            "--nodes",
            "2",
            "--port",
            &ports[0],
            "--anvil-port",
            &ports[1],
            "--ipfs-port",
            &ports[2],
        ])
        .args(["--p2p-port", &ports[3]])
        .env("GENMINT_DATA_DIR", dir.path())
        .stdout(Stdio::from(out.try_clone()?))
        .stderr(Stdio::from(out))
        .kill_on_drop(true)
        .spawn()?;
    let mut dev = Dev { child, log };
    let second = format!("http://127.0.0.1:{}", http + 1);
    let started = Instant::now();
    while !dev.log().contains("genmint dev is up") {
        if let Some(status) = dev.child.try_wait()? {
            bail!("genmint dev exited ({status}) before it was up:\n{}", dev.log());
        }
        ensure!(started.elapsed() < Duration::from_secs(300), "genmint dev not up in 300 s:\n{}", dev.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("genmint dev --nodes 2 up in {:.1} s", started.elapsed().as_secs_f64());

    let cli = dir.path().join("cli");
    for model in [TEST_MODEL_NAME, DEFAULT_MODEL_NAME] {
        let (ok, output) =
            genmint(&cli, &["generate", "a red apple", "--model", model, "--node", &second, "--wait"])
                .await?;
        ensure!(ok && output.contains("minted token"), "{model} on node 2:\n{output}\n{}", dev.log());
        let id = output
            .lines()
            .find_map(|l| l.trim().strip_prefix("token id (hex)"))
            .context("no token id printed")?
            .trim()
            .to_string();
        let rpc = format!("http://127.0.0.1:{anvil}");
        let api = format!("http://127.0.0.1:{ipfs}");
        let verify = ["verify", id.as_str(), "--rpc-url", &rpc, "--ipfs-api", &api, "--node", &second];
        let (ok, report) = genmint(&cli, &verify).await?;
        ensure!(ok, "genmint verify refused the {model} token {id}:\n{report}");
        println!("{model}: token {id} minted by node 2 and verified");
    }
    dev.stop().await
}
