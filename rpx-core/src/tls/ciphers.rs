//! `ssl_ciphers`: an OpenSSL cipher string mapped onto rustls' TLS 1.2
//! suites.
//!
//! rustls has six TLS 1.2 suites (ECDHE with ECDSA or RSA, and AES-GCM or
//! ChaCha20-Poly1305); OpenSSL has many more. The string is evaluated as
//! OpenSSL does — names and keywords (`HIGH`, `ECDHE`, `AESGCM`…), `+`
//! joining selectors, and the `!` (remove for good), `-` (remove) and `+`
//! (move to the end) prefixes — over those six only. What selects none of
//! them is reported so the caller can warn. TLS 1.3 suites are not chosen
//! by this string, as in OpenSSL and nginx.

use rustls::crypto::ring::cipher_suite as cs;
use rustls::SupportedCipherSuite;

/// What a cipher string keeps of rustls' TLS 1.2 suites.
///
/// ```
/// use rpx_core::tls::CipherList;
/// let list = CipherList::parse("ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256");
/// assert_eq!(list.tls12.len(), 1);
/// assert_eq!(list.unmatched, ["DHE-RSA-AES128-GCM-SHA256"]);
/// ```
#[derive(Debug, Clone)]
pub struct CipherList {
    /// The TLS 1.2 suites selected, most preferred first.
    pub tls12: Vec<SupportedCipherSuite>,
    /// Elements that add no rustls suite (names of suites rustls lacks,
    /// keywords such as `EDH+AESGCM`, TLS 1.3 names, typos), in order.
    pub unmatched: Vec<String>,
}

