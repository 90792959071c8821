//! htpasswd files as nginx's `auth_basic_user_file` reads them, and the
//! password hashes nginx verifies: bcrypt (`$2y$`, `$2a$`, `$2b$`),
//! MD5-crypt (`$apr1$`, `$1$`), SHA-crypt (`$5$`, `$6$`), `{SHA}`,
//! `{SSHA}` and `{PLAIN}`.
//!
//! nginx verifies `$apr1$`, `{SHA}`, `{SSHA}` and `{PLAIN}` itself and
//! hands the rest to the system's `crypt(3)`; on Debian that also takes
//! DES and yescrypt (`$y$`), which rpx does not (a 500, as nginx answers
//! when `crypt(3)` fails).

use std::collections::HashMap;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The users of one htpasswd file: `user:hash[:anything]` lines; lines
/// starting with `#` are comments, and the first line of a user counts.
#[derive(Debug, Default)]
pub struct Htpasswd {
    users: HashMap<Box<[u8]>, Box<str>>,
}

impl Htpasswd {
    /// Reads the text of a file, as nginx does: a line is `user:` then the
    /// hash up to the next `:`, CR or LF.
    pub fn parse(text: &[u8]) -> Htpasswd {
        let mut users = HashMap::new();
        for line in text.split(|&b| b == b'\n') {
            if matches!(line.first(), None | Some(b'#' | b'\r')) {
                continue;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let rest = &line[colon + 1..];
            let end = rest
                .iter()
                .position(|&b| matches!(b, b':' | b'\r'))
                .unwrap_or(rest.len());
            let hash = String::from_utf8_lossy(&rest[..end]).into();
            users.entry(line[..colon].into()).or_insert(hash);
        }
        Htpasswd { users }
    }

    /// The hash of `user`, if the file has the user.
    pub fn hash_of(&self, user: &[u8]) -> Option<&str> {
        self.users.get(user).map(|h| &**h)
    }

    /// How many users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// No users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The users whose hash rpx cannot verify, with the kind, for a
    /// warning when the file is read.
    pub fn unsupported(&self) -> impl Iterator<Item = (&[u8], &'static str)> {
        self.users
            .iter()
            .filter_map(|(u, h)| Some((&**u, unsupported_kind(h)?)))
    }
}

/// A hash of a kind rpx does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported password hash ({0}): re-hash it with `htpasswd -B` (bcrypt)")]
pub struct UnsupportedHash(pub &'static str);

fn unsupported_kind(hash: &str) -> Option<&'static str> {
    match verify(b"", hash) {
        Err(UnsupportedHash(kind)) => Some(kind),
        Ok(_) => None,
    }
}

/// Whether `password` matches `hash`.
///
/// ```
/// use rpx_core::access::htpasswd::verify;
/// // `openssl passwd -apr1 -salt abcdefgh secret`
/// assert_eq!(verify(b"secret", "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"), Ok(true));
/// assert_eq!(verify(b"Secret", "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"), Ok(false));
/// assert_eq!(verify(b"secret", "{PLAIN}secret"), Ok(true));
/// ```
///
/// # Errors
/// A hash of a kind rpx does not verify (DES crypt, yescrypt…).
pub fn verify(password: &[u8], hash: &str) -> Result<bool, UnsupportedHash> {
    if let Some(plain) = hash.strip_prefix("{PLAIN}") {
        return Ok(equal(password, plain.as_bytes()));
    }
    if let Some(b64) = hash.strip_prefix("{SHA}") {
        let digest = Sha1::digest(password);
        return Ok(equal(STANDARD.encode(digest).as_bytes(), b64.as_bytes()));
    }
    if let Some(b64) = hash.strip_prefix("{SSHA}") {
        // Base64 of the SHA-1 of password and salt, then the salt.
        let Ok(raw) = STANDARD.decode(b64) else {
            return Ok(false);
        };
        if raw.len() <= 20 {
            return Ok(false);
        }
        let (digest, salt) = raw.split_at(20);
        let mut h = Sha1::new();
        h.update(password);
        h.update(salt);
        return Ok(equal(&h.finalize(), digest));
    }
    for magic in ["$apr1$", "$1$"] {
        if hash.starts_with(magic) {
            return Ok(equal(
                md5_crypt(password, hash, magic).as_bytes(),
                hash.as_bytes(),
            ));
        }
    }
    if ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        return Ok(bcrypt::verify(password, hash).unwrap_or(false));
    }
    if hash.starts_with("$5$") || hash.starts_with("$6$") {
        use sha_crypt::PasswordVerifier as _;
        return Ok(sha_crypt::ShaCrypt::default()
            .verify_password(password, hash)
            .is_ok());
    }
    Err(UnsupportedHash(match hash {
        h if h.starts_with("$y$") || h.starts_with("$gy$") => "yescrypt",
        h if h.starts_with('$') => "an unknown crypt scheme",
        h if h.len() == 13 => "DES crypt",
        _ => "not a hash rpx knows",
    }))
}

