//! Where the passphrase comes from: `--password-file`, then the environment
//! (`KVAULT_PASSWORD_FILE`, `KVAULT_PASSWORD`), then a prompt on a terminal.
//! The `KVAULT_` prefix keeps clear of HashiCorp Vault's `VAULT_*` variables.

use std::io::IsTerminal;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A passphrase; its bytes are wiped from memory when it is dropped.
pub type Passphrase = Zeroizing<Vec<u8>>;

pub(crate) const ENV_PASSWORD_FILE: &str = "KVAULT_PASSWORD_FILE";
pub(crate) const ENV_PASSWORD: &str = "KVAULT_PASSWORD";

/// Reads a passphrase file: its first line, without the line ending.
pub fn read_password_file(path: &Path) -> Result<Passphrase> {
    let bytes = Zeroizing::new(
        std::fs::read(path).map_err(|e| Error::io("reading the password file", path, e))?,
    );
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return Err(Error::Usage(format!(
            "the password file {} is empty",
            path.display()
        )));
    }
    remember(line);
    Ok(Zeroizing::new(line.to_vec()))
}

/// No message may ever show a passphrase.
fn remember(secret: &[u8]) {
    if let Ok(s) = std::str::from_utf8(secret) {
        crate::secrets::register(s);
    }
}

/// Finds the passphrase. `confirm` asks twice when prompting (for `init`).
pub fn passphrase(file: Option<&Path>, confirm: bool) -> Result<Passphrase> {
    if let Some(f) = file {
        return read_password_file(f);
    }
    if let Some(f) = std::env::var_os(ENV_PASSWORD_FILE).filter(|v| !v.is_empty()) {
        return read_password_file(Path::new(&f));
    }
    if let Some(p) = std::env::var_os(ENV_PASSWORD).filter(|v| !v.is_empty()) {
        let p = Zeroizing::new(p.into_encoded_bytes());
        remember(&p);
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "no passphrase given: pass --password-file FILE, or set {ENV_PASSWORD_FILE} (or {ENV_PASSWORD})"
        )));
    }
    let p = Zeroizing::new(
        rpassword::prompt_password("vault passphrase: ")
            .map_err(|e| Error::io("reading the passphrase", "/dev/tty", e))?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("repeat passphrase: ")
                .map_err(|e| Error::io("reading the passphrase", "/dev/tty", e))?,
        );
        if *again != *p {
            return Err(Error::Usage("the passphrases do not match".into()));
        }
    }
    if p.is_empty() {
        return Err(Error::Usage("the passphrase is empty".into()));
    }
    remember(p.as_bytes());
    Ok(Zeroizing::new(p.as_bytes().to_vec()))
}
