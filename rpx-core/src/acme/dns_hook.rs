//! dns-01 through a command, as certbot's `--manual-auth-hook` and lego's
//! `exec` provider: `HOOK present <domain> <txt-value>` before validation,
//! `HOOK cleanup <domain> <txt-value>` after. The record name is
//! `_acme-challenge.<domain>`; the hook waits for its DNS to serve it.

use std::path::PathBuf;
use std::time::Duration;

use super::AcmeError;

/// How long one hook call may take (DNS APIs and propagation waits).
const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// The configured hook command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DnsHook {
    pub(crate) command: PathBuf,
}

impl DnsHook {
    /// Runs the hook; a non-zero exit is an error carrying its output.
    pub(crate) async fn run(
        &self,
        action: &str,
        domain: &str,
        value: &str,
    ) -> Result<(), AcmeError> {
        let mut cmd = tokio::process::Command::new(&self.command);
        cmd.arg(action)
            .arg(domain)
            .arg(value)
            .env("RPX_ACME_ACTION", action)
            .env("RPX_ACME_DOMAIN", domain)
            .env("RPX_ACME_RECORD", format!("_acme-challenge.{domain}"))
            .env("RPX_ACME_VALUE", value)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let what = format!("dns_hook {} {action} {domain}", self.command.display());
        let out = tokio::time::timeout(HOOK_TIMEOUT, cmd.output())
            .await
            .map_err(|_| AcmeError::Hook(format!("{what}: timed out")))?
            .map_err(|e| AcmeError::Hook(format!("{what}: {e}")))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(AcmeError::Hook(format!(
            "{what}: {}{}",
            out.status,
            if stderr.trim().is_empty() {
                String::new()
            } else {
                format!(": {}", stderr.trim())
            }
        )))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hook_gets_its_arguments_and_failures_carry_stderr() {
        let dir = std::env::temp_dir().join(format!("rpx-hook-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out");
        let script = dir.join("hook.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$1 $2 $3 $RPX_ACME_RECORD\" >> {}\n[ \"$1\" = present ] || {{ echo nope >&2; exit 3; }}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let hook = DnsHook { command: script };
        hook.run("present", "example.test", "v1").await.unwrap();
        let err = hook.run("cleanup", "example.test", "v1").await.unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        let seen = std::fs::read_to_string(&out).unwrap();
        assert_eq!(
            seen,
            "present example.test v1 _acme-challenge.example.test\ncleanup example.test v1 _acme-challenge.example.test\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