/// nginx's base64: standard alphabet, padding optional.
const STANDARD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn equal(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// MD5-crypt (Poul-Henning Kamp's, as FreeBSD, glibc's `$1$` and Apache's
/// `$apr1$`, which differ only in `magic`): the full hash for `password`
/// with the salt of `setting`.
fn md5_crypt(password: &[u8], setting: &str, magic: &str) -> String {
    let rest = &setting[magic.len()..];
    let salt = rest.split('$').next().unwrap_or_default();
    let salt = &salt.as_bytes()[..salt.len().min(8)];

    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(password)
        .chain_update(magic)
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        ctx.update(&alternate[..left.min(16)]);
        left = left.saturating_sub(16);
    }
    let mut i = password.len();
    while i != 0 {
        if i & 1 == 1 {
            ctx.update([0]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut sum = ctx.finalize();
    for round in 0..1000 {
        let mut c = Md5::new();
        if round & 1 == 1 {
            c.update(password);
        } else {
            c.update(sum);
        }
        if round % 3 != 0 {
            c.update(salt);
        }
        if round % 7 != 0 {
            c.update(password);
        }
        if round & 1 == 1 {
            c.update(sum);
        } else {
            c.update(password);
        }
        sum = c.finalize();
    }

    let mut out = String::with_capacity(magic.len() + salt.len() + 23);
    out.push_str(magic);
    out.push_str(std::str::from_utf8(salt).unwrap_or_default());
    out.push('$');
    let s = &sum;
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        push_b64(
            &mut out,
            u32::from(s[a]) << 16 | u32::from(s[b]) << 8 | u32::from(s[c]),
            4,
        );
    }
    push_b64(&mut out, u32::from(s[11]), 2);
    out
}

/// crypt(3)'s base64: `./0-9A-Za-z`, least significant six bits first.
fn push_b64(out: &mut String, mut v: u32, n: usize) {
    const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..n {
        out.push(char::from(ITOA64[(v & 0x3f) as usize]));
        v >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_read_as_nginx_reads_them() {
        let f = Htpasswd::parse(
            b"# comment\nalice:{PLAIN}one:extra field\r\n\nbob:{PLAIN}two\r\nalice:{PLAIN}later\n\r carol:x\nnocolon\n:{PLAIN}empty",
        );
        assert_eq!(f.hash_of(b"alice"), Some("{PLAIN}one"));
        assert_eq!(f.hash_of(b"bob"), Some("{PLAIN}two"));
        assert_eq!(f.hash_of(b"carol"), None);
        assert_eq!(f.hash_of(b"# comment"), None);
        assert_eq!(f.hash_of(b"nocolon"), None);
    }

    /// Hashes made by `openssl passwd` and `htpasswd` for "secret".
    #[test]
    fn every_kind_verifies() {
        for hash in [
            "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/",
            "$apr1$E/4pXzZm$PhWipkSEPcca5hXmXahI/.",
            "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1",
            "$5$abcdefgh$gruCpC7VkOTspMQTTSAR8mtlO9Upms.fwqE5y16JVM.",
            "$6$abcdefgh$ltjgWl6579NluT/Vi1nwEvcil.G5Nbc4NiXZaNGStk8PSwGfQv72N2CKPPrVACtLtip/cZ/1GM/O6IND4WQhG.",
            "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
            "$2y$05$aJgvvwDZCYwXWSUrQoFd/uwjqRNG.HihinlyDJc7rNAIS1HXRSXTS",
            "{PLAIN}secret",
        ] {
            assert_eq!(verify(b"secret", hash), Ok(true), "{hash}");
            assert_eq!(verify(b"secreT", hash), Ok(false), "{hash}");
        }
        assert!(verify(b"x", "abJnggxhB/yWI").is_err());
        assert!(verify(b"x", "$y$j9T$abc$def").is_err());
    }

    #[test]
    fn ssha_takes_its_salt_from_the_end() {
        let mut h = Sha1::new();
        h.update(b"secret");
        h.update(b"salt");
        let mut raw = h.finalize().to_vec();
        raw.extend_from_slice(b"salt");
        let hash = format!("{{SSHA}}{}", STANDARD.encode(raw));
        assert_eq!(verify(b"secret", &hash), Ok(true));
        assert_eq!(verify(b"secrex", &hash), Ok(false));
        assert_eq!(verify(b"secret", "{SSHA}AAAA"), Ok(false));
    }
}
