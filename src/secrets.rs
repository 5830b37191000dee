//! Secrets never leave the process: every password vault is given is
//! remembered here, and every message vault prints passes through
//! [`scrub`], which blanks them out. Error texts come from many places
//! (librdkafka among them, which may quote a setting it refuses), so this
//! is the one place that guarantees it.

use std::sync::Mutex;

use zeroize::Zeroizing;

/// Wiped when the process ends its use of them (at exit, or never sooner).
static SECRETS: Mutex<Vec<Zeroizing<String>>> = Mutex::new(Vec::new());

/// Values shorter than this are not blanked (docs/operator-guide.md).
pub(crate) const MIN_LEN: usize = 8;

/// Whether a librdkafka setting holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "jaas",
        "key.pem",
        "token",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Remembers a secret, so that no printed message shows it.
pub(crate) fn register(secret: &str) {
    // A short value would blank out ordinary words ("wrong" in "wrong
    // passphrase"); secrets worth the name are longer.
    if secret.len() < MIN_LEN {
        return;
    }
    let mut all = SECRETS.lock().expect("secrets");
    if !all.iter().any(|s| s.as_str() == secret) {
        all.push(Zeroizing::new(secret.to_string()));
        // Longest first, so a secret containing another is blanked whole.
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret replaced by `****`.
pub fn scrub(text: &str) -> String {
    let all = SECRETS.lock().expect("secrets");
    let mut out = text.to_string();
    for s in all.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "****");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_blanked() {
        register("hunter2-long-password");
        register("wrong"); // too short to blank
        assert_eq!(
            scrub("auth failed for hunter2-long-password (wrong)"),
            "auth failed for **** (wrong)"
        );
        assert!(is_secret_key("sasl.password"));
        assert!(is_secret_key("ssl.key.password"));
        assert!(is_secret_key("sasl.oauthbearer.client.secret"));
        assert!(!is_secret_key("sasl.username"));
    }
}