/// One rustls TLS 1.2 suite and the OpenSSL attributes selectors test.
struct Suite {
    openssl: &'static str,
    iana: &'static str,
    suite: &'static SupportedCipherSuite,
    ecdsa: bool,
    enc: Enc,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Enc {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20,
}

impl Enc {
    /// OpenSSL's strength bits, for `@STRENGTH`.
    fn bits(self) -> u32 {
        match self {
            Enc::Aes128Gcm => 128,
            Enc::Aes256Gcm | Enc::ChaCha20 => 256,
        }
    }
}

/// In the order `openssl ciphers HIGH` lists them: the order keywords add
/// suites in.
static SUITES: [Suite; 6] = [
    Suite {
        openssl: "ECDHE-ECDSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        suite: &cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ecdsa: true,
        enc: Enc::Aes256Gcm,
    },
    Suite {
        openssl: "ECDHE-RSA-AES256-GCM-SHA384",
        iana: "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        suite: &cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ecdsa: false,
        enc: Enc::Aes256Gcm,
    },
    Suite {
        openssl: "ECDHE-ECDSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: &cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ecdsa: true,
        enc: Enc::ChaCha20,
    },
    Suite {
        openssl: "ECDHE-RSA-CHACHA20-POLY1305",
        iana: "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        suite: &cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ecdsa: false,
        enc: Enc::ChaCha20,
    },
    Suite {
        openssl: "ECDHE-ECDSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        suite: &cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ecdsa: true,
        enc: Enc::Aes128Gcm,
    },
    Suite {
        openssl: "ECDHE-RSA-AES128-GCM-SHA256",
        iana: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        suite: &cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ecdsa: false,
        enc: Enc::Aes128Gcm,
    },
];

/// A set of [`SUITES`] indexes.
type Mask = u8;
const NONE: Mask = 0;
const ALL: Mask = 0b11_1111;

fn mask_where(pred: impl Fn(&Suite) -> bool) -> Mask {
    SUITES
        .iter()
        .enumerate()
        .filter(|(_, s)| pred(s))
        .fold(NONE, |m, (i, _)| m | 1 << i)
}

/// OpenSSL selectors that can never match a rustls suite (static RSA, DHE,
/// anonymous, CBC-era MACs, legacy ciphers, PSK…): known, so removing them
/// is silent, and adding one adds nothing.
const NEVER: &[&str] = &[
    "COMPLEMENTOFALL",
    "COMPLEMENTOFDEFAULT",
    "kRSA",
    "RSA",
    "kEDH",
    "kDHE",
    "DH",
    "EDH",
    "DHE",
    "ADH",
    "AECDH",
    "aECDH",
    "kECDH",
    "aNULL",
    "eNULL",
    "NULL",
    "aDSS",
    "DSS",
    "PSK",
    "kPSK",
    "aPSK",
    "kRSAPSK",
    "kECDHEPSK",
    "kDHEPSK",
    "ECDHEPSK",
    "DHEPSK",
    "RSAPSK",
    "SRP",
    "kSRP",
    "aSRP",
    "3DES",
    "DES",
    "RC4",
    "RC2",
    "IDEA",
    "SEED",
    "GOST",
    "aGOST",
    "aGOST01",
    "aGOST12",
    "kGOST",
    "GOST94",
    "GOST89MAC",
    "GOST12",
    "AESCCM",
    "AESCCM8",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA",
    "ARIAGCM",
    "ARIA128",
    "ARIA256",
    // The GCM and ChaCha20 suites use AEAD, not these MACs.
    "MD5",
    "SHA1",
    "SHA",
    "SHA256",
    "SHA384",
    "SSLv3",
    "TLSv1",
    "TLSv1.0",
    "LOW",
    "MEDIUM",
    "EXP",
    "EXPORT",
    "EXPORT40",
    "EXPORT56",
];

/// The suites one selector (`HIGH`, `aRSA`, a cipher name…) picks; `None`
/// for a word OpenSSL would not know either.
fn selector(word: &str) -> Option<Mask> {
    if let Some(i) = SUITES
        .iter()
        .position(|s| s.openssl == word || s.iana == word)
    {
        return Some(1 << i);
    }
    let aes128 = |s: &Suite| s.enc == Enc::Aes128Gcm;
    let aes256 = |s: &Suite| s.enc == Enc::Aes256Gcm;
    Some(match word {
        // Every rustls TLS 1.2 suite is ECDHE, AEAD and strong.
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "kECDHE" | "kEECDH" | "ECDH"
        | "TLSv1.2" => ALL,
        "FIPS" | "AES" | "AESGCM" => mask_where(|s| aes128(s) || aes256(s)),
        "AES128" => mask_where(aes128),
        "AES256" => mask_where(aes256),
        "CHACHA20" => mask_where(|s| s.enc == Enc::ChaCha20),
        "ECDSA" | "aECDSA" => mask_where(|s| s.ecdsa),
        "aRSA" => mask_where(|s| !s.ecdsa),
        w if NEVER.contains(&w) => NONE,
        _ => return None,
    })
}

impl CipherList {
    /// Evaluates an OpenSSL cipher string over rustls' TLS 1.2 suites.
    /// Elements are separated by `:` (or `,`, `;`, spaces, as OpenSSL
    /// allows).
    pub fn parse(spec: &str) -> CipherList {
        let mut order: Vec<usize> = Vec::new();
        let mut killed: Mask = NONE;
        let mut unmatched = Vec::new();
        for element in spec.split([':', ',', ';', ' ']).filter(|e| !e.is_empty()) {
            if element == "@STRENGTH" {
                // Stable: equal strengths keep their order, as OpenSSL.
                order.sort_by_key(|&i| std::cmp::Reverse(SUITES[i].enc.bits()));
                continue;
            }
            if element.starts_with('@') {
                // `@SECLEVEL=n`: rustls' suites pass every level.
                continue;
            }
            let (op, rest) = match element.as_bytes()[0] {
                b @ (b'!' | b'-' | b'+') => (b, &element[1..]),
                _ => (b' ', element),
            };
            // `A+B` selects what both select.
            let mask = rest
                .split('+')
                .map(selector)
                .try_fold(ALL, |m, s| s.map(|s| m & s));
            let mask = mask.unwrap_or(NONE);
            let selected = |i: &usize| mask & (1 << i) != 0;
            match op {
                b'!' => {
                    killed |= mask;
                    order.retain(|i| !selected(i));
                }
                b'-' => order.retain(|i| !selected(i)),
                b'+' => {
                    let (moved, kept): (Vec<usize>, Vec<usize>) =
                        order.iter().partition(|i| selected(i));
                    order = kept;
                    order.extend(moved);
                }
                _ => {
                    if mask == NONE {
                        unmatched.push(element.to_owned());
                    }
                    for i in 0..SUITES.len() {
                        if selected(&i) && killed & (1 << i) == 0 && !order.contains(&i) {
                            order.push(i);
                        }
                    }
                }
            }
        }
        CipherList {
            tls12: order.into_iter().map(|i| *SUITES[i].suite).collect(),
            unmatched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &str) -> (Vec<&'static str>, Vec<String>) {
        let list = CipherList::parse(spec);
        let names = list
            .tls12
            .iter()
            .map(|s| {
                SUITES
                    .iter()
                    .find(|x| x.suite.suite() == s.suite())
                    .map_or("?", |x| x.openssl)
            })
            .collect();
        (names, list.unmatched)
    }

    #[test]
    fn names_map_in_the_order_given() {
        let (n, u) = names("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256");
        assert_eq!(
            n,
            [
                "ECDHE-RSA-CHACHA20-POLY1305",
                "ECDHE-ECDSA-AES128-GCM-SHA256"
            ]
        );
        assert!(u.is_empty());
        // IANA names too.
        let (n, _) = names("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
        assert_eq!(n, ["ECDHE-RSA-AES256-GCM-SHA384"]);
    }

    #[test]
    fn keywords_and_exclusions() {
        let (n, u) = names("HIGH:!aNULL:!MD5");
        assert_eq!(n.len(), 6);
        assert!(u.is_empty(), "removing what rustls lacks is silent: {u:?}");
        let (n, u) = names("EECDH+AESGCM:EDH+AESGCM");
        assert_eq!(
            n,
            [
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
        assert_eq!(u, ["EDH+AESGCM"]);
        let (n, _) = names("ALL:!ECDSA");
        assert!(n.iter().all(|s| s.contains("-RSA-")), "{n:?}");
        assert_eq!(n.len(), 3);
    }

    #[test]
    fn prefixes_behave_as_openssl() {
        // `+` moves to the end.
        let (n, _) = names("HIGH:+AES128");
        assert_eq!(
            &n[4..],
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
        // `-` removes, but a later element can add back; `!` is for good.
        let (n, _) = names("HIGH:-AES128:AES128");
        assert_eq!(n.len(), 6);
        assert!(n[4].contains("AES128"));
        let (n, _) = names("HIGH:!AES128:AES128");
        assert_eq!(n.len(), 4);
        // @STRENGTH puts 256-bit suites first.
        let (n, _) = names("AES128:CHACHA20:@STRENGTH");
        assert!(
            n[0].contains("CHACHA20") && n[3].contains("AES128"),
            "{n:?}"
        );
    }

    #[test]
    fn nothing_rustls_has() {
        let (n, u) = names("DHE-RSA-AES256-SHA:DES-CBC3-SHA:TLS_AES_128_GCM_SHA256:typo");
        assert!(n.is_empty());
        assert_eq!(u.len(), 4);
    }
}
